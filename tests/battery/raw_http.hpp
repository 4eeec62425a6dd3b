#pragma once

// A deliberately small HTTP/1.1 client on raw sockets: the battery must be able to send
// bytes no well-behaved client library would (bare CR in a header, a lying Content-Length,
// half a request), and to watch what the server does with the connection afterwards.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace notifs::tests::battery {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

// Parses "http://host:port" (what scripts/run writes into its env file).
std::optional<Endpoint> parse_base_url(std::string_view url);

struct RawResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first header named `name` (case-insensitive).
  std::optional<std::string> header(std::string_view name) const;
};

enum class Outcome {
  response,        // a whole response arrived
  timed_out,       // nothing whole within the deadline
  closed,          // the server closed (or reset) the connection before a whole response
  connect_failed,  // no connection at all
  garbled,         // bytes arrived that are not an HTTP response
};
std::string_view to_string(Outcome outcome);

struct Exchange {
  Outcome outcome = Outcome::timed_out;
  RawResponse response;
  std::string error;
  std::chrono::microseconds elapsed{0};
};

// One TCP connection (RAII over the descriptor).
class Connection {
 public:
  Connection() = default;
  ~Connection();
  Connection(Connection&& other) noexcept;
  Connection& operator=(Connection&& other) noexcept;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connects within `timeout`; on failure is_open() is false and `error` says why.
  static Connection open(const Endpoint& endpoint, std::chrono::milliseconds timeout,
                         std::string& error);
  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Writes every byte or fails (the peer closed or reset; EPIPE never kills us).
  bool send_all(std::string_view bytes, Clock::time_point deadline);
  // Reads one response (Content-Length, chunked, or until EOF). A response to HEAD has
  // no body. Bytes after the response stay buffered for the next call.
  Exchange read_response(Clock::time_point deadline, bool head_request = false);
  // Waits for the server to close: true when it did (EOF or reset) before `deadline`.
  // Anything the server sends meanwhile is appended to `received`.
  bool wait_closed(Clock::time_point deadline, std::string& received);
  void shutdown_write();
  void close();

 private:
  explicit Connection(int fd) : fd_(fd) {}
  // Reads more bytes into buffer_; 0 on EOF, -1 on error or deadline (errno_text_ set).
  long fill(Clock::time_point deadline);

  int fd_ = -1;
  std::string buffer_;
  std::string last_error_;
};

// Connect, send, read one response, close: one whole exchange bounded by `timeout`.
Exchange exchange_once(const Endpoint& endpoint, std::string_view request,
                       std::chrono::milliseconds timeout, bool head_request = false);

// An ordinary request's bytes: request line, Host, the given headers, Content-Length when
// there is a body (unless a header already sets it or Transfer-Encoding), the body.
std::string build_request(std::string_view method, std::string_view target,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body = {});

}  // namespace notifs::tests::battery
