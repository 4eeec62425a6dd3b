// Directory against the real user_service and template_service, in-process on loopback
// ports of their own, each on a schema of its own; every call goes over real sockets
// through a real ServiceClient. Upstream request counts are read from the services' own
// http_requests_total, independently of the code under test.

#include "directory.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakes/fake_clock.hpp"
#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"
#include "integration/template_service/template_service_support.hpp"
#include "template_service_app.hpp"
#include "user_service_app.hpp"

namespace notifs::api_gateway {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
namespace http = messaging::http;
namespace resilience = messaging::resilience;

constexpr const char* kToken = "directory-test-token";

// user_service with a registry the test keeps, so requests can be counted after a stop.
class UserService {
 public:
  UserService() : registry_(std::make_shared<prometheus::Registry>()), app_(settings(), registry_) {
    app_.start();
  }
  ~UserService() { app_.stop(); }

  std::uint16_t port() const { return port_ ? port_ : app_.port(); }
  void stop() {
    port_ = app_.port();
    app_.stop();
  }

  json create_user(const json& body) {
    const auto response = tests::round_trip(
        app_.port(), tests::make_request("POST", "/api/v1/users",
                                         {{"Content-Type", "application/json"},
                                          {"Authorization", std::string("Bearer ") + kToken}},
                                         body.dump()));
    REQUIRE(response);
    INFO(response->body);
    REQUIRE(response->status == 201);
    return response->json()["data"];
  }

  void delete_user(const std::string& id) {
    const auto response = tests::round_trip(
        app_.port(), tests::make_request("DELETE", "/api/v1/users/" + id,
                                         {{"Authorization", std::string("Bearer ") + kToken}}));
    REQUIRE(response);
    INFO(response->body);
    REQUIRE(response->status / 100 == 2);
  }

  // GET /api/v1/users/{id} requests the service answered, any status.
  double user_gets() const { return requests_on("/api/v1/users/{id}"); }

 private:
  runtime::DatabaseServiceSettings settings() {
    runtime::DatabaseServiceSettings out;
    out.server.service_name = "user_service_directory_test";
    out.server.address = "127.0.0.1";
    out.server.port = 0;
    out.server.io_threads = 2;
    out.server.blocking_threads = 4;
    out.server.shutdown_grace = 2s;
    out.database.url = schema_.url();
    out.database.name = "postgres";
    out.database.size = 4;
    out.service_token = kToken;
    out.startup_timeout = 20s;
    return out;
  }

  double requests_on(const std::string& route) const {
    double total = 0;
    for (const auto& family : registry_->Collect()) {
      if (family.name != "http_requests_total") {
        continue;
      }
      for (const auto& metric : family.metric) {
        bool route_matches = false;
        bool is_get = false;
        for (const auto& label : metric.label) {
          route_matches = route_matches || (label.name == "route" && label.value == route);
          is_get = is_get || (label.name == "method" && label.value == "GET");
        }
        if (route_matches && is_get) {
          total += metric.counter.value;
        }
      }
    }
    return total;
  }

