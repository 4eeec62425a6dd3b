#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "directory.hpp"
#include "ledger.hpp"
#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/config_reader.hpp"
#include "notifs/runtime/database_service.hpp"
#include "rate_limiter.hpp"

namespace notifs::api_gateway {

// Everything the gateway process is configured with, read once at start.
struct GatewaySettings {
  runtime::DatabaseServiceSettings service;  // server, database pool, service_token
  messaging::amqp::ConnectionSettings amqp;
  // Its `connection` and `topology` are copies of `amqp` and `topology`; its
  // confirm_timeout is publish_timeout.
  messaging::amqp::PublisherSettings publisher;
  messaging::amqp::TopologySettings topology;
  messaging::http::ServiceClientSettings user_service;
  messaging::http::ServiceClientSettings template_service;
  DirectorySettings directory;
  RateLimitSettings rate_limit;
  LedgerSettings ledger;
  std::vector<std::string> api_keys;  // secret: never logged
  std::chrono::milliseconds publish_timeout{5000};  // publish to broker ack, then 503
};

// Reads the gateway's variables (see CONTRACT.md and the issue): GATEWAY_API_KEYS,
// RABBITMQ_URL, RABBITMQ_QUEUE_TYPE, PUBLISH_TIMEOUT_MS, USER_SERVICE_URL,
// TEMPLATE_SERVICE_URL, UPSTREAM_TIMEOUT_MS, CACHE_TTL_MS, CACHE_STALE_TTL_MS,
// CACHE_MAX_ENTRIES, NEGATIVE_CACHE_TTL_MS, RATE_LIMIT_PER_SECOND, RATE_LIMIT_BURST,
// LEDGER_WRITERS, LEDGER_MAX_BATCH, PENDING_TAKEOVER_MS, and those of
// read_database_service_settings(). Problems, cross-variable rules included, are
// recorded on `config`; the caller's config.finish() reports them all at once.
GatewaySettings read_gateway_settings(runtime::ConfigReader& config);

}  // namespace notifs::api_gateway
