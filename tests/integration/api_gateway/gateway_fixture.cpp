#include "integration/api_gateway/gateway_fixture.hpp"

#include <catch2/catch.hpp>
#include <prometheus/registry.h>

#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {

namespace {

using namespace std::chrono_literals;

messaging::amqp::ConnectionSettings amqp_settings(const GatewayOptions& options, std::string name) {
  auto settings = amqp_test::connection_settings(std::move(name));
  if (!options.rabbitmq_url.empty()) {
    settings.url = options.rabbitmq_url;
  }
  return settings;
}

api_gateway::GatewaySettings gateway_settings(const GatewayOptions& options,
                                              const messaging::amqp::TopologySettings& topology,
                                              const std::string& database_url,
                                              std::uint16_t users_port,
                                              std::uint16_t templates_port) {
  api_gateway::GatewaySettings settings;
  auto& service = settings.service;
  service.server.service_name = "api_gateway_test";
  service.server.address = "127.0.0.1";
  service.server.port = 0;
  service.server.io_threads = 2;
  service.server.blocking_threads = 4;
  service.server.shutdown_grace = 5s;
  service.database.url = database_url;
  service.database.name = "postgres";
  service.database.size = 6;  // 2 ledger writers + 4 HTTP workers
  service.database.application_name = "api_gateway_test";
  service.service_token = kServiceToken;
  service.startup_timeout = 20s;

  settings.amqp = amqp_settings(options, "api_gateway_test");
  settings.topology = topology;
  settings.publish_timeout = options.publish_timeout;
  settings.publisher.connection = settings.amqp;
  settings.publisher.topology = topology;
  settings.publisher.confirm_timeout = options.publish_timeout;
  settings.publisher.connect_wait = std::min(settings.publisher.connect_wait, options.publish_timeout);

  const auto upstream = [&](const char* name, std::uint16_t port) {
    messaging::http::ServiceClientSettings client;
    client.name = name;
    client.base_url = "http://127.0.0.1:" + std::to_string(port);
    client.service_token = kServiceToken;
    client.attempt_timeout = options.upstream_attempt_timeout;
    client.deadline = 3 * options.upstream_attempt_timeout;
    client.breaker = options.breaker;
    return client;
  };
  settings.user_service = upstream("user_service", users_port);
  settings.template_service = upstream("template_service", templates_port);

  runtime::LookupCacheSettings cache;
  cache.ttl = options.cache_ttl;
  cache.stale_ttl = options.cache_stale_ttl;
  settings.directory.users = cache;
  settings.directory.templates = cache;
  settings.rate_limit.requests_per_second = options.rate_limit_per_second;
  settings.rate_limit.burst = options.rate_limit_burst;
  settings.ledger.pending_takeover = 2 * options.publish_timeout + 1s;
  settings.api_keys = {kApiKey, kOtherApiKey};
  return settings;
}

}  // namespace

GatewayFixture::GatewayFixture(GatewayOptions options)
    : options_(options),
      topology_(options.topology ? *options.topology : amqp_test::test_topology(options.queue_type)),
      cleanup_(options.rabbitmq_url.empty()
                   ? std::optional<amqp_test::TopologyCleanup>(std::in_place, topology_)
                   : std::nullopt),
      users_(kServiceToken),
      templates_(template_service_test::FixtureOptions{{}, kServiceToken}),
      probe_(amqp_settings(options, "probe")) {
  templates_.create(template_service_test::email_template(kEmailTemplate));
  templates_.create(template_service_test::push_template(kPushTemplate));
  app_ = std::make_unique<api_gateway::GatewayApp>(
      gateway_settings(options_, topology_, ledger_schema_.url(), users_.port(), templates_.port()),
      std::make_shared<prometheus::Registry>());
  app_->start();
}

GatewayFixture::~GatewayFixture() { stop_gateway(); }

void GatewayFixture::stop_gateway() {
  if (app_) {
    app_->stop();
  }
}

tests::RawResponse GatewayFixture::request(std::string_view method, std::string_view target,
                                           std::string_view body, Headers headers,
                                           bool authorize) {
  if (!body.empty()) {
    bool typed = false;
    for (const auto& [name, value] : headers) {
      typed = typed || name == "Content-Type";
    }
    if (!typed) {
      headers.emplace_back("Content-Type", "application/json");
    }
  }
  if (authorize) {
    headers.emplace_back("Authorization", std::string("Bearer ") + kApiKey);
  }
  auto response = tests::round_trip(port(), tests::make_request(method, target, headers, body));
  REQUIRE(response.has_value());
  return std::move(*response);
}

tests::RawResponse GatewayFixture::post_notification(const json& body, Headers headers,
                                                     bool authorize) {
  return request("POST", "/api/v1/notifications", body.dump(), std::move(headers), authorize);
}

std::string GatewayFixture::create_user(json extra) {
  json body = {{"name", "Ada Lovelace"},
               {"email", "ada-" + messaging::common::generate_uuid_v4() + "@example.com"},
               {"push_tokens", json::array({"token-" + messaging::common::generate_uuid_v4()})},
               {"preferences", {{"email", true}, {"push", true}}},
               {"locale", "en"}};
  for (auto& [key, value] : extra.items()) {
    body[key] = value;
  }
  return users_.create_user(body["name"], body["email"], body)["id"].get<std::string>();
}

json GatewayFixture::notification_body(const std::string& user_id, const std::string& request_id,
                                       std::string_view channel) {
  const bool email = channel == "email";
  return {{"notification_type", channel},
          {"user_id", user_id},
          {"template_code", email ? kEmailTemplate : kPushTemplate},
          {"variables", {{"name", "Ada"}, {"link", "https://example.com/start"}, {"count", 3}}},
          {"request_id", request_id}};
}

json GatewayFixture::accept(const json& body) {
  const auto response = post_notification(body);
  INFO(response.body);
  REQUIRE(response.status == 202);
  return response.json()["data"];
}

std::string GatewayFixture::accept_notification(const std::string& user_id,
                                                std::string_view channel) {
  const auto data = accept(notification_body(user_id, unique_request_id(), channel));
  REQUIRE(data["status"] == "queued");
  return data["notification_id"].get<std::string>();
}

std::string error_code(const tests::RawResponse& response) {
  const auto body = json::parse(response.body, nullptr, false);
  if (!body.is_object()) return {};
  const auto error = body.find("error");
  if (error == body.end() || !error->is_object()) return {};
  const auto code = error->find("code");
  if (code == error->end() || !code->is_string()) return {};
  return code->get<std::string>();
}

std::string unique_request_id() { return "req-" + messaging::common::generate_uuid_v4(); }

}  // namespace notifs::gateway_test
