// api_gateway under faults: an upstream stopped, the broker stopped and started again,
// PostgreSQL restarted; and what /ready and /metrics say about it. Real gateway,
// user_service, template_service, RabbitMQ and PostgreSQL throughout.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/api_gateway/gateway_fixture.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::duration<double, std::milli>;

struct TimedResponse {
  tests::RawResponse response;
  Millis took{};
};

// The whole round trip as a client sees it: connect, send, the gateway's work, the answer.
TimedResponse timed_post(GatewayFixture& gateway, const json& body) {
  const auto started = SteadyClock::now();
  auto response = gateway.post_notification(body);
  return {std::move(response), SteadyClock::now() - started};
}

std::string sql_literal(std::string_view text) {
  std::string quoted = "'";
  for (const char c : text) {
    quoted += c;
    if (c == '\'') quoted += '\'';
  }
  return quoted + "'";
}

// Rows of the gateway's ledger for this request_id (any API key), read from outside.
int ledger_rows(const GatewayFixture& gateway, const std::string& request_id) {
  return std::stoi(gateway.ledger_schema().query_value(
      "SELECT count(*) FROM notifications WHERE request_id = " + sql_literal(request_id)));
}

std::string ledger_status(const GatewayFixture& gateway, const std::string& request_id) {
  return gateway.ledger_schema().query_value(
      "SELECT status FROM notifications WHERE request_id = " + sql_literal(request_id));
}

// One sample of the Prometheus text format.
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<Sample> parse_metrics(const std::string& text) {
  std::vector<Sample> samples;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample sample;
    std::size_t at = line.find_first_of("{ ");
    if (at == std::string::npos) continue;
    sample.name = line.substr(0, at);
    if (line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        const auto equals = line.find('=', at);
        if (equals == std::string::npos || equals + 1 >= line.size() || line[equals + 1] != '"') {
          break;
        }
        const std::string key = line.substr(at, equals - at);
        std::string value;
        std::size_t i = equals + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        sample.labels[key] = value;
        at = i + 1;
        if (at < line.size() && line[at] == ',') ++at;
      }
      at = line.find(' ', at);
      if (at == std::string::npos) continue;
    }
    try {
      sample.value = std::stod(line.substr(at + 1));
    } catch (const std::exception&) {
      continue;
    }
    samples.push_back(std::move(sample));
  }
  return samples;
}

// The sum of the samples called `name` whose labels include `labels`; nullopt when none.
std::optional<double> metric(const std::vector<Sample>& samples, const std::string& name,
                             const std::map<std::string, std::string>& labels = {}) {
  std::optional<double> sum;
  for (const auto& sample : samples) {
    if (sample.name != name) continue;
    bool matches = true;
    for (const auto& [key, value] : labels) {
      const auto found = sample.labels.find(key);
      matches = matches && found != sample.labels.end() && found->second == value;
    }
    if (matches) sum = sum.value_or(0) + sample.value;
  }
  return sum;
}

std::vector<Sample> scrape(GatewayFixture& gateway) {
  const auto response = gateway.get("/metrics");
  REQUIRE(response.status == 200);
  return parse_metrics(response.body);
}

// /ready's dependencies by name.
std::map<std::string, json> ready_dependencies(const tests::RawResponse& response) {
  std::map<std::string, json> by_name;
  const auto body = json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body.contains("data") || !body["data"].is_object()) return by_name;
  for (const auto& dependency : body["data"].value("dependencies", json::array())) {
    by_name[dependency.value("name", std::string())] = dependency;
  }
  return by_name;
}

// Starts the broker's app again at scope exit unless the test did: a failing test must not
// leave a stopped broker behind for the tests after it.
class StartAppGuard {
 public:
  StartAppGuard() = default;
  ~StartAppGuard() {
    if (!started_) amqp_test::run_rabbitmqctl({"start_app"});
  }
  StartAppGuard(const StartAppGuard&) = delete;
  StartAppGuard& operator=(const StartAppGuard&) = delete;

