// Secrets never reach logs, /ready, /health, /metrics, error bodies, status events or
// dead-letter reasons (issue 8). The gateway, user_service, template_service and both
// workers run in-process (the fixtures of their own tests) with distinctive credentials:
// a RabbitMQ user of the test's own with a random password, a password in the ledger's
// DATABASE_URL (the test cluster trusts loopback, so it is carried but not checked), SMTP
// credentials in SMTP_URL (used for AUTH, after STARTTLS, by a TLS SMTP server of the
// test's), the fixtures' SERVICE_TOKEN, API keys and push provider token.
// Every log line of every level goes to a capture; the paths driven are a delivery on each
// channel, a refused API key, an SMTP server that refuses connections, a wrong broker
// password, a broker and a database that are down. Then none of the secret strings may
// appear anywhere the test could read.
#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include "fakes/test_ca.hpp"
#include "fakes/tls_smtp_server.hpp"
#include "integration/amqp_test_support.hpp"
#include "integration/http_server_client.hpp"
#include "integration/notification_worker/smtp_sink.hpp"
#include "integration/notification_worker/worker_fixture.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "worker_app.hpp"

using namespace std::chrono_literals;
namespace amqp_test = notifs::amqp_test;
namespace gateway_test = notifs::gateway_test;
using notifs::worker_test::WorkerFixture;

namespace {

// Every formatted log line of every logger, including those created after it.
class CaptureSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  std::string text() {
    const std::lock_guard lock(mutex_);
    return text_;
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    spdlog::memory_buf_t formatted;
    formatter_->format(message, formatted);
    text_.append(formatted.data(), formatted.size());
  }
  void flush_() override {}

 private:
  std::string text_;
};

// Adds the capture to every logger (new ones copy the default logger's sinks) and logs
// everything, trace included, for the scope's lifetime.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<CaptureSink>()) {
    sink_->set_pattern("%l [%n] %v");
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
      logger->sinks().push_back(sink_);
    });
    spdlog::set_level(spdlog::level::trace);
  }
  ~LogCapture() {
    spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
      auto& sinks = logger->sinks();
      sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    });
    spdlog::set_level(spdlog::level::info);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::string text() { return sink_->text(); }

 private:
  std::shared_ptr<CaptureSink> sink_;
};

std::string random_word() {
  auto id = notifs::messaging::common::generate_uuid_v4();
  id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
  return id.substr(0, 16);
}

// A RabbitMQ user with a random password and full rights on the default vhost, deleted
// at scope exit.
class BrokerUser {
 public:
  BrokerUser() : name_("secrets-" + random_word()), password_("amqpPw" + random_word()) {
    amqp_test::rabbitmqctl({"add_user", name_, password_});
    amqp_test::rabbitmqctl({"set_permissions", "-p", "/", name_, ".*", ".*", ".*"});
  }
  ~BrokerUser() { amqp_test::run_rabbitmqctl({"delete_user", name_}); }
  BrokerUser(const BrokerUser&) = delete;
  BrokerUser& operator=(const BrokerUser&) = delete;

  const std::string& password() const { return password_; }
  // The test broker's URL with this user's name and `password` (its own by default).
  std::string url(const std::string& password = {}) const {
    const auto url = amqp_test::rabbitmq_url();
    const auto replaced = std::regex_replace(
        url, std::regex("amqp://[^@]*@"),
        "amqp://" + name_ + ":" + (password.empty() ? password_ : password) + "@");
    REQUIRE(replaced != url);
    return replaced;
  }

 private:
  std::string name_;
  std::string password_;
};

std::string with_db_password(const std::string& url, const std::string& password) {
  const auto replaced =
      std::regex_replace(url, std::regex("^(postgres(ql)?://[^:@/]+)@"), "$1:" + password + "@");
  REQUIRE(replaced != url);
  return replaced;
}

void use_broker(notifs::worker::WorkerSettings& settings, const std::string& url) {
  settings.amqp.url = url;
  settings.publisher.connection.url = url;
  // Fail fast and often: more attempts, more chances to log a URL.
  settings.amqp.reconnect.base = 50ms;
  settings.publisher.connection.reconnect.base = 50ms;
}

