// A real server process for tests that need one: signals, exit codes, a child that
// outlives a request. Prints "listening PORT" on stdout once it accepts connections.
//
//   test_http_server [PORT]      (0 or nothing: a free port)
//
// Routes: GET /slow?ms=N answers after N ms without holding an io thread (the handler
// runs on the worker pool); POST /echo answers with the JSON object it was sent.
#include <chrono>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string_view>
#include <thread>

#include <prometheus/registry.h>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/server.hpp"

namespace {

namespace http = notifs::messaging::http;

constexpr long kMaxSlowMs = 60000;

bool parse_number(std::string_view text, long& out) {
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

http::Router make_router() {
  http::Router router;
  router.add(
      http::Method::get, "/slow",
      [](const http::Request& request) {
        long ms = 100;
        if (const auto text = request.query_param("ms");
            text && (!parse_number(*text, ms) || ms < 0 || ms > kMaxSlowMs)) {
          throw http::HttpError(400, "validation_failed", "ms must be 0 to 60000",
                                {{"ms", "must be an integer from 0 to 60000"}});
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        return http::ok_response(200, {{"slept_ms", ms}});
      },
      http::Execution::blocking);
  router.add(http::Method::post, "/echo", [](const http::Request& request) {
    return http::ok_response(200, http::parse_json_object(request));
  });
  return router;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  if (argc > 1 && (!parse_number(argv[1], port) || port < 0 || port > 65535)) {
    std::cerr << "usage: test_http_server [PORT]\n";
    return 2;
  }
  notifs::messaging::common::LoggingSettings logging;
  logging.service = "test_http_server";
  if (const char* level = std::getenv("LOG_LEVEL")) {
    notifs::messaging::common::parse_log_level(level, logging.level);
  }
  notifs::messaging::common::configure_logging(logging);

  http::ServerSettings settings;
  settings.service_name = "test_http_server";
  settings.address = "127.0.0.1";
  settings.port = static_cast<std::uint16_t>(port);
  try {
    http::HttpServer server(settings, make_router(), std::make_shared<prometheus::Registry>());
    // Announced only once SIGTERM is caught, so a test may signal as soon as it reads this.
    return server.run_until_signal(
        [&server] { std::cout << "listening " << server.port() << std::endl; });
  } catch (const std::exception& error) {
    std::cerr << "test_http_server: " << error.what() << '\n';
    return 1;
  }
}
