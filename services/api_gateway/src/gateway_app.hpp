#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "api_keys.hpp"
#include "directory.hpp"
#include "gateway_metrics.hpp"
#include "gateway_settings.hpp"
#include "ledger.hpp"
#include "notification_intake.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/database_service.hpp"
#include "rate_limiter.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::api_gateway {

// api_gateway as one object: its ledger database (runtime::DatabaseService: pool,
// migrations, HTTP server with /health, /ready, /metrics), the confirming publisher, the
// status.queue consumer, the user and template clients behind the Directory, the rate
// limiter and the client API. Tests run it in-process on port 0; main() runs it until a
// signal.
//
// /ready lists the database, RabbitMQ (a publisher connection up) and user_service and
// template_service (their /health and breaker state).
//
// Thread-safety: construct, start, stop and destroy from one control thread. start()
// blocks until the migrations are applied and the status consumer has subscribed (or,
// with the broker unreachable, keeps trying in the background).
class GatewayApp {
 public:
  GatewayApp(GatewaySettings settings, std::shared_ptr<prometheus::Registry> registry);
  ~GatewayApp();
  GatewayApp(const GatewayApp&) = delete;
  GatewayApp& operator=(const GatewayApp&) = delete;

  // Throws what runtime::DatabaseService::start and Consumer::start throw.
  void start();
  std::uint16_t port() const;
  // Stops serving (in-flight requests are answered), then the status consumer, then
  // waits for outstanding publishes. Idempotent.
  void stop();
  // start() unless started, then serve until SIGINT/SIGTERM; returns the exit code.
  int run_until_signal(const std::function<void()>& on_started = {});

  const GatewaySettings& settings() const { return settings_; }
  Ledger& ledger() { return ledger_; }
  Directory& directory() { return directory_; }

 private:
  GatewaySettings settings_;
  std::shared_ptr<prometheus::Registry> registry_;
  GatewayMetrics metrics_;
  runtime::DatabaseService service_;
  messaging::http::ServiceClient users_;
  messaging::http::ServiceClient templates_;
  Directory directory_;
  RateLimiter limiter_;
  ApiKeys keys_;
  messaging::amqp::AmqpPublisher publisher_;
  Ledger ledger_;
  NotificationIntake intake_;
  messaging::amqp::Consumer status_consumer_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace notifs::api_gateway
