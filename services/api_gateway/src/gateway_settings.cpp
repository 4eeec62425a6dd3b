#include "gateway_settings.hpp"

#include <algorithm>

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "notifs/runtime/broker_settings.hpp"

namespace notifs::api_gateway {
namespace {

using std::chrono::milliseconds;

constexpr std::size_t kMinApiKeyLength = 16;
constexpr std::size_t kMaxApiKeyLength = 256;
constexpr double kMaxRatePerSecond = 1'000'000.0;

bool visible_ascii(std::string_view key) {
  for (const char c : key) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x21 || byte > 0x7e) {
      return false;
    }
  }
  return true;
}

void check_api_keys(runtime::ConfigReader& config, const std::vector<std::string>& keys) {
  if (keys.empty()) {
    config.report_problem("GATEWAY_API_KEYS", "is required (comma-separated API keys)");
    return;
  }
  // Positions only: the value is a secret and must not reach a log through the error.
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& key = keys[i];
    if (key.size() < kMinApiKeyLength || key.size() > kMaxApiKeyLength || !visible_ascii(key)) {
      config.report_problem("GATEWAY_API_KEYS",
                            "key " + std::to_string(i + 1) + " must be " +
                                std::to_string(kMinApiKeyLength) + ".." +
                                std::to_string(kMaxApiKeyLength) +
                                " printable ASCII characters without spaces");
    }
  }
}

// A decimal like "2.5"; the whole text, finite, within [0, max].
std::optional<double> parse_rate(std::string_view text) {
  double value = 0;
  const auto* const end = text.data() + text.size();
  const auto [stop, error] = std::from_chars(text.data(), end, value, std::chars_format::fixed);
  if (error != std::errc() || stop != end || !std::isfinite(value) || value < 0 ||
      value > kMaxRatePerSecond) {
    return std::nullopt;
  }
  return value;
}

std::size_t to_size(std::int64_t value) { return static_cast<std::size_t>(value); }

}  // namespace

