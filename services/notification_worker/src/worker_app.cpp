#include "worker_app.hpp"

#include <utility>

#include <prometheus/registry.h>

#include "email_channel.hpp"
#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "push_channel.hpp"
#include "worker_migrations.hpp"

namespace notifs::worker {

namespace http = messaging::http;
namespace amqp = messaging::amqp;

namespace {

std::shared_ptr<prometheus::Registry> or_new(std::shared_ptr<prometheus::Registry> registry) {
  return registry ? std::move(registry) : std::make_shared<prometheus::Registry>();
}

std::unique_ptr<http::ServiceClient> optional_client(
    const std::optional<http::ServiceClientSettings>& settings,
    const std::shared_ptr<prometheus::Registry>& registry) {
  return settings ? std::make_unique<http::ServiceClient>(*settings, registry) : nullptr;
}

std::unique_ptr<ChannelSender> make_sender(const WorkerSettings& settings,
                                           PushTokenRegistry* tokens,
                                           const std::shared_ptr<prometheus::Registry>& registry) {
  if (settings.channel == "push") {
    return std::make_unique<PushChannel>(settings.push, tokens, registry);
  }
  return std::make_unique<EmailChannel>(settings.email);
}

amqp::ConsumerSettings consumer_settings(const WorkerSettings& settings) {
  amqp::ConsumerSettings consumer;
  consumer.connection = settings.amqp;
  consumer.topology = settings.topology;
  consumer.channel = settings.channel;
  consumer.prefetch = settings.concurrency;
  consumer.stop_timeout = settings.stop_timeout;
  return consumer;
}

}  // namespace

WorkerApp::WorkerApp(WorkerSettings settings, std::shared_ptr<prometheus::Registry> registry)
    : settings_(std::move(settings)),
      registry_(or_new(std::move(registry))),
      metrics_(registry_.get(), settings_.channel),
      service_(settings_.service, registry_, migrations(), "notification_worker"),
      templates_(settings_.template_service, registry_),
      users_(optional_client(settings_.user_service, registry_)),
      tokens_(users_ ? std::make_unique<PushTokenRegistry>(*users_) : nullptr),
      publisher_(settings_.publisher, registry_),
      renderer_(templates_, messaging::common::SystemClock::instance(), settings_.renderer),
      ledger_(service_.pool(), settings_.ledger),
      status_(publisher_, settings_.topology.names),
      sender_(make_sender(settings_, tokens_.get(), registry_)),
      pipeline_(DeliveryPipelineSettings{settings_.channel, settings_.topology.retry_tiers},
                renderer_, ledger_, *sender_, status_, metrics_),
      consumer_(consumer_settings(settings_), publisher_, pipeline_.handler(), registry_) {}

WorkerApp::~WorkerApp() { stop(); }

void WorkerApp::start() {
  runtime::ServiceExtras extras;
  extras.readiness_checks.emplace_back("rabbitmq", [this] {
    const bool up = consumer_.connected();
    return http::DependencyStatus{up, up ? "up" : "down",
                                  up ? "" : "not subscribed to the " + settings_.channel + " queue"};
  });
  extras.readiness_checks.emplace_back("template_service",
                                       [this] { return templates_.health_check(); });
  const auto providers = sender_->providers();
  for (std::size_t i = 0; i < providers.size(); ++i) {
    extras.readiness_checks.emplace_back(providers[i].name,
                                         [this, i] { return sender_->readiness(i); });
  }
  service_.start(http::Router{}, std::move(extras));
  consumer_.start();
  started_ = true;
  messaging::common::logger("notification_worker")
      ->info("consuming the {} queue with {} messages in flight", settings_.channel,
             settings_.concurrency);
}

std::uint16_t WorkerApp::port() const { return service_.port(); }

void WorkerApp::stop() {
  if (!started_ || stopped_) {
    return;
  }
  stopped_ = true;
  // Messages first: in-flight sends finish, are recorded and acked while the database, the
  // publisher and the providers are all still up.
  consumer_.stop();
  service_.stop();
  if (!publisher_.flush(settings_.stop_timeout)) {
    messaging::common::logger("notification_worker")
        ->warn("status events still unconfirmed at shutdown");
  }
}

int WorkerApp::run_until_signal(const std::function<void()>& on_started) {
  if (!started_) {
    start();
  }
  const int code = service_.run_until_signal(on_started);
  stop();
  return code;
}

}  // namespace notifs::worker