  void stop() {
    started_ = false;
    amqp_test::rabbitmqctl({"stop_app"});
  }
  void start() {
    amqp_test::rabbitmqctl({"start_app"});
    started_ = true;
  }

 private:
  bool started_ = true;
};

// A user_service user the gateway has never looked up (so nothing of it is cached).
std::vector<std::string> uncached_users(GatewayFixture& gateway, int count) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i) {
    ids.push_back(gateway.create_user());
  }
  return ids;
}

void check_unavailable(const tests::RawResponse& response, std::string_view code) {
  INFO(response.body);
  CHECK(response.status == 503);
  CHECK(error_code(response) == code);
  CHECK(response.header("Retry-After") == "1");
}

// Listens on a port and never accepts: the kernel completes the handshakes, requests are
// sent and nothing ever answers. Stands in for a hung upstream on the port a stopped
// fixture freed.
class Blackhole {
 public:
  explicit Blackhole(std::uint16_t port) : acceptor_(io_) {
    acceptor_.open(tests::tcp::v4());
    acceptor_.set_option(tests::asio::socket_base::reuse_address(true));
    acceptor_.bind(tests::tcp::endpoint(tests::asio::ip::address_v4::loopback(), port));
    acceptor_.listen();
  }

 private:
  tests::asio::io_context io_;
  tests::tcp::acceptor acceptor_;
};

}  // namespace

TEST_CASE("gateway fault: user_service stopped serves cached users, 503s unknown ones and "
          "fails fast once the breaker is open",
          "[api_gateway][integration]") {
  GatewayOptions options;
  // Short enough that the cached user is stale when user_service is down: its 202 then
  // comes from stale-if-error, not from a fresh hit.
  options.cache_ttl = 200ms;
  GatewayFixture gateway(options);
  const auto cached_user = gateway.create_user();
  {
    const auto first = gateway.post_notification(
        GatewayFixture::notification_body(cached_user, unique_request_id()));
    INFO(first.body);
    REQUIRE(first.status == 202);
  }
  auto unknown = uncached_users(gateway, 12);
  REQUIRE(gateway.probe().message_count(gateway.email_queue()) == 1);

  gateway.users().stop();
  std::this_thread::sleep_for(options.cache_ttl + 100ms);  // the cached user is now stale

  // A user looked up before: still accepted, with a new request_id.
  const auto cached_request_id = unique_request_id();
  {
    const auto cached = timed_post(
        gateway, GatewayFixture::notification_body(cached_user, cached_request_id));
    INFO(cached.response.body << " after " << cached.took.count() << " ms (upstream failing)");
    CHECK(cached.response.status == 202);
    CHECK(cached.response.json()["data"]["status"] == "queued");
  }

  // A real user never looked up: 503 user_service_unavailable, and the claim is released.
  const auto refused_request_id = unique_request_id();
  const auto refused_body = GatewayFixture::notification_body(unknown.back(), refused_request_id);
  unknown.pop_back();
  {
    const auto refused = timed_post(gateway, refused_body);
    INFO("503 with the breaker closed took " << refused.took.count() << " ms");
    check_unavailable(refused.response, "user_service_unavailable");
  }
  CHECK(ledger_rows(gateway, refused_request_id) == 0);
  // ... so the client's retry with the same request_id is answered on its merits (503 again
  // while user_service is down), not 409 idempotency_in_progress or a replay.
  check_unavailable(gateway.post_notification(refused_body), "user_service_unavailable");
  CHECK(ledger_rows(gateway, refused_request_id) == 0);

  // Enough failing calls to open the breaker (4 failed attempts of the last 8; a call makes
  // up to 3 attempts).
  bool open = false;
  for (int i = 0; i < 8 && !open; ++i) {
    const auto user_id = unknown.back();
    unknown.pop_back();
    check_unavailable(
        gateway.post_notification(GatewayFixture::notification_body(user_id, unique_request_id())),
        "user_service_unavailable");
    open = metric(scrape(gateway), "upstream_breaker_state", {{"upstream", "user_service"}}) == 1.0;
  }
  REQUIRE(open);
  REQUIRE_FALSE(unknown.empty());

  // The open breaker refuses at once: the 503 does not wait for connects, retries or backoff.
  const auto fast_request_id = unique_request_id();
  {
    const auto fast = timed_post(
        gateway, GatewayFixture::notification_body(unknown.back(), fast_request_id));
    INFO("503 with the breaker open took " << fast.took.count() << " ms");
    check_unavailable(fast.response, "user_service_unavailable");
    CHECK(fast.took < 100ms);
  }
  CHECK(ledger_rows(gateway, fast_request_id) == 0);

  // And the cached user is still served (stale, the breaker open) with another request_id.
  const auto open_request_id = unique_request_id();
  {
    const auto cached = timed_post(
        gateway, GatewayFixture::notification_body(cached_user, open_request_id));
    INFO(cached.response.body << " after " << cached.took.count() << " ms (breaker open)");
    CHECK(cached.response.status == 202);
  }

  const auto samples = scrape(gateway);
  CHECK(metric(samples, "notifs_gateway_stale_served_total").value_or(0) >= 2);
  CHECK(metric(samples, "notifs_gateway_rejected_total",
               {{"reason", "user_service_unavailable"}})
            .value_or(0) >= 4);
  // Only the three accepted notifications reached the queue; none of the refused ones.
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 3);
  CHECK(ledger_status(gateway, cached_request_id) == "queued");
  CHECK(ledger_status(gateway, open_request_id) == "queued");
}

