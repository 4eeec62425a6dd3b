#pragma once

// A deliberately low-level HTTP client for the server's integration tests: it sends the
// exact bytes a test writes (malformed, slow, pipelined, half-closed) and parses what comes
// back with Beast, every step bounded by a timeout so a server bug fails a test instead
// of hanging it.
#include "detail/asio.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace notifs::tests {

namespace asio = messaging::detail::asio;
namespace beast = messaging::detail::beast;
namespace bhttp = messaging::detail::bhttp;
using tcp = messaging::detail::tcp;

struct RawResponse {
  unsigned status = 0;
  unsigned version = 11;
  bool keep_alive = false;
  bhttp::fields headers;
  std::string body;

  std::string header(std::string_view name) const {
    const auto value = headers[beast::string_view(name.data(), name.size())];
    return std::string(value.data(), value.size());
  }
  bool has_header(std::string_view name) const {
    return headers.find(beast::string_view(name.data(), name.size())) != headers.end();
  }
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

// Builds a request's bytes. Content-Length is added for a non-empty body unless the
// caller's headers already frame it.
inline std::string make_request(std::string_view method, std::string_view target,
                                std::vector<std::pair<std::string, std::string>> headers = {},
                                std::string_view body = {}, std::string_view version = "HTTP/1.1") {
  std::string out;
  out.append(method).append(" ").append(target).append(" ").append(version).append("\r\n");
  out.append("Host: 127.0.0.1\r\n");
  bool framed = false;
  for (const auto& [name, value] : headers) {
    framed = framed || name == "Content-Length" || name == "Transfer-Encoding";
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!body.empty() && !framed) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

inline std::string json_post(std::string_view target, std::string_view body,
                             std::vector<std::pair<std::string, std::string>> headers = {}) {
  headers.emplace_back("Content-Type", "application/json");
  return make_request("POST", target, std::move(headers), body);
}

class RawClient {
 public:
  explicit RawClient(std::uint16_t port,
                     std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
                     std::optional<int> receive_buffer = std::nullopt)
      : stream_(ioc_), timeout_(timeout) {
    auto& socket = stream_.socket();
    socket.open(tcp::v4());
    if (receive_buffer) {
      // Set before connect so the advertised window is small from the start.
      socket.set_option(asio::socket_base::receive_buffer_size(*receive_buffer));
    }
    socket.connect(tcp::endpoint(asio::ip::address_v4::loopback(), port));
  }

  // False when the server already closed or reset the connection.
  bool send(std::string_view bytes) {
    beast::error_code result;
    stream_.expires_after(timeout_);
    asio::async_write(stream_, asio::buffer(bytes.data(), bytes.size()),
                      [&result](beast::error_code ec, std::size_t) { result = ec; });
    run();
    last_error = result;
    return !result;
  }

  // The next response, or nullopt (and last_error) on timeout, EOF or a reset.
  std::optional<RawResponse> read(bool head_request = false) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    parser.skip(head_request);
    beast::error_code result;
    stream_.expires_after(timeout_);
    bhttp::async_read(stream_, buffer_, parser,
                      [&result](beast::error_code ec, std::size_t) { result = ec; });
    run();
    last_error = result;
    if (result) {
      return std::nullopt;
    }
    auto message = parser.release();
    RawResponse response;
    response.status = message.result_int();
    response.version = message.version();
    response.keep_alive = message.keep_alive();
    response.body = std::move(message.body());
    response.headers = std::move(message.base());
    return response;
  }

  // Reads and discards until the server closes (true) or `within` passes (false).
  bool wait_closed(std::chrono::milliseconds within) {
    std::vector<char> scratch(64 * 1024);
    buffer_.clear();
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (true) {
      beast::error_code result;
      stream_.expires_at(deadline);
      stream_.async_read_some(asio::buffer(scratch), [&result](beast::error_code ec,
                                                               std::size_t) { result = ec; });
      run();
      if (result == beast::error::timeout) {
        return false;
      }
      if (result) {
        return true;  // EOF or reset: closed either way
      }
    }
  }

  void shutdown_send() { stream_.socket().shutdown(tcp::socket::shutdown_send); }

  beast::error_code last_error;

 private:
  void run() {
    ioc_.restart();
    ioc_.run();
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
};

// One request on a new connection.
inline std::optional<RawResponse> round_trip(std::uint16_t port, std::string_view request,
                                           bool head_request = false) {
  RawClient client(port);
  if (!client.send(request)) {
    return std::nullopt;
  }
  return client.read(head_request);
}

}  // namespace notifs::tests