// GET of `target` on a loopback port: status line and body as one text ("" when nothing
// answered).
std::string get_text(std::uint16_t port, const std::string& target) {
  std::optional<notifs::tests::RawResponse> response;
  try {
    response = notifs::tests::round_trip(port, notifs::tests::make_request("GET", target));
  } catch (const std::exception&) {
    return {};  // nothing listens (yet, or any more)
  }
  if (!response) return {};
  std::string text = std::to_string(response->status) + " " + response->body;
  for (const auto& field : response->headers) {
    text += "\n" + std::string(field.name_string()) + ": " + std::string(field.value());
  }
  return text;
}

// Everything a health check or a scraper reads from one process.
std::string probe_endpoints(std::uint16_t port) {
  return get_text(port, "/ready") + "\n" + get_text(port, "/health") + "\n" +
         get_text(port, "/metrics");
}

struct Secret {
  std::string what;
  std::string value;
};

void check_absent(const std::vector<Secret>& secrets, const std::string& where,
                  const std::string& text) {
  for (const auto& secret : secrets) {
    INFO(secret.what << " in " << where);
    const auto at = text.find(secret.value);
    if (at != std::string::npos) {
      const auto from = at < 200 ? 0 : at - 200;
      FAIL_CHECK("found " << secret.what << " in " << where << ": ..." << text.substr(from, 400));
    }
  }
}

}  // namespace