TEST_CASE("gateway fault: user_service hanging makes unknown users wait for the timeout until "
          "the open breaker answers their 503 at once",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto cached_user = gateway.create_user();
  {
    const auto first = gateway.post_notification(
        GatewayFixture::notification_body(cached_user, unique_request_id()));
    INFO(first.body);
    REQUIRE(first.status == 202);
  }
  auto unknown = uncached_users(gateway, 6);
  const auto users_port = gateway.users().port();
  gateway.users().stop();
  // Declared after the fixture: gone before the gateway's clients are.
  Blackhole hung_users(users_port);

  {
    const auto cached = timed_post(
        gateway, GatewayFixture::notification_body(cached_user, unique_request_id()));
    INFO(cached.response.body << " after " << cached.took.count() << " ms");
    CHECK(cached.response.status == 202);
  }

  // With the breaker closed, a lookup waits for at least one whole attempt timeout.
  const auto slow_request_id = unique_request_id();
  {
    const auto slow = timed_post(
        gateway, GatewayFixture::notification_body(unknown.back(), slow_request_id));
    unknown.pop_back();
    INFO("503 with the breaker closed took " << slow.took.count() << " ms");
    check_unavailable(slow.response, "user_service_unavailable");
    CHECK(slow.took >= GatewayOptions{}.upstream_attempt_timeout);
  }
  CHECK(ledger_rows(gateway, slow_request_id) == 0);

  bool open = false;
  for (int i = 0; i < 4 && !open; ++i) {
    open = metric(scrape(gateway), "upstream_breaker_state", {{"upstream", "user_service"}}) == 1.0;
    if (open) break;
    check_unavailable(gateway.post_notification(GatewayFixture::notification_body(
                          unknown.back(), unique_request_id())),
                      "user_service_unavailable");
    unknown.pop_back();
  }
  REQUIRE(open);
  REQUIRE_FALSE(unknown.empty());

  const auto fast_request_id = unique_request_id();
  {
    const auto fast = timed_post(
        gateway, GatewayFixture::notification_body(unknown.back(), fast_request_id));
    INFO("503 with the breaker open took " << fast.took.count() << " ms");
    check_unavailable(fast.response, "user_service_unavailable");
    CHECK(fast.took < 100ms);
  }
  CHECK(ledger_rows(gateway, fast_request_id) == 0);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 2);
}

