#pragma once

#include "detail/asio.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "notifs/messaging/http/message.hpp"

namespace notifs::messaging::http::detail {

namespace asio = messaging::detail::asio;
namespace beast = messaging::detail::beast;
namespace bhttp = messaging::detail::bhttp;
using tcp = messaging::detail::tcp;

class ServerCore;

// One client connection. Everything it does runs on its own strand (the socket's
// executor); the public functions are safe from any thread and only post to it.
//
// A connection cycles: idle (waiting for the first byte of a request) -> reading (whole
// request within request_timeout of its first byte; for a new connection, of the accept)
// -> handling (the route's handler, bounded by handler_timeout) -> writing (bounded by
// write_timeout) -> idle again for keep-alive, or closed. Protocol errors are answered
// (400/413/431) and the connection closed after a short lingering drain, so the client
// reads the answer instead of a reset.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& core, tcp::socket socket);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers with the core and starts reading. Call once, right after construction.
  void start();
  // For a connection over max_connections: answers 503 and closes, without registering.
  void reject_overloaded();
  // Stop began: close now if idle, else finish the current request with Connection: close.
  void notify_shutdown();
  // The grace period is over: close whatever the state.
  void force_close();

  // From a Responder's sink, any thread: the answer to request number `sequence`.
  void post_response(std::uint64_t sequence, Response response);

 private:
  enum class Phase { idle, reading, handling, writing, closing, closed };

  void wait_for_request();
  void on_first_bytes(beast::error_code ec, std::size_t bytes);
  void begin_request();
  void on_header(beast::error_code ec);
  void read_body();
  void on_read(beast::error_code ec);
  void on_read_error(beast::error_code ec);
  void dispatch_request();
  void on_handler_response(std::uint64_t sequence, Response response);
  void on_handler_timeout(std::uint64_t sequence, beast::error_code ec);
  // Answers a request that was not (fully) parsed, then closes.
  void reply_and_close(unsigned status, std::string_view code, std::string message);
  void finish_response(Response response);
  void on_write(beast::error_code ec);
  void linger_close();
  void on_linger_read(beast::error_code ec, std::size_t bytes);
  void close_now();

  ServerCore& core_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  asio::steady_timer handler_timer_;
  std::string remote_address_;

  std::uint64_t registration_ = 0;  // 0: not registered
  Phase phase_ = Phase::idle;
  bool shutting_down_ = false;
  bool first_request_ = true;
  std::chrono::steady_clock::time_point deadline_;  // for the request being read

  // The request in progress, for its answer, log line and metrics.
  std::uint64_t sequence_ = 0;
  bool answered_ = false;
  bool keep_alive_ = false;
  bool linger_ = false;
  bool is_head_ = false;
  unsigned version_ = 11;
  std::string method_label_;
  std::string route_label_;
  std::string target_;
  std::string request_id_;
  std::chrono::steady_clock::time_point started_;
  unsigned status_ = 0;
  std::size_t linger_bytes_ = 0;
};

}  // namespace notifs::messaging::http::detail
