#include "worker_settings.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "notifs/runtime/broker_settings.hpp"

namespace notifs::worker {

namespace {

using std::chrono::milliseconds;

constexpr std::uint16_t kEmailPort = 8000;
constexpr std::uint16_t kPushPort = 4100;

bool starts_with(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// Each item of a provider list must name its scheme and a host; the list is read as a
// secret (SMTP URLs carry passwords), so a bad item is named by position only.
bool check_provider_urls(runtime::ConfigReader& config, std::string_view name,
                         const std::vector<std::string>& urls,
                         std::initializer_list<std::string_view> schemes) {
  if (urls.empty()) {
    config.report_problem(name, "is required for this channel");
    return false;
  }
  bool ok = true;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    const bool known = std::any_of(schemes.begin(), schemes.end(), [&](std::string_view scheme) {
      const std::string prefix = std::string(scheme) + "://";
      return starts_with(urls[i], prefix) && urls[i].size() > prefix.size();
    });
    if (!known) {
      std::string expected;
      for (const auto scheme : schemes) {
        expected += (expected.empty() ? "" : " or ") + std::string(scheme) + "://";
      }
      config.report_problem(name, "item " + std::to_string(i + 1) + " must start with " +
                                      expected + " and name a host");
      ok = false;
    }
  }
  return ok;
}

void read_email(runtime::ConfigReader& config, WorkerSettings& settings) {
  const auto urls = config.list("SMTP_URL", /*secret=*/true);
  settings.email.from = config.required_text("SMTP_FROM");
  SmtpSettings smtp;
  smtp.max_connections =
      static_cast<std::size_t>(config.integer("SMTP_MAX_CONNECTIONS", 16, 1, 256));
  settings.email.lanes_per_provider =
      static_cast<std::size_t>(config.integer("SMTP_SENDER_THREADS", 4, 1, 64));
  smtp.transfer_timeout = config.milliseconds("SMTP_TIMEOUT_MS", milliseconds(30000),
                                              milliseconds(100), milliseconds(600000));
  smtp.connect_timeout = std::min(smtp.connect_timeout, smtp.transfer_timeout);
  // The chain times a send from the moment the sender takes it, so the wait for one of the
  // SMTP_MAX_CONNECTIONS connections counts too: with the breaker's default 2 s, a full
  // queue made a healthy server's successes "slow" and opened its breaker. A server too
  // slow to answer is caught by SMTP_TIMEOUT_MS instead, which is a provider fault.
  settings.email.breaker.slow_call_threshold = smtp.transfer_timeout;
  smtp.require_tls = config.boolean("SMTP_REQUIRE_TLS", false);
  smtp.verify_tls = config.boolean("SMTP_VERIFY_TLS", true);
  smtp.ca_file = runtime::read_ca_file(config, "SMTP_CA_FILE");
  if (!check_provider_urls(config, "SMTP_URL", urls, {"smtp", "smtps"})) {
    return;
  }
  for (const auto& url : urls) {
    SmtpSettings provider = smtp;
    provider.url = url;
    settings.email.providers.push_back(std::move(provider));
  }
}

void read_push(runtime::ConfigReader& config, WorkerSettings& settings,
               const messaging::http::ServiceClientSettings& client) {
  const auto urls = config.list("PUSH_PROVIDER_URL");
  const auto token = config.secret("PUSH_PROVIDER_TOKEN");
  if (!check_provider_urls(config, "PUSH_PROVIDER_URL", urls, {"http", "https"})) {
    return;
  }
  for (std::size_t i = 0; i < urls.size(); ++i) {
    PushSenderSettings provider;
    provider.name = "push-" + std::to_string(i + 1);
    provider.url = urls[i];
    provider.token = token;
    provider.client = client;
    provider.client.name = provider.name;
    // With a provider behind this one, a refused connection should move the message there
    // at once; the client's own retries would hide the refusal (only a single attempt that
    // never connected is known to have sent nothing) until its breaker opened.
    if (urls.size() > 1) {
      provider.client.max_attempts = 1;
    }
    settings.push.providers.push_back(std::move(provider));
  }
}

}  // namespace

WorkerSettings read_worker_settings(runtime::ConfigReader& config) {
  WorkerSettings settings;
  settings.channel = config.choice("CHANNEL", "email", {"email", "push"});
  const bool email = settings.channel == "email";
  settings.service = runtime::read_database_service_settings(
      config, "notification_worker", email ? kEmailPort : kPushPort);

  settings.amqp = runtime::read_broker_settings(config, "notification_worker " + settings.channel);
  const auto queue_type = config.choice("RABBITMQ_QUEUE_TYPE", "quorum", {"quorum", "classic"});
  settings.topology.queue_type =
      messaging::amqp::parse_queue_type(queue_type).value_or(messaging::amqp::QueueType::quorum);
  settings.publisher.connection = settings.amqp;
  settings.publisher.topology = settings.topology;
  // Status events and retries are few next to the gateway's publishes: one connection.
  settings.publisher.connections = 1;

  settings.concurrency =
      static_cast<std::uint16_t>(config.integer("WORKER_CONCURRENCY", 256, 1, 65535));
  settings.stop_timeout = config.milliseconds("WORKER_STOP_TIMEOUT_MS", milliseconds(30000),
                                              milliseconds(0), milliseconds(600000));

  const auto attempt_timeout = config.milliseconds("UPSTREAM_TIMEOUT_MS", milliseconds(2000),
                                                   milliseconds(1), milliseconds(600000));
  messaging::http::ServiceClientSettings client;
  client.service_token = settings.service.service_token;
  client.tls_ca_file = runtime::read_ca_file(config, "UPSTREAM_CA_FILE");
  client.attempt_timeout = attempt_timeout;
  client.deadline = std::max(client.deadline, attempt_timeout);

  settings.template_service = client;
  settings.template_service.name = "template_service";
  settings.template_service.base_url = config.url("TEMPLATE_SERVICE_URL", "", {"http", "https"});
  settings.renderer.cache.ttl = config.milliseconds("RENDER_CACHE_TTL_MS", milliseconds(60000),
                                                    milliseconds(0), milliseconds(86400000));
  settings.ledger.writers = static_cast<std::size_t>(config.integer("SEND_LEDGER_WRITERS", 2, 1, 64));

  if (email) {
    read_email(config, settings);
  } else {
    if (auto users = config.optional_text("USER_SERVICE_URL")) {
      settings.user_service = client;
      settings.user_service->name = "user_service";
      settings.user_service->base_url = config.url("USER_SERVICE_URL", "", {"http", "https"});
    }
    read_push(config, settings, client);
  }

  // The ledger's writers and the HTTP workers may each hold a connection.
  auto& pool_size = settings.service.database.size;
  pool_size = std::max(pool_size, settings.ledger.writers + settings.service.server.blocking_threads);
  return settings;
}

}  // namespace notifs::worker