TEST_CASE("gateway fault: template_service stopped serves cached templates and 503s unknown "
          "ones",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  // Exists in template_service, but the gateway never looked it up.
  constexpr const char* kUncachedTemplate = "reminder_email";
  gateway.templates().create(template_service_test::email_template(kUncachedTemplate));
  const auto user_id = gateway.create_user();
  {
    const auto first =
        gateway.post_notification(GatewayFixture::notification_body(user_id, unique_request_id()));
    INFO(first.body);
    REQUIRE(first.status == 202);
  }

  gateway.templates().stop();

  // Another user (so user_service is asked) with the template cached: accepted.
  const auto other_user = gateway.create_user();
  const auto cached = gateway.post_notification(
      GatewayFixture::notification_body(other_user, unique_request_id()));
  INFO(cached.body);
  CHECK(cached.status == 202);

  // A template code never looked up: 503, the claim released.
  const auto request_id = unique_request_id();
  auto body = GatewayFixture::notification_body(user_id, request_id);
  body["template_code"] = kUncachedTemplate;
  check_unavailable(gateway.post_notification(body), "template_service_unavailable");
  CHECK(ledger_rows(gateway, request_id) == 0);
  check_unavailable(gateway.post_notification(body), "template_service_unavailable");
  CHECK(ledger_rows(gateway, request_id) == 0);

  const auto samples = scrape(gateway);
  CHECK(metric(samples, "notifs_gateway_rejected_total",
               {{"reason", "template_service_unavailable"}}) == 2.0);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 2);
}

TEST_CASE("gateway fault: RabbitMQ stopped answers 503 within the publish deadline, records "
          "nothing, and the same request_id gets 202 once it is back",
          "[api_gateway][integration][recovery]") {
  GatewayOptions options;
  options.publish_timeout = 2000ms;
  // Classic queues: the fixture deletes its topology at the end, and RabbitMQ 3.10.8 can
  // break its dead-letter supervisor for good when quorum queues with at-least-once
  // dead-lettering are deleted while still recovering after start_app (see the amqp
  // publisher's stop_app test). Every later test of the run would then fail.
  options.queue_type = messaging::amqp::QueueType::classic;
  GatewayFixture gateway(options);
  const auto user_id = gateway.create_user();
  {
    // Warms the caches, so that only the broker is missing below.
    const auto warm_request_id = unique_request_id();
    const auto warm =
        gateway.post_notification(GatewayFixture::notification_body(user_id, warm_request_id));
    INFO(warm.body);
    REQUIRE(warm.status == 202);
    const auto message = gateway.probe().get(gateway.email_queue());
    REQUIRE(message);
    CHECK(message->correlation_id == warm_request_id);
  }

  // Declared after the fixture: the broker is back before the fixture cleans up its topology.
  StartAppGuard broker;
  broker.stop();

  const auto request_id = unique_request_id();
  const auto body = GatewayFixture::notification_body(user_id, request_id);
  {
    const auto refused = timed_post(gateway, body);
    INFO("503 with the broker stopped took " << refused.took.count() << " ms");
    check_unavailable(refused.response, "broker_unavailable");
    CHECK(refused.took < options.publish_timeout + 1500ms);
  }
  // Nothing recorded as queued; in fact nothing at all: the claim was released.
  CHECK(ledger_rows(gateway, request_id) == 0);
  {
    const auto ready = gateway.get("/ready");
    CHECK(ready.status == 503);
    auto dependencies = ready_dependencies(ready);
    REQUIRE(dependencies.count("rabbitmq") == 1);
    CHECK(dependencies["rabbitmq"]["ok"] == false);
  }

  broker.start();
  // The gateway reconnects by itself; the client retries the same request_id until it is
  // accepted. Every answer meanwhile is a 503 that invites exactly that.
  std::optional<tests::RawResponse> accepted;
  int refusals = 0;
  const auto started = SteadyClock::now();
  while (SteadyClock::now() - started < 30s) {
    auto response = gateway.post_notification(body);
    if (response.status == 202) {
      accepted = std::move(response);
      break;
    }
    ++refusals;
    check_unavailable(response, "broker_unavailable");
    std::this_thread::sleep_for(100ms);
  }
  INFO(refusals << " refusals before the broker accepted, "
                << Millis(SteadyClock::now() - started).count() << " ms after start_app");
  REQUIRE(accepted);
  const auto data = accepted->json()["data"];
  CHECK(data["request_id"] == request_id);
  CHECK(data["status"] == "queued");
  CHECK(ledger_rows(gateway, request_id) == 1);
  CHECK(ledger_status(gateway, request_id) == "queued");

  const auto replay = gateway.post_notification(body);
  CHECK(replay.status == 200);
  CHECK(replay.header("Idempotent-Replayed") == "true");
  CHECK(replay.json()["data"]["notification_id"] == data["notification_id"]);

  // The fixture's probe lost its connection with the broker; a new one looks at the queue.
  amqp_test::BrokerProbe probe;
  CHECK(probe.message_count(gateway.email_queue()) == 1);
  const auto message = probe.get(gateway.email_queue());
  REQUIRE(message);
  CHECK(message->correlation_id == request_id);
  CHECK(message->message_id == data["notification_id"]);
  CHECK(probe.message_count(gateway.email_queue()) == 0);
}

