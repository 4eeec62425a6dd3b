#pragma once

// The whole intake path in-process: api_gateway (GatewayApp) with a ledger schema of its
// own, a topology of its own (unique prefix) on the RabbitMQ scripts/test started, and a
// real user_service and template_service on loopback, each on a schema of its own. Every
// request goes over real sockets.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gateway_app.hpp"
#include "integration/amqp_test_support.hpp"
#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"
#include "integration/template_service/template_service_support.hpp"
#include "integration/user_service/user_service_support.hpp"

namespace notifs::gateway_test {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

inline constexpr const char* kApiKey = "gateway-test-key-1";
inline constexpr const char* kOtherApiKey = "gateway-test-key-2";
inline constexpr const char* kServiceToken = "gateway-test-service-token";
// Seeded by the fixture in template_service.
inline constexpr const char* kEmailTemplate = "welcome_email";
inline constexpr const char* kPushTemplate = "alert_push";

struct GatewayOptions {
  std::chrono::milliseconds publish_timeout{3000};
  double rate_limit_per_second = 0;  // off
  double rate_limit_burst = 0;
  messaging::amqp::QueueType queue_type = messaging::amqp::QueueType::quorum;
  std::chrono::milliseconds cache_ttl{30000};
  std::chrono::milliseconds cache_stale_ttl{600000};
  // The user and template clients' breaker: opens after 4 failed calls of the last 8 and
  // stays open 5 s, so outage tests see it open quickly.
  messaging::resilience::CircuitBreakerSettings breaker{8, 4, 0.5, std::chrono::milliseconds(2000),
                                                        std::chrono::milliseconds(5000), 1};
  std::chrono::milliseconds upstream_attempt_timeout{1000};
  // The broker's URL; empty: NOTIFS_TEST_RABBITMQ_URL. Tests that run a real worker process
  // (which declares the contract's topology, unprefixed) give the gateway a vhost of their
  // own; the fixture then leaves deleting the topology to whoever owns the vhost.
  std::string rabbitmq_url;
  // Instead of amqp_test::test_topology(queue_type): other retry tiers, or the contract's
  // names in a vhost of the test's own. Whatever else declares it must use the same.
  std::optional<messaging::amqp::TopologySettings> topology;
};

class GatewayFixture {
 public:
  explicit GatewayFixture(GatewayOptions options = {});
  ~GatewayFixture();
  GatewayFixture(const GatewayFixture&) = delete;
  GatewayFixture& operator=(const GatewayFixture&) = delete;

  api_gateway::GatewayApp& app() { return *app_; }
  std::uint16_t port() const { return app_->port(); }
  user_service_test::UserServiceFixture& users() { return users_; }
  template_service_test::TemplateServiceFixture& templates() { return templates_; }
  const messaging::amqp::TopologySettings& topology() const { return topology_; }
  const pg_test::TestSchema& ledger_schema() const { return ledger_schema_; }
  // A raw client for the fixture's queues (its own connection).
  amqp_test::BrokerProbe& probe() { return probe_; }
  std::string email_queue() const { return topology_.names.main_queue("email"); }
  std::string push_queue() const { return topology_.names.main_queue("push"); }

  // POST /api/v1/notifications with `Authorization: Bearer kApiKey` (unless `authorize`
  // is false) and Content-Type: application/json; REQUIREs an answer.
  tests::RawResponse post_notification(const json& body, Headers headers = {},
                                       bool authorize = true);
  // Any request to the gateway with the API key; REQUIREs an answer.
  tests::RawResponse request(std::string_view method, std::string_view target,
                             std::string_view body = {}, Headers headers = {},
                             bool authorize = true);
  tests::RawResponse get(std::string_view target) { return request("GET", target); }
  // POSTs `body`, REQUIREs 202 and returns the answer's data.
  json accept(const json& body);
  // accept() of notification_body() with a new request id; REQUIREs status queued and
  // returns the notification id.
  std::string accept_notification(const std::string& user_id, std::string_view channel = "email");

  // A user in user_service with an email address, a push token and both channels on,
  // unless `extra` says otherwise (its members override the defaults). Returns its id.
  std::string create_user(json extra = json::object());
  // {"notification_type", "user_id", "template_code", "variables", "request_id"} for the
  // seeded template of the channel.
  static json notification_body(const std::string& user_id, const std::string& request_id,
                                std::string_view channel = "email");

  // Stops the gateway (ledger writers, publisher, consumer) before the test inspects the
  // ledger from outside. Idempotent.
  void stop_gateway();

 private:
  GatewayOptions options_;
  messaging::amqp::TopologySettings topology_;
  std::optional<amqp_test::TopologyCleanup> cleanup_;
  user_service_test::UserServiceFixture users_;
  template_service_test::TemplateServiceFixture templates_;
  pg_test::TestSchema ledger_schema_;
  amqp_test::BrokerProbe probe_;
  std::unique_ptr<api_gateway::GatewayApp> app_;
};

// A unique request id for one test ("req-<random>").
std::string unique_request_id();
// error.code of an error envelope; empty when the body is not one.
std::string error_code(const tests::RawResponse& response);

}  // namespace notifs::gateway_test