  pg_test::TestSchema schema_;
  std::shared_ptr<prometheus::Registry> registry_;
  user_service::UserServiceApp app_;
  std::uint16_t port_ = 0;
};

http::ServiceClientSettings client_settings(const std::string& name, std::uint16_t port,
                                            std::string token = kToken) {
  http::ServiceClientSettings settings;
  settings.name = name;
  settings.base_url = "http://127.0.0.1:" + std::to_string(port);
  settings.service_token = std::move(token);
  settings.connect_timeout = 500ms;
  settings.attempt_timeout = 2000ms;
  settings.deadline = 4000ms;
  settings.max_attempts = 2;
  settings.backoff.base = 5ms;
  settings.backoff.max = 20ms;
  // Small enough that a handful of failed lookups open it.
  settings.breaker.window_size = 4;
  settings.breaker.minimum_calls = 2;
  settings.breaker.failure_rate_threshold = 0.5;
  settings.breaker.open_duration = 60s;
  return settings;
}

template <typename Result>
Result wait_for(std::future<Result>& future) {
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  return future.get();
}

UserLookup find_user(Directory& directory, const std::string& id,
                     const std::string& request_id = "directory-test") {
  auto promise = std::make_shared<std::promise<UserLookup>>();
  auto future = promise->get_future();
  directory.find_user(id, request_id, [promise](UserLookup result) { promise->set_value(std::move(result)); });
  return wait_for(future);
}

TemplateLookup find_template(Directory& directory, const std::string& code,
                             const std::string& locale) {
  auto promise = std::make_shared<std::promise<TemplateLookup>>();
  auto future = promise->get_future();
  directory.find_template(code, locale, "directory-test",
                          [promise](TemplateLookup result) { promise->set_value(std::move(result)); });
  return wait_for(future);
}

// Both upstreams, their clients and a directory on a clock the test moves.
struct Stack {
  explicit Stack(DirectorySettings settings = {}, std::string token = kToken)
      : users_client(client_settings("user_service", users.port(), token)),
        templates_client(client_settings("template_service", templates.port(), token)),
        directory(users_client, templates_client, clock, settings) {}