TEST_CASE("gateway fault: PostgreSQL restart costs at most 503 database_unavailable, then "
          "POSTs are accepted again with one message per 202",
          "[api_gateway][integration][recovery]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  {
    // Warms the user and template caches: only the ledger depends on PostgreSQL below.
    const auto warm =
        gateway.post_notification(GatewayFixture::notification_body(user_id, unique_request_id()));
    INFO(warm.body);
    REQUIRE(warm.status == 202);
  }

  struct Outcome {
    std::string request_id;
    unsigned status = 0;
    std::string code;
    std::string retry_after;
  };
  std::mutex mutex;
  std::vector<Outcome> outcomes;  // guarded by mutex
  const auto accepted_since = [&](std::size_t from) {
    const std::lock_guard lock(mutex);
    std::size_t accepted = 0;
    for (std::size_t i = from; i < outcomes.size(); ++i) {
      accepted += outcomes[i].status == 202 ? 1 : 0;
    }
    return accepted;
  };
  const auto outcome_count = [&] {
    const std::lock_guard lock(mutex);
    return outcomes.size();
  };

  // A client posting new notifications back to back through the restart. No Catch
  // assertions on this thread: it only records.
  class Client {
   public:
    explicit Client(std::function<void(const std::atomic<bool>&)> loop)
        : thread_([this, loop = std::move(loop)] { loop(stop_); }) {}
    ~Client() { join(); }
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    void join() {
      stop_ = true;
      if (thread_.joinable()) thread_.join();
    }

   private:
    std::atomic<bool> stop_{false};
    std::thread thread_;
  };
  const auto port = gateway.port();
  Client client([&, port](const std::atomic<bool>& stop) {
    while (!stop) {
      Outcome outcome;
      outcome.request_id = unique_request_id();
      const auto body = GatewayFixture::notification_body(user_id, outcome.request_id).dump();
      const auto response = tests::round_trip(
          port, tests::make_request("POST", "/api/v1/notifications",
                                    {{"Content-Type", "application/json"},
                                     {"Authorization", std::string("Bearer ") + kApiKey}},
                                    body));
      if (response) {
        outcome.status = response->status;
        outcome.code = error_code(*response);
        outcome.retry_after = response->header("Retry-After");
      }
      const std::lock_guard lock(mutex);
      outcomes.push_back(std::move(outcome));
    }
  });

  REQUIRE(pg_test::wait_until([&] { return accepted_since(0) >= 5; }, 20s));
  const auto restart_started = SteadyClock::now();
  pg_test::restart_postgres();
  const Millis restart_took = SteadyClock::now() - restart_started;
  const auto after_restart = outcome_count();
  // Accepted again without restarting the gateway.
  const bool recovered =
      pg_test::wait_until([&] { return accepted_since(after_restart) >= 20; }, 30s);
  client.join();
  const Millis recovery_took = SteadyClock::now() - restart_started;
  REQUIRE(recovered);

  std::set<std::string> accepted;
  std::vector<std::string> refused;
  std::size_t unexpected = 0;
  for (const auto& outcome : outcomes) {
    if (outcome.status == 202) {
      accepted.insert(outcome.request_id);
      continue;
    }
    refused.push_back(outcome.request_id);
    const bool expected = outcome.status == 503 && outcome.code == "database_unavailable" &&
                          outcome.retry_after == "1";
    if (!expected) {
      if (unexpected < 5) {
        UNSCOPED_INFO("unexpected answer " << outcome.status << " '" << outcome.code
                                           << "' for " << outcome.request_id);
      }
      ++unexpected;
    }
  }
  INFO(outcomes.size() << " POSTs: " << accepted.size() << " accepted, " << refused.size()
                       << " refused; restart_postgres took " << restart_took.count()
                       << " ms, 20 accepted after it within " << recovery_took.count() << " ms");
  CHECK(unexpected == 0);

  // A request that got 503 does not block its retry: the same request_id is accepted now
  // (a claim whose release failed is taken over after the pending_takeover window).
  std::set<std::string> retried;
  for (std::size_t i = 0; i < refused.size() && retried.size() < 3; ++i) {
    const auto& request_id = refused[i];
    const auto body = GatewayFixture::notification_body(user_id, request_id);
    unsigned status = 0;
    pg_test::wait_until(
        [&] {
          status = gateway.post_notification(body).status;
          return status == 202;
        },
        30s, 200ms);
    INFO("retry of refused " << request_id);
    CHECK(status == 202);
    if (status == 202) {
      accepted.insert(request_id);
      retried.insert(request_id);
    }
  }

  // Exactly one message per 202, none for a request that was only ever refused.
  std::map<std::string, int> messages;
  std::size_t drained = 0;
  while (auto message = gateway.probe().get(gateway.email_queue())) {
    ++messages[message->correlation_id];
    ++drained;
  }
  std::size_t missing = 0;
  std::size_t duplicated = 0;
  for (const auto& request_id : accepted) {
    const auto found = messages.find(request_id);
    missing += found == messages.end() ? 1 : 0;
    duplicated += found != messages.end() && found->second > 1 ? 1 : 0;
  }
  std::size_t refused_but_queued = 0;
  for (const auto& request_id : refused) {
    refused_but_queued += accepted.count(request_id) == 0 && messages.count(request_id) != 0;
  }
  INFO(drained << " messages drained");
  CHECK(missing == 0);
  CHECK(duplicated == 0);
  CHECK(refused_but_queued == 0);
  CHECK(drained == accepted.size() + 1);  // + the warm-up

  // The ledger agrees: one row per 202, and no refused request recorded past `pending`.
  std::map<std::string, std::vector<std::string>> rows;
  for (const auto& row : gateway.ledger_schema().query_column(
           "SELECT request_id || ' ' || status FROM notifications")) {
    const auto space = row.find(' ');
    rows[row.substr(0, space)].push_back(row.substr(space + 1));
  }
  std::size_t accepted_without_one_row = 0;
  for (const auto& request_id : accepted) {
    accepted_without_one_row += rows[request_id].size() == 1 ? 0 : 1;
  }
  std::size_t refused_recorded = 0;
  for (const auto& request_id : refused) {
    if (accepted.count(request_id) != 0) continue;
    for (const auto& status : rows[request_id]) {
      refused_recorded += status == "pending" ? 0 : 1;
    }
  }
  CHECK(accepted_without_one_row == 0);
  CHECK(refused_recorded == 0);
}

