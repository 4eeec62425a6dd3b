// The server side of bench/http_server.sh: serves the same small JSON answer either
// through the project's HttpServer (router, request ids, metrics, envelope) or through a
// bare Beast keep-alive loop, so wrk can measure both in one run and report the ratio,
// which says what the building block costs over the library it is built on.
//
//   http_server_bench framework PORT THREADS
//   http_server_bench raw PORT THREADS
#include "detail/asio.hpp"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/server.hpp"

namespace {

namespace asio = notifs::messaging::detail::asio;
namespace beast = notifs::messaging::detail::beast;
namespace bhttp = notifs::messaging::detail::bhttp;
using tcp = notifs::messaging::detail::tcp;
namespace http = notifs::messaging::http;

const std::string kBody =
    R"({"success":true,"data":{"pong":true},"error":null,"message":"ok","meta":null})";

int run_framework(std::uint16_t port, std::size_t threads) {
  http::Router router;
  router.add(http::Method::get, "/ping", [](const http::Request&) {
    return http::ok_response(200, {{"pong", true}});
  });
  http::ServerSettings settings;
  settings.service_name = "bench";
  settings.address = "127.0.0.1";
  settings.port = port;
  settings.io_threads = threads;
  http::HttpServer server(settings, std::move(router), std::make_shared<prometheus::Registry>());
  return server.run_until_signal();
}

// A bare keep-alive session: read, answer, repeat. No timeouts, ids or metrics.
class RawSession : public std::enable_shared_from_this<RawSession> {
 public:
  explicit RawSession(tcp::socket socket) : stream_(std::move(socket)) {}

  void read() {
    request_ = {};
    bhttp::async_read(stream_, buffer_, request_,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) {
                        if (!ec) self->answer();
                      });
  }

 private:
  void answer() {
    auto response = std::make_shared<bhttp::response<bhttp::string_body>>(bhttp::status::ok,
                                                                        request_.version());
    response->set(bhttp::field::content_type, "application/json");
    response->keep_alive(request_.keep_alive());
    response->body() = kBody;
    response->prepare_payload();
    bhttp::async_write(stream_, *response,
                       [self = shared_from_this(), response](beast::error_code ec, std::size_t) {
                         if (!ec && response->keep_alive()) self->read();
                       });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
};

void accept_loop(tcp::acceptor& acceptor) {
  acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
    if (!ec) std::make_shared<RawSession>(std::move(socket))->read();
    accept_loop(acceptor);
  });
}

int run_raw(std::uint16_t port, std::size_t threads) {
  asio::io_context io(static_cast<int>(threads));
  tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), port});
  accept_loop(acceptor);
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](beast::error_code, int) { io.stop(); });
  std::vector<std::thread> pool;
  for (std::size_t i = 1; i < threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& thread : pool) thread.join();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: http_server_bench framework|raw PORT THREADS\n";
    return 2;
  }
  const std::string mode = argv[1];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[2]));
  const auto threads = static_cast<std::size_t>(std::atoi(argv[3]));
  if (mode == "framework") return run_framework(port, threads);
  if (mode == "raw") return run_raw(port, threads);
  std::cerr << "unknown mode " << mode << "\n";
  return 2;
}