  UserService users;
  template_service_test::TemplateServiceFixture templates{
      template_service_test::FixtureOptions{{}, kToken}};
  fakes::FakeClock clock;
  http::ServiceClient users_client;
  http::ServiceClient templates_client;
  Directory directory;
};

// A loopback port that completes TCP handshakes (the kernel does) but never reads or
// answers: every call to it runs into its attempt timeout.
class SilentPort {
 public:
  SilentPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    socklen_t length = sizeof(address);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~SilentPort() { ::close(fd_); }
  SilentPort(const SilentPort&) = delete;
  SilentPort& operator=(const SilentPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

const std::string kUnknownId = "0d5e8a7c-1b2f-4c3d-8e9f-a0b1c2d3e4f5";

TEST_CASE("directory finds a user with every field mapped and caches it", "[directory]") {
  Stack stack;
  const auto created = stack.users.create_user(
      {{"name", "Ada Lovelace"},
       {"email", "ada@example.com"},
       {"push_tokens", {"token-a", "token-b"}},
       {"preferences", {{"email", true}, {"push", false}}},
       {"locale", "fr"}});
  const auto id = created["id"].get<std::string>();

  const auto first = find_user(stack.directory, id);
  INFO(first.reason);
  REQUIRE(first.is_found());
  CHECK_FALSE(first.stale);
  CHECK(first.value->id == id);
  CHECK(first.value->name == "Ada Lovelace");
  CHECK(first.value->email == "ada@example.com");
  CHECK(first.value->locale == "fr");
  CHECK(first.value->push_tokens == std::vector<std::string>{"token-a", "token-b"});
  CHECK(first.value->email_enabled);
  CHECK_FALSE(first.value->push_enabled);
  CHECK(stack.users.user_gets() == 1);

  // Fresh: answered from the cache, the service is not asked again.
  const auto second = find_user(stack.directory, id);
  REQUIRE(second.is_found());
  CHECK(second.value == first.value);
  CHECK(stack.users.user_gets() == 1);
  CHECK(stack.directory.stats().users.fresh_hits == 1);

  // Past the ttl the entry is fetched again.
  stack.clock.advance(LookupCacheSettings{}.ttl + 1ms);
  const auto third = find_user(stack.directory, id);
  REQUIRE(third.is_found());
  CHECK_FALSE(third.stale);
  CHECK(stack.users.user_gets() == 2);
}

TEST_CASE("directory answers not_found for an unknown user and remembers it", "[directory]") {
  Stack stack;
  const auto first = find_user(stack.directory, kUnknownId);
  INFO(first.reason);
  CHECK(first.is_not_found());
  CHECK(stack.users.user_gets() == 1);

  const auto second = find_user(stack.directory, kUnknownId);
  CHECK(second.is_not_found());
  CHECK(stack.users.user_gets() == 1);
  CHECK(stack.directory.stats().users.absent_hits == 1);

  // Once the negative entry expires the service is asked again.
  stack.clock.advance(LookupCacheSettings{}.negative_ttl + 1ms);
  CHECK(find_user(stack.directory, kUnknownId).is_not_found());
  CHECK(stack.users.user_gets() == 2);
}

TEST_CASE("directory reads templates and reports missing ones", "[directory]") {
  Stack stack;
  stack.templates.create(template_service_test::email_template("welcome_email"));
  stack.templates.create(template_service_test::push_template("new_messages", "de"));

  const auto email = find_template(stack.directory, "welcome_email", "en");
  INFO(email.reason);
  REQUIRE(email.is_found());
  CHECK(email.value->code == "welcome_email");
  CHECK(email.value->channel == "email");
  CHECK(email.value->locale == "en");
  CHECK(email.value->version == 1);

  // No "fr" version: the service falls back to "en" and the snapshot says so.
  const auto fallback = find_template(stack.directory, "welcome_email", "fr");
  REQUIRE(fallback.is_found());
  CHECK(fallback.value->locale == "en");

  const auto push = find_template(stack.directory, "new_messages", "de");
  REQUIRE(push.is_found());
  CHECK(push.value->channel == "push");
  CHECK(push.value->locale == "de");

  CHECK(find_template(stack.directory, "no_such_template", "en").is_not_found());
  CHECK(find_template(stack.directory, "no_such_template", "en").is_not_found());
  CHECK(stack.directory.stats().templates.absent_hits == 1);
}

TEST_CASE("directory forgets a deleted user instead of serving it stale", "[directory]") {
  Stack stack;
  const auto id = stack.users.create_user({{"name", "Gone"}, {"email", "gone@example.com"}})["id"]
                      .get<std::string>();
  REQUIRE(find_user(stack.directory, id).is_found());
  stack.users.delete_user(id);
  stack.clock.advance(LookupCacheSettings{}.ttl + 1ms);
  const auto lookup = find_user(stack.directory, id);
  INFO(lookup.reason);
  CHECK(lookup.is_not_found());
  CHECK(stack.directory.stats().stale_served == 0);
}

TEST_CASE("directory answers unavailable when the upstream times out or the flight is full",
          "[directory]") {
  SilentPort silent;
  fakes::FakeClock clock;
  auto settings = client_settings("user_service", silent.port());
  settings.attempt_timeout = 300ms;
  settings.deadline = 300ms;
  settings.max_attempts = 1;
  http::ServiceClient client(settings);
  DirectorySettings directory_settings;
  directory_settings.flights.max_waiters_per_key = 1;
  Directory directory(client, client, clock, directory_settings);

  auto promise = std::make_shared<std::promise<UserLookup>>();
  auto leader = promise->get_future();
  directory.find_user(kUnknownId, "leader",
                      [promise](UserLookup result) { promise->set_value(std::move(result)); });
  // The leader's call hangs for 300 ms: a second caller finds its only slot taken and is
  // answered at once, on this thread.
  std::optional<UserLookup> refused;
  directory.find_user(kUnknownId, "second", [&](UserLookup result) { refused = std::move(result); });
  REQUIRE(refused);
  CHECK(refused->is_unavailable());
  CHECK(directory.stats().overflows == 1);

  const auto timed_out = wait_for(leader);
  INFO(timed_out.reason);
  CHECK(timed_out.is_unavailable());
  CHECK(timed_out.reason.find("deadline") != std::string::npos);
  CHECK(directory.stats().users.absent_hits == 0);
}

TEST_CASE("directory without the right service token is unavailable, never not_found",
          "[directory]") {
  Stack stack({}, "wrong-token");
  const auto lookup = find_user(stack.directory, kUnknownId);
  INFO(lookup.reason);
  CHECK(lookup.is_unavailable());
  CHECK(lookup.reason.find("401") != std::string::npos);
  // Not remembered as absent: the next lookup asks again.
  CHECK(find_user(stack.directory, kUnknownId).is_unavailable());
  CHECK(stack.directory.stats().users.absent_hits == 0);
}

TEST_CASE("directory serves cached users while user_service is down and fails fast for others",
          "[directory]") {
  Stack stack;
  const auto id = stack.users.create_user({{"name", "Grace"}, {"email", "grace@example.com"}})["id"]
                      .get<std::string>();
  REQUIRE(find_user(stack.directory, id).is_found());

  stack.users.stop();
  // Past the ttl: the entry is stale, so the lookup asks the (stopped) service first.
  stack.clock.advance(LookupCacheSettings{}.ttl + 1ms);
  const auto stale = find_user(stack.directory, id);
  INFO(stale.reason);
  REQUIRE(stale.is_found());
  CHECK(stale.stale);
  CHECK(stale.value->name == "Grace");
  CHECK(stack.directory.stats().stale_served == 1);

  // Uncached users: unavailable; a few failures open the breaker.
  int lookups = 0;
  while (stack.users_client.breaker_state() != resilience::BreakerState::open && lookups < 20) {
    const auto miss = find_user(stack.directory, "7b1e0c2a-0000-4000-8000-00000000000" +
                                                     std::to_string(lookups % 10));
    CHECK(miss.is_unavailable());
    ++lookups;
  }
  REQUIRE(stack.users_client.breaker_state() == resilience::BreakerState::open);

  const auto started = std::chrono::steady_clock::now();
  const auto refused = find_user(stack.directory, kUnknownId);
  const auto took = std::chrono::steady_clock::now() - started;
  INFO(refused.reason);
  CHECK(refused.is_unavailable());
  CHECK(refused.reason.find("circuit") != std::string::npos);
  // The breaker answers without a connect attempt: ~1 ms; the bound is generous.
  CHECK(took < 100ms);

  // The cached user is still served while the breaker is open.
  const auto still = find_user(stack.directory, id);
  REQUIRE(still.is_found());
  CHECK(still.stale);
}

TEST_CASE("directory coalesces 50 concurrent lookups of one uncached user into one request",
          "[directory]") {
  Stack stack;
  const auto id = stack.users.create_user({{"name", "Linus"}, {"email", "linus@example.com"}})["id"]
                      .get<std::string>();

  constexpr int kCallers = 50;
  std::vector<std::future<UserLookup>> results;
  std::vector<std::shared_ptr<std::promise<UserLookup>>> promises;
  for (int i = 0; i < kCallers; ++i) {
    promises.push_back(std::make_shared<std::promise<UserLookup>>());
    results.push_back(promises.back()->get_future());
  }
  std::latch go(kCallers);
  std::vector<std::thread> callers;
  for (int i = 0; i < kCallers; ++i) {
    callers.emplace_back([&, i] {
      go.arrive_and_wait();
      auto promise = promises[static_cast<std::size_t>(i)];
      stack.directory.find_user(id, "burst-" + std::to_string(i),
                                [promise](UserLookup result) { promise->set_value(std::move(result)); });
    });
  }
  for (auto& caller : callers) {
    caller.join();
  }
  for (auto& result : results) {
    const auto lookup = wait_for(result);
    REQUIRE(lookup.is_found());
    CHECK(lookup.value->id == id);
  }
  CHECK(stack.users.user_gets() == 1);
  const auto stats = stack.directory.stats();
  CHECK(stats.upstream_fetches == 1);
  // Every other caller either joined the fetch or arrived after it and hit the cache.
  CHECK(stats.coalesced + stats.users.fresh_hits == kCallers - 1);
}

}  // namespace
}  // namespace notifs::api_gateway