TEST_CASE("gateway fault: /ready lists every dependency and turns 503 when user_service stops",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto database = gateway.app().settings().service.database.name;
  const std::vector<std::string> names = {database, "rabbitmq", "user_service",
                                          "template_service"};
  {
    const auto ready = gateway.get("/ready");
    INFO(ready.body);
    CHECK(ready.status == 200);
    auto dependencies = ready_dependencies(ready);
    CHECK(dependencies.size() == names.size());
    for (const auto& name : names) {
      INFO(name);
      REQUIRE(dependencies.count(name) == 1);
      CHECK(dependencies[name]["ok"] == true);
      CHECK(dependencies[name]["state"] == "up");
    }
  }

  gateway.users().stop();
  const auto ready = gateway.get("/ready");
  INFO(ready.body);
  CHECK(ready.status == 503);
  CHECK(ready.has_header("Retry-After"));
  const auto body = ready.json();
  CHECK(body["success"] == false);
  CHECK(body["data"]["status"] == "not_ready");
  auto dependencies = ready_dependencies(ready);
  REQUIRE(dependencies.count("user_service") == 1);
  CHECK(dependencies["user_service"]["ok"] == false);
  CHECK(dependencies["user_service"]["state"] != "up");
  CHECK_FALSE(dependencies["user_service"]["detail"].get<std::string>().empty());
  for (const auto& name : {database, std::string("rabbitmq"), std::string("template_service")}) {
    INFO(name);
    REQUIRE(dependencies.count(name) == 1);
    CHECK(dependencies[name]["ok"] == true);
    CHECK(dependencies[name]["state"] == "up");
  }
}