GatewaySettings read_gateway_settings(runtime::ConfigReader& config) {
  GatewaySettings settings;

  settings.api_keys = config.list("GATEWAY_API_KEYS", /*secret=*/true);
  check_api_keys(config, settings.api_keys);

  // Whether the pool and worker sizes were chosen by the operator decides below whether
  // we size them or hold the operator to the rule; read before the service settings so
  // that the effective line shows their final values.
  const bool pool_explicit = config.optional_text("DATABASE_POOL_SIZE").has_value();
  const bool workers_explicit = config.optional_text("HTTP_WORKER_THREADS").has_value();
  settings.service = runtime::read_database_service_settings(config, "api_gateway", 8080);

  settings.amqp = runtime::read_broker_settings(config, "api_gateway");
  const auto queue_type = config.choice("RABBITMQ_QUEUE_TYPE", "quorum", {"quorum", "classic"});
  settings.topology.queue_type =
      messaging::amqp::parse_queue_type(queue_type).value_or(messaging::amqp::QueueType::quorum);
  settings.publish_timeout =
      config.milliseconds("PUBLISH_TIMEOUT_MS", milliseconds(5000), milliseconds(1),
                          milliseconds(600000));
  settings.publisher.connection = settings.amqp;
  settings.publisher.topology = settings.topology;
  settings.publisher.confirm_timeout = settings.publish_timeout;
  // A publish waiting for a connection must fail within the deadline too (a 503 "within
  // the publish deadline" when the broker is down).
  settings.publisher.connect_wait = std::min(settings.publisher.connect_wait, settings.publish_timeout);

  settings.user_service.name = "user_service";
  settings.user_service.base_url = config.url("USER_SERVICE_URL", "", {"http", "https"});
  settings.template_service.name = "template_service";
  settings.template_service.base_url = config.url("TEMPLATE_SERVICE_URL", "", {"http", "https"});
  const auto attempt_timeout = config.milliseconds("UPSTREAM_TIMEOUT_MS", milliseconds(2000),
                                                   milliseconds(1), milliseconds(600000));
  const auto upstream_ca_file = runtime::read_ca_file(config, "UPSTREAM_CA_FILE");
  for (auto* client : {&settings.user_service, &settings.template_service}) {
    client->service_token = settings.service.service_token;
    client->tls_ca_file = upstream_ca_file;
    client->attempt_timeout = attempt_timeout;
    // A deadline shorter than one attempt would silently cap the configured timeout.
    if (client->deadline < attempt_timeout) {
      client->deadline = attempt_timeout;
    }
  }

  LookupCacheSettings cache;
  cache.ttl = config.milliseconds("CACHE_TTL_MS", milliseconds(30000), milliseconds(0),
                                  milliseconds(86400000));
  cache.stale_ttl = config.milliseconds("CACHE_STALE_TTL_MS", milliseconds(600000),
                                        milliseconds(0), milliseconds(86400000));
  cache.max_entries = to_size(config.integer("CACHE_MAX_ENTRIES", 100000, 0, 100000000));
  cache.negative_ttl = config.milliseconds("NEGATIVE_CACHE_TTL_MS", milliseconds(5000),
                                           milliseconds(0), milliseconds(86400000));
  settings.directory.users = cache;
  settings.directory.templates = cache;

  // Fractional rates ("0.5" = one request every two seconds) are the reason this is
  // text: integer() would refuse them.
  const auto rate_text = config.text("RATE_LIMIT_PER_SECOND", "0");
  if (const auto rate = parse_rate(rate_text)) {
    settings.rate_limit.requests_per_second = *rate;
  } else {
    config.report_problem("RATE_LIMIT_PER_SECOND",
                          "must be a decimal number in 0..1000000, 0 = off (got \"" + rate_text +
                              "\")");
  }
  settings.rate_limit.burst =
      static_cast<double>(config.integer("RATE_LIMIT_BURST", 0, 0, 1000000));

  settings.ledger.writers = to_size(config.integer("LEDGER_WRITERS", 1, 1, 64));
  settings.ledger.max_batch = to_size(config.integer("LEDGER_MAX_BATCH", 256, 1, 10000));
  settings.ledger.pending_takeover =
      config.milliseconds("PENDING_TAKEOVER_MS", milliseconds(30000), milliseconds(1),
                          milliseconds(86400000));
  // A pending row younger than this may belong to a gateway still waiting for the
  // broker's confirm; taking it over would publish a second message for one request.
  if (settings.ledger.pending_takeover < 2 * settings.publish_timeout) {
    config.report_problem(
        "PENDING_TAKEOVER_MS",
        "must be at least 2 x PUBLISH_TIMEOUT_MS (" +
            std::to_string((2 * settings.publish_timeout).count()) +
            "), so that a live gateway's pending claim is never taken over (got " +
            std::to_string(settings.ledger.pending_takeover.count()) + ")");
  }

  // Every ledger writer and every HTTP worker may hold a connection at once; fewer
  // connections would make the writers and the workers wait on each other.
  auto& pool_size = settings.service.database.size;
  auto& workers = settings.service.server.blocking_threads;
  const auto writers = settings.ledger.writers;
  if (!pool_explicit) {
    pool_size = writers + workers;
  } else if (!workers_explicit) {
    if (pool_size > writers) {
      workers = pool_size - writers;
    } else {
      config.report_problem("DATABASE_POOL_SIZE",
                            "must exceed LEDGER_WRITERS (" + std::to_string(writers) +
                                ") to leave connections for HTTP workers (got " +
                                std::to_string(pool_size) + ")");
    }
  } else if (pool_size < writers + workers) {
    config.report_problem("DATABASE_POOL_SIZE",
                          "must be at least LEDGER_WRITERS + HTTP_WORKER_THREADS (" +
                              std::to_string(writers + workers) + "), got " +
                              std::to_string(pool_size));
  }
  return settings;
}

}  // namespace notifs::api_gateway
