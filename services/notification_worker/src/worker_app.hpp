#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "channel_sender.hpp"
#include "delivery_pipeline.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/database_service.hpp"
#include "push_token_registry.hpp"
#include "send_ledger.hpp"
#include "status_reporter.hpp"
#include "render_client.hpp"
#include "worker_metrics.hpp"
#include "worker_settings.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::worker {

// notification_worker as one object: the send ledger's database and the HTTP server
// (runtime::DatabaseService: /health, /ready, /metrics), the consumer of its channel's
// queue, the publisher of status events and retries, the template renderer, the channel's
// providers and the delivery pipeline. Tests run it in-process on port 0; main() runs it
// until a signal.
//
// /ready lists the database, RabbitMQ (the consumer subscribed), template_service, and
// each provider's breaker (SMTP providers as scheme://host:port, without credentials;
// push ones as "push-1", ...): ready while at least one provider's breaker lets calls
// through.
//
// Thread-safety: construct, start, stop and destroy from one control thread.
class WorkerApp {
 public:
  // Throws std::invalid_argument for unusable settings (no provider, a bad SMTP_FROM).
  WorkerApp(WorkerSettings settings, std::shared_ptr<prometheus::Registry> registry);
  ~WorkerApp();
  WorkerApp(const WorkerApp&) = delete;
  WorkerApp& operator=(const WorkerApp&) = delete;

  // Applies the migrations, starts the HTTP server and subscribes. Throws what
  // runtime::DatabaseService::start and Consumer::start throw.
  void start();
  std::uint16_t port() const;
  // Graceful: stops taking messages, lets in-flight ones finish (up to stop_timeout) and
  // ack, then stops the HTTP server and waits for outstanding status events. Idempotent.
  void stop();
  // start() unless started, then run until SIGINT/SIGTERM, then stop(); the exit code.
  int run_until_signal(const std::function<void()>& on_started = {});

  const WorkerSettings& settings() const { return settings_; }

 private:
  WorkerSettings settings_;
  std::shared_ptr<prometheus::Registry> registry_;
  WorkerMetrics metrics_;
  runtime::DatabaseService service_;
  messaging::http::ServiceClient templates_;
  std::unique_ptr<messaging::http::ServiceClient> users_;
  std::unique_ptr<PushTokenRegistry> tokens_;
  messaging::amqp::AmqpPublisher publisher_;
  RenderClient renderer_;
  SendLedger ledger_;
  StatusReporter status_;
  std::unique_ptr<ChannelSender> sender_;
  DeliveryPipeline pipeline_;
  messaging::amqp::Consumer consumer_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace notifs::worker