TEST_CASE("gateway fault: /metrics counts accepted, rejected by reason, publish confirms and "
          "cache lookups",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  for (int i = 0; i < 2; ++i) {  // a miss, then a hit
    const auto response =
        gateway.post_notification(GatewayFixture::notification_body(user_id, unique_request_id()));
    INFO(response.body);
    REQUIRE(response.status == 202);
  }
  // A user that does not exist: 404 user_not_found, counted as a rejection.
  const auto missing = gateway.post_notification(GatewayFixture::notification_body(
      messaging::common::generate_uuid_v4(), unique_request_id()));
  REQUIRE(missing.status == 404);
  REQUIRE(error_code(missing) == "user_not_found");
  // No credentials: 401.
  REQUIRE(gateway
              .post_notification(GatewayFixture::notification_body(user_id, unique_request_id()),
                                 {}, /*authorize=*/false)
              .status == 401);

  const auto response = gateway.get("/metrics");
  REQUIRE(response.status == 200);
  const auto samples = parse_metrics(response.body);
  CHECK(metric(samples, "notifs_gateway_notifications_total", {{"outcome", "accepted"}}) == 2.0);
  CHECK(metric(samples, "notifs_gateway_rejected_total", {{"reason", "user_not_found"}}) == 1.0);
  CHECK(metric(samples, "notifs_gateway_rejected_total", {{"reason", "unauthorized"}}) == 1.0);
  CHECK(metric(samples, "notifs_gateway_publish_confirm_seconds_count") == 2.0);
  CHECK(metric(samples, "notifs_gateway_publish_confirm_seconds_sum").value_or(-1) > 0);
  CHECK(metric(samples, "notifs_gateway_cache_lookups_total", {{"cache", "users"}, {"result", "miss"}})
            .value_or(0) >= 2);  // the known user's first lookup, the unknown one
  CHECK(metric(samples, "notifs_gateway_cache_lookups_total", {{"cache", "users"}, {"result", "hit"}}) ==
        1.0);
  CHECK(metric(samples, "notifs_gateway_cache_lookups_total",
               {{"cache", "templates"}, {"result", "hit"}}) == 1.0);
}

}  // namespace notifs::gateway_test
