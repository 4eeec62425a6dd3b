// A local stand-in for an FCM HTTP v1 endpoint, for scripts/run: the push worker needs a
// provider to complete its pipeline, and a developer wants to see what it would have sent.
// Nothing is delivered anywhere.
//
//   PUSH_PROVIDER_TOKEN=... dev_push_provider [PORT]      (PORT: else $PORT, else 4200)
//
// POST /v1/projects/{project}/messages:send with `Authorization: Bearer <token>` and a body
// naming message.token answers 200 {"name": "projects/<project>/messages/<n>"}; a wrong or
// missing token answers FCM's 401, a body without message.token FCM's 400. Every request
// is logged as one line with its body and the answer (scripts/run keeps the output in
// .run/logs/push-provider.log).
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/server.hpp"

namespace {

namespace http = notifs::messaging::http;
using nlohmann::json;

constexpr std::uint16_t kDefaultPort = 4200;

// google.rpc.Status, the shape of every FCM v1 error.
http::Response fcm_error(unsigned code, std::string_view status, std::string_view message) {
  http::Response response;
  response.status = code;
  response.body = json{{"error", {{"code", code}, {"message", message}, {"status", status}}}}.dump();
  return response;
}

class PushProvider {
 public:
  explicit PushProvider(std::string token) : expected_auth_("Bearer " + std::move(token)) {}

  http::Response answer(const http::Request& request) {
    const auto project = std::string(request.path_param("project"));
    const auto auth = request.headers.get("Authorization");
    auto body = json::parse(request.body, nullptr, false);
    http::Response response;
    if (!auth || *auth != expected_auth_) {
      response = fcm_error(401, "UNAUTHENTICATED", "bad or missing bearer token");
    } else if (body.is_discarded() || !body.is_object() || !body.contains("message") ||
               !body["message"].is_object() || !body["message"].contains("token") ||
               !body["message"]["token"].is_string()) {
      response = fcm_error(400, "INVALID_ARGUMENT", "message.token is required");
    } else {
      response.body =
          json{{"name", "projects/" + project + "/messages/" + std::to_string(++sent_)}}.dump();
    }
    record(request, std::move(body), response);
    return response;
  }

 private:
  // One line per request, time-stamped by the logger.
  static void record(const http::Request& request, json body, const http::Response& response) {
    json line = {{"request_id", request.request_id},
                 {"target", request.target},
                 {"authorized", response.status != 401},
                 {"status", response.status},
                 {"answer", json::parse(response.body, nullptr, false)},
                 {"body", body.is_discarded() ? json(request.body) : std::move(body)}};
    notifs::messaging::common::logger("push")->info("{}", line.dump());
  }

  const std::string expected_auth_;
  std::atomic<std::uint64_t> sent_{0};
};

bool parse_port(std::string_view text, std::uint16_t& out) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value > 65535) return false;
  out = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = kDefaultPort;
  const char* port_text = argc > 1 ? argv[1] : std::getenv("PORT");
  if (port_text != nullptr && !parse_port(port_text, port)) {
    std::cerr << "dev_push_provider: port must be 0..65535, got '" << port_text << "'\n";
    return 2;
  }
  const char* token = std::getenv("PUSH_PROVIDER_TOKEN");
  if (token == nullptr || *token == '\0') {
    std::cerr << "dev_push_provider: PUSH_PROVIDER_TOKEN is required\n";
    return 2;
  }
  notifs::messaging::common::LoggingSettings logging;
  logging.service = "dev_push_provider";
  notifs::messaging::common::configure_logging(logging);

  PushProvider provider(token);
  http::Router router;
  // Blocking: writing the request log must not hold an io thread.
  router.add(
      http::Method::post, "/v1/projects/{project}/messages:send",
      [&provider](const http::Request& request) { return provider.answer(request); },
      http::Execution::blocking);

  http::ServerSettings settings;
  settings.service_name = "dev_push_provider";
  settings.address = "127.0.0.1";
  settings.port = port;
  settings.io_threads = 1;
  settings.blocking_threads = 1;
  settings.shutdown_grace = std::chrono::milliseconds(2000);
  try {
    http::HttpServer server(settings, std::move(router), std::make_shared<prometheus::Registry>());
    return server.run_until_signal([&server] {
      std::cout << json{{"listening", server.port()}}.dump() << std::endl;
    });
  } catch (const std::exception& error) {
    std::cerr << "dev_push_provider: " << error.what() << '\n';
    return 1;
  }
}