TEST_CASE("secrets: deliveries, a refused API key and an SMTP outage leave no secret in logs, "
          "bodies, /ready or events",
          "[secrets]") {
  LogCapture logs;
  BrokerUser broker_user;
  const std::string db_password = "pgPw" + random_word();
  const std::string smtp_password = "smtpPw" + random_word();
  const std::string wrong_key = "wrongKey" + random_word();
  const std::vector<Secret> secrets{
      {"the broker password", broker_user.password()},
      {"the database password", db_password},
      {"the SMTP password", smtp_password},
      {"the service token", gateway_test::kServiceToken},
      {"an API key", gateway_test::kApiKey},
      {"the other API key", gateway_test::kOtherApiKey},
      {"a presented wrong API key", wrong_key},
      {"the push provider token", notifs::worker_test::kPushProviderToken},
  };

  gateway_test::GatewayOptions options;
  options.rabbitmq_url = broker_user.url();
  WorkerFixture fixture(options);
  std::vector<std::pair<std::string, std::string>> seen;  // where, what was read

  auto email = fixture.worker_settings("email");
  use_broker(email, broker_user.url());
  email.service.database.url = with_db_password(email.service.database.url, db_password);
  // A TLS SMTP server that takes AUTH after STARTTLS, so the password is really used.
  notifs::fakes::TestCa ca;
  notifs::fakes::TlsSmtpServer smtp(notifs::fakes::SmtpTls::starttls, ca.issue({"localhost"}));
  auto& provider = email.email.providers.front();
  provider.url = "smtp://mailer:" + smtp_password + "@localhost:" + std::to_string(smtp.port());
  provider.ca_file = ca.ca_file();
  provider.require_tls = true;
  auto push = fixture.worker_settings("push");
  use_broker(push, broker_user.url());
  push.service.database.url = with_db_password(push.service.database.url, db_password);
  auto& email_worker = fixture.start_worker(email);
  auto& push_worker = fixture.start_worker(push);

  const auto user = fixture.gateway().create_user();
  const auto email_id = fixture.gateway().accept_notification(user, "email");
  const auto push_id = fixture.gateway().accept_notification(user, "push");
  seen.emplace_back("GET email notification", fixture.wait_for_status(email_id, "delivered").dump());
  seen.emplace_back("GET push notification", fixture.wait_for_status(push_id, "delivered").dump());
  // The password was used (the checks below read a path that carried it).
  REQUIRE_FALSE(smtp.logins().empty());
  CHECK(smtp.logins().front().password == smtp_password);

  const auto refused = fixture.gateway().post_notification(
      gateway_test::GatewayFixture::notification_body(user, gateway_test::unique_request_id()),
      {{"Authorization", "Bearer " + wrong_key}}, /*authorize=*/false);
  CHECK(refused.status == 401);
  seen.emplace_back("401 body", refused.body);
  const auto refused_header = fixture.gateway().post_notification(
      gateway_test::GatewayFixture::notification_body(user, gateway_test::unique_request_id()),
      {{"X-API-Key", wrong_key}}, /*authorize=*/false);
  CHECK(refused_header.status == 401);
  seen.emplace_back("401 body (X-API-Key)", refused_header.body);

  seen.emplace_back("gateway endpoints", probe_endpoints(fixture.gateway().port()));
  seen.emplace_back("email worker endpoints", probe_endpoints(email_worker.port()));
  seen.emplace_back("push worker endpoints", probe_endpoints(push_worker.port()));
  fixture.stop_workers();

  // The SMTP server refuses connections: the send fails and is retried, and the failure's
  // text goes into status events, the notification's last_error and the logs.
  auto refusing = email;
  refusing.email.providers.front().require_tls = false;
  refusing.email.providers.front().url =
      "smtp://mailer:" + smtp_password + "@127.0.0.1:" +
      std::to_string(notifs::test_support::free_loopback_port());
  auto& refusing_worker = fixture.start_worker(refusing);
  const auto retried_id = fixture.gateway().accept_notification(user, "email");
  const auto events = fixture.wait_for_events(retried_id, notifs::contract::Status::retrying);
  for (const auto& event : events) {
    seen.emplace_back("status event", event.error);
  }
  // The gateway applies the same events from its own queue, a moment later maybe.
  auto retried = fixture.notification(retried_id);
  for (int i = 0; i < 200 && retried["last_error"].is_null(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    retried = fixture.notification(retried_id);
  }
  CHECK_FALSE(retried["last_error"].is_null());
  seen.emplace_back("GET retried notification", retried.dump());
  seen.emplace_back("refusing worker endpoints", probe_endpoints(refusing_worker.port()));
  fixture.stop_workers();

  const auto log_text = logs.text();
  // The capture works: the deliveries and the refusal above were logged.
  REQUIRE(log_text.size() > 1000);
  seen.emplace_back("logs", log_text);
  for (const auto& [where, text] : seen) check_absent(secrets, where, text);
}

TEST_CASE("secrets: a wrong broker password, a broker and a database that are down leave no "
          "secret in logs, errors or /ready",
          "[secrets]") {
  LogCapture logs;
  BrokerUser broker_user;
  const std::string wrong_password = "wrongAmqpPw" + random_word();
  const std::string down_password = "downAmqpPw" + random_word();
  const std::string db_password = "pgPw" + random_word();
  const std::vector<Secret> secrets{
      {"the broker password", broker_user.password()},
      {"a wrong broker password", wrong_password},
      {"the password for a broker that is down", down_password},
      {"the database password", db_password},
      {"the service token", gateway_test::kServiceToken},
  };
  gateway_test::GatewayOptions options;
  options.rabbitmq_url = broker_user.url();
  WorkerFixture fixture(options);
  std::vector<std::pair<std::string, std::string>> seen;

  // Each worker either refuses to start (its exception is read) or starts degraded (its
  // /ready is read); either way it is stopped before the next.
  const auto attempt = [&](const std::string& name, notifs::worker::WorkerSettings settings) {
    settings.service.startup_timeout = 3s;
    try {
      notifs::worker::WorkerApp app(std::move(settings), std::make_shared<prometheus::Registry>());
      app.start();
      std::this_thread::sleep_for(1500ms);  // a few reconnect attempts, each logged
      seen.emplace_back(name + " endpoints", probe_endpoints(app.port()));
      app.stop();
    } catch (const std::exception& error) {
      seen.emplace_back(name + " start error", error.what());
    }
  };

  auto wrong = fixture.worker_settings("email");
  use_broker(wrong, broker_user.url(wrong_password));
  wrong.service.database.url = with_db_password(wrong.service.database.url, db_password);
  attempt("wrong broker password", wrong);

  auto broker_down = fixture.worker_settings("email");
  const auto closed = std::to_string(notifs::test_support::free_loopback_port());
  use_broker(broker_down, std::regex_replace(broker_user.url(down_password),
                                             std::regex("@127\\.0\\.0\\.1:[0-9]+/"),
                                             "@127.0.0.1:" + closed + "/"));
  attempt("broker down", broker_down);

  auto db_down = fixture.worker_settings("push");
  use_broker(db_down, broker_user.url());
  db_down.service.database.url =
      std::regex_replace(with_db_password(db_down.service.database.url, db_password),
                         std::regex("@127\\.0\\.0\\.1:[0-9]+/"), "@127.0.0.1:" + closed + "/");
  attempt("database down", db_down);

  const auto log_text = logs.text();
  REQUIRE(log_text.size() > 200);
  seen.emplace_back("logs", log_text);
  for (const auto& [where, text] : seen) check_absent(secrets, where, text);
  // Something about each failure was said (so the checks above read real failure paths).
  CHECK(seen.size() >= 4);
}
