#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "email_channel.hpp"
#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/config_reader.hpp"
#include "notifs/runtime/database_service.hpp"
#include "push_channel.hpp"
#include "send_ledger.hpp"
#include "render_client.hpp"

namespace notifs::worker {

// Everything one worker process is configured with, read once at start.
struct WorkerSettings {
  std::string channel = "email";  // --channel / CHANNEL: "email" | "push"
  // HTTP (health, ready, metrics; 8000 for email, 4100 for push) and the send ledger's
  // database.
  runtime::DatabaseServiceSettings service;
  messaging::amqp::ConnectionSettings amqp;
  messaging::amqp::TopologySettings topology;
  // Status events and retry republishes; `connection` and `topology` copy the above.
  messaging::amqp::PublisherSettings publisher;
  std::uint16_t concurrency = 256;  // messages in flight (the consumer's prefetch)
  std::chrono::milliseconds stop_timeout{30000};  // SIGTERM: how long in-flight sends may take
  messaging::http::ServiceClientSettings template_service;
  // Push only, optional: where unregistered device tokens are removed.
  std::optional<messaging::http::ServiceClientSettings> user_service;
  RenderClientSettings renderer;
  SendLedgerSettings ledger;
  EmailChannelSettings email;  // used when channel == "email"
  PushChannelSettings push;    // used when channel == "push"
};

// Reads CHANNEL (or --channel), PORT (default 8000 email, 4100 push), RABBITMQ_URL,
// RABBITMQ_QUEUE_TYPE, TEMPLATE_SERVICE_URL, USER_SERVICE_URL (push, optional),
// UPSTREAM_TIMEOUT_MS, WORKER_CONCURRENCY, WORKER_STOP_TIMEOUT_MS, RENDER_CACHE_TTL_MS,
// SEND_LEDGER_WRITERS; for email SMTP_URL (comma-separated, in order of preference),
// SMTP_FROM, SMTP_MAX_CONNECTIONS, SMTP_SENDER_THREADS, SMTP_TIMEOUT_MS, SMTP_REQUIRE_TLS,
// SMTP_VERIFY_TLS, SMTP_CA_FILE; for push PUSH_PROVIDER_URL (comma-separated) and
// PUSH_PROVIDER_TOKEN; and those of read_database_service_settings(). Problems are
// recorded on `config`.
WorkerSettings read_worker_settings(runtime::ConfigReader& config);

}  // namespace notifs::worker
