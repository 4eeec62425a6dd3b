#include "gateway_app.hpp"

#include <utility>

#include <prometheus/registry.h>

#include "gateway_migrations.hpp"
#include "notification_routes.hpp"
#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "status_updates.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;
namespace amqp = messaging::amqp;

namespace {

std::shared_ptr<prometheus::Registry> or_new(std::shared_ptr<prometheus::Registry> registry) {
  return registry ? std::move(registry) : std::make_shared<prometheus::Registry>();
}

amqp::ConsumerSettings status_consumer_settings(const GatewaySettings& settings) {
  amqp::ConsumerSettings consumer;
  consumer.connection = settings.amqp;
  consumer.connection.connection_name = "api_gateway status";
  consumer.topology = settings.topology;
  consumer.queue = settings.topology.names.status_queue();
  // status.queue has no retry tiers: an event the ledger could not record goes back to
  // the queue (after requeue_delay) until the database returns.
  consumer.retries_enabled = false;
  // Enough events in flight to fill the ledger's batches.
  consumer.prefetch = 512;
  return consumer;
}

}  // namespace

GatewayApp::GatewayApp(GatewaySettings settings, std::shared_ptr<prometheus::Registry> registry)
    : settings_(std::move(settings)),
      registry_(or_new(std::move(registry))),
      metrics_(registry_.get()),
      service_(settings_.service, registry_, migrations(), "api_gateway"),
      users_(settings_.user_service, registry_),
      templates_(settings_.template_service, registry_),
      directory_(users_, templates_, messaging::common::SystemClock::instance(),
                 settings_.directory),
      limiter_(settings_.rate_limit, messaging::common::SystemClock::instance()),
      keys_(settings_.api_keys),
      publisher_(settings_.publisher, registry_),
      ledger_(service_.pool(), settings_.ledger),
      intake_(ledger_, directory_, publisher_, metrics_, settings_.topology.names),
      status_consumer_(status_consumer_settings(settings_), publisher_,
                       make_status_handler(ledger_, metrics_), registry_) {}

GatewayApp::~GatewayApp() { stop(); }

void GatewayApp::start() {
  http::Router router;
  router.set_guard([guard = keys_.guard(), this](const http::Request& request) {
    auto refusal = guard(request);
    if (refusal) {
      metrics_.rejected(Rejection::unauthorized);
    }
    return refusal;
  });
  add_notification_routes(router, keys_, limiter_, intake_, ledger_, metrics_);

  runtime::ServiceExtras extras;
  extras.require_service_token = false;
  extras.readiness_checks.emplace_back("rabbitmq", [this] {
    const auto up = publisher_.connected();
    return http::DependencyStatus{up > 0, up > 0 ? "up" : "down",
                                  up > 0 ? "" : "no publisher connection to the broker"};
  });
  extras.readiness_checks.emplace_back("user_service", [this] { return users_.health_check(); });
  extras.readiness_checks.emplace_back("template_service",
                                       [this] { return templates_.health_check(); });
  extras.scrape_hooks.emplace_back([this] { metrics_.sync_directory(directory_.stats()); });

  status_consumer_.start();
  service_.start(std::move(router), std::move(extras));
  started_ = true;
}

std::uint16_t GatewayApp::port() const { return service_.port(); }

void GatewayApp::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  service_.stop();
  status_consumer_.stop();
  if (!publisher_.flush(settings_.publish_timeout)) {
    messaging::common::logger("api_gateway")
        ->warn("publishes still unconfirmed at shutdown; their requests got no 202");
  }
}

int GatewayApp::run_until_signal(const std::function<void()>& on_started) {
  if (!started_) {
    start();
  }
  const int code = service_.run_until_signal(on_started);
  stop();
  return code;
}

}  // namespace notifs::api_gateway
