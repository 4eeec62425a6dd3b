// ProviderChain with fake provider functions and a FakeClock: which provider takes each
// job as breakers open, probe and close. No network, no sleeping.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "fakes/fake_clock.hpp"
#include "provider_chain.hpp"
#include "push_sender.hpp"

using namespace std::chrono_literals;
using notifs::fakes::FakeClock;
using notifs::messaging::resilience::BreakerState;
using notifs::messaging::resilience::CircuitBreakerSettings;
using notifs::worker::kAllProvidersUnavailable;
using notifs::worker::ProviderChain;
using notifs::worker::PushDelivery;
using notifs::worker::PushMessage;
using notifs::worker::SendOutcome;
using notifs::worker::SendResult;
using notifs::worker::TokenOutcome;
namespace http = notifs::messaging::http;

namespace {

using Chain = ProviderChain<std::string>;

// A provider that answers from a script (then a fallback), synchronously unless told to
// hold its callbacks, and records the jobs it was given.
struct FakeProvider {
  std::deque<SendResult> script;
  SendResult fallback = SendResult::delivered_ok("250 ok");
  bool hold = false;  // keep callbacks for the test to complete later
  bool throw_instead = false;
  std::vector<std::string> jobs;
  std::vector<Chain::Callback> held;

  Chain::SendFunction function() {
    return [this](const std::string& job, Chain::Callback callback) {
      jobs.push_back(job);
      if (throw_instead) throw std::runtime_error("cannot open a transfer");
      if (hold) {
        held.push_back(std::move(callback));
        return;
      }
      SendResult result = fallback;
      if (!script.empty()) {
        result = script.front();
        script.pop_front();
      }
      callback(result);
    };
  }
};

// Opens after 2 failures in a window of 4; one probe decides half-open.
CircuitBreakerSettings breaker_settings() {
  CircuitBreakerSettings settings;
  settings.window_size = 4;
  settings.minimum_calls = 2;
  settings.failure_rate_threshold = 0.5;
  settings.slow_call_threshold = std::chrono::hours(1);
  settings.open_duration = 10s;
  settings.half_open_probes = 1;
  return settings;
}

SendResult fault() { return SendResult::transient_failure("connect refused", true); }
SendResult unreached(const std::string& detail = "connection refused") {
  return SendResult::never_sent(detail);
}

// Sends one job and returns what the callback got (the fakes answer synchronously).
std::optional<SendResult> send(Chain& chain, const std::string& job) {
  std::optional<SendResult> out;
  chain.send(job, [&out](SendResult result) { out = std::move(result); });
  return out;
}

struct TwoProviders {
  FakeClock clock;
  FakeProvider first;
  FakeProvider second;
  Chain chain{{{"smtp-a", first.function()}, {"smtp-b", second.function()}}, breaker_settings(),
              clock};

  void open_first() {
    first.script = {fault(), fault()};
    send(chain, "opening-1");
    send(chain, "opening-2");
    REQUIRE(chain.statuses()[0].state == BreakerState::open);
  }
};

}  // namespace

TEST_CASE("worker provider chain uses the first provider while it is healthy") {
  TwoProviders t;
  for (int i = 0; i < 10; ++i) {
    const auto result = send(t.chain, "job-" + std::to_string(i));
    REQUIRE(result);
    CHECK(result->outcome == SendOutcome::delivered);
  }
  CHECK(t.first.jobs.size() == 10);
  CHECK(t.second.jobs.empty());
  const auto statuses = t.chain.statuses();
  REQUIRE(statuses.size() == 2);
  CHECK(statuses[0].name == "smtp-a");
  CHECK(statuses[1].name == "smtp-b");
  CHECK(statuses[0].state == BreakerState::closed);
  CHECK(statuses[1].state == BreakerState::closed);
}

TEST_CASE("worker provider faults open its breaker and traffic moves to the next provider") {
  TwoProviders t;
  t.first.script = {fault(), fault()};
  // The faults themselves reach the caller unchanged: the worker retries them later, they
  // are not re-sent to the next provider at once (a timed-out send may have gone out).
  const auto a = send(t.chain, "a");
  const auto b = send(t.chain, "b");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->outcome == SendOutcome::transient);
  CHECK(a->provider_fault);
  CHECK(a->detail == "connect refused");
  CHECK(t.second.jobs.empty());

  CHECK(t.chain.statuses()[0].state == BreakerState::open);
  const auto c = send(t.chain, "c");
  const auto d = send(t.chain, "d");
  REQUIRE(c);
  CHECK(c->outcome == SendOutcome::delivered);
  CHECK(t.first.jobs == std::vector<std::string>{"a", "b"});
  CHECK(t.second.jobs == std::vector<std::string>{"c", "d"});

  // Still open just before open_duration: the second keeps the traffic.
  t.clock.advance(9999ms);
  send(t.chain, "e");
  CHECK(t.second.jobs.back() == "e");
  CHECK(t.first.jobs.size() == 2);
}

TEST_CASE("worker provider chain returns traffic to the first provider after its half-open probe") {
  TwoProviders t;
  t.open_first();
  send(t.chain, "on-second");
  CHECK(t.second.jobs == std::vector<std::string>{"on-second"});

  t.clock.advance(10s);
  // The first is healthy again: the next job is its probe, and closes its breaker.
  const auto probe = send(t.chain, "probe");
  REQUIRE(probe);
  CHECK(probe->outcome == SendOutcome::delivered);
  CHECK(t.first.jobs.back() == "probe");
  CHECK(t.chain.statuses()[0].state == BreakerState::closed);

  for (int i = 0; i < 5; ++i) send(t.chain, "after-" + std::to_string(i));
  CHECK(t.first.jobs.size() == 2 + 1 + 5);
  CHECK(t.second.jobs.size() == 1);
}

TEST_CASE("worker provider chain keeps traffic on the second provider when the probe fails") {
  TwoProviders t;
  t.open_first();
  t.clock.advance(10s);
  t.first.script = {fault()};
  const auto probe = send(t.chain, "probe");
  REQUIRE(probe);
  CHECK(probe->provider_fault);
  CHECK(t.first.jobs.back() == "probe");
  CHECK(t.chain.statuses()[0].state == BreakerState::open);

  send(t.chain, "next");
  CHECK(t.second.jobs.back() == "next");
  CHECK(t.first.jobs.back() == "probe");
}

TEST_CASE("worker provider chain sends other jobs to the next provider while the first's probe is out") {
  TwoProviders t;
  t.open_first();
  t.clock.advance(10s);
  t.first.hold = true;
  std::optional<SendResult> probe_result;
  t.chain.send("probe", [&](SendResult result) { probe_result = std::move(result); });
  CHECK_FALSE(probe_result);
  CHECK(t.chain.statuses()[0].state == BreakerState::half_open);
  CHECK(t.chain.readiness(0).state == "half_open");
  CHECK(t.chain.readiness(0).ok);

  // Half-open admits one probe: the others go on to the second provider meanwhile.
  send(t.chain, "during-probe");
  CHECK(t.second.jobs.back() == "during-probe");

  // The probe answers late, on "another thread" (here: after the call returned).
  REQUIRE(t.first.held.size() == 1);
  t.first.held.front()(SendResult::delivered_ok("250 ok"));
  REQUIRE(probe_result);
  CHECK(probe_result->outcome == SendOutcome::delivered);
  CHECK(t.chain.statuses()[0].state == BreakerState::closed);

  t.first.hold = false;
  send(t.chain, "back");
  CHECK(t.first.jobs.back() == "back");
}

TEST_CASE("worker provider chain never opens a breaker for results that are not provider faults") {
  TwoProviders t;
  // A recipient's 550 and a quota 429 say nothing bad about the provider.
  t.first.fallback = SendResult::permanent_failure("550 5.1.1 no such user");
  for (int i = 0; i < 20; ++i) {
    const auto result = send(t.chain, "p" + std::to_string(i));
    REQUIRE(result);
    CHECK(result->outcome == SendOutcome::permanent);
  }
  t.first.fallback = SendResult::transient_failure("HTTP 429 QUOTA_EXCEEDED", false);
  for (int i = 0; i < 20; ++i) send(t.chain, "q" + std::to_string(i));
  CHECK(t.first.jobs.size() == 40);
  CHECK(t.second.jobs.empty());
  CHECK(t.chain.statuses()[0].state == BreakerState::closed);
  CHECK(t.chain.statuses()[0].failure_rate == 0.0);
}

TEST_CASE("worker provider chain answers all providers unavailable at once when every breaker is open") {
  TwoProviders t;
  t.open_first();
  t.second.script = {fault(), fault()};
  send(t.chain, "x");
  send(t.chain, "y");
  REQUIRE(t.chain.statuses()[1].state == BreakerState::open);
  const auto first_calls = t.first.jobs.size();
  const auto second_calls = t.second.jobs.size();

  // The callback has run by the time send() returns: nothing waits on a dead provider.
  const auto result = send(t.chain, "nowhere");
  REQUIRE(result);
  CHECK(result->outcome == SendOutcome::transient);
  CHECK(result->provider_fault);
  CHECK(result->detail == kAllProvidersUnavailable);
  CHECK(t.first.jobs.size() == first_calls);
  CHECK(t.second.jobs.size() == second_calls);

  CHECK_FALSE(t.chain.readiness(0).ok);
  CHECK_FALSE(t.chain.readiness(1).ok);
  CHECK(t.chain.readiness(0).state == "open");
  CHECK(t.chain.readiness(1).detail.find("no provider available") != std::string::npos);
}

TEST_CASE("worker provider chain states for readiness") {
  TwoProviders t;
  CHECK(t.chain.size() == 2);
  CHECK(t.chain.name(1) == "smtp-b");
  auto first = t.chain.readiness(0);
  CHECK(first.ok);
  CHECK(first.state == "closed");
  CHECK(first.detail.empty());

  t.open_first();
  first = t.chain.readiness(0);
  const auto second = t.chain.readiness(1);
  // One provider down with a healthy one behind it: degraded but ready.
  CHECK(first.ok);
  CHECK(first.state == "open");
  CHECK(first.detail.find("next provider") != std::string::npos);
  CHECK(second.ok);
  CHECK(second.state == "closed");
  CHECK(t.chain.statuses()[0].remaining_open == 10s);
  CHECK(t.chain.statuses()[0].failure_rate == 1.0);

  t.clock.advance(4s);
  CHECK(t.chain.statuses()[0].remaining_open == 6s);
}

TEST_CASE("worker provider chain is ready again once an open breaker may probe") {
  FakeClock clock;
  FakeProvider only;
  Chain chain({{"push-a", only.function()}}, breaker_settings(), clock);
  only.script = {fault(), fault()};
  send(chain, "1");
  send(chain, "2");
  CHECK_FALSE(chain.readiness(0).ok);
  // Without traffic nothing moves the breaker to half-open; readiness must not stay down
  // forever for that: the next message would be let through as a probe.
  clock.advance(10s);
  CHECK(chain.statuses()[0].state == BreakerState::open);
  CHECK(chain.readiness(0).ok);
}

TEST_CASE("worker provider chain counts a send function that throws as a provider fault") {
  TwoProviders t;
  t.first.throw_instead = true;
  const auto result = send(t.chain, "boom");
  REQUIRE(result);
  CHECK(result->outcome == SendOutcome::transient);
  CHECK(result->provider_fault);
  CHECK(result->detail.find("smtp-a") != std::string::npos);
  CHECK(result->detail.find("cannot open a transfer") != std::string::npos);
  send(t.chain, "boom-2");
  CHECK(t.chain.statuses()[0].state == BreakerState::open);
  send(t.chain, "elsewhere");
  CHECK(t.second.jobs == std::vector<std::string>{"elsewhere"});
}

TEST_CASE("worker provider chain records a provider that calls back twice only once") {
  FakeClock clock;
  int calls = 0;
  Chain chain({{"twice",
                [](const std::string&, Chain::Callback callback) {
                  callback(SendResult::transient_failure("first", true));
                  callback(SendResult::transient_failure("second", true));
                }}},
              breaker_settings(), clock);
  chain.send("job", [&calls](SendResult) { ++calls; });
  CHECK(calls == 1);
  // One failure in the window, not two: below minimum_calls, so still closed.
  CHECK(chain.statuses()[0].state == BreakerState::closed);
}

TEST_CASE("worker provider chain refuses a configuration that cannot work") {
  FakeClock clock;
  CHECK_THROWS_AS(Chain({}, breaker_settings(), clock), std::invalid_argument);
  CHECK_THROWS_AS(Chain({{"no-function", {}}}, breaker_settings(), clock), std::invalid_argument);
  auto bad = breaker_settings();
  bad.window_size = 0;
  FakeProvider provider;
  CHECK_THROWS_AS(Chain({{"a", provider.function()}}, bad, clock), std::invalid_argument);
}

TEST_CASE("worker provider chain carries push token outcomes") {
  FakeClock clock;
  using PushChain = ProviderChain<PushDelivery, TokenOutcome>;
  std::vector<std::string> first_tokens;
  PushChain chain({{"fcm-a",
                    [&first_tokens](const PushDelivery& delivery, PushChain::Callback callback) {
                      first_tokens.push_back(delivery.token);
                      callback(TokenOutcome{SendResult::transient_failure("HTTP 503", true), false});
                    }},
                   {"fcm-b",
                    [](const PushDelivery&, PushChain::Callback callback) {
                      callback(TokenOutcome{SendResult::permanent_failure("HTTP 404 UNREGISTERED"), true});
                    }}},
                  breaker_settings(), clock);
  auto message = std::make_shared<PushMessage>();
  message->notification_id = "n-1";
  std::vector<TokenOutcome> outcomes;
  for (const char* token : {"t1", "t2", "t3"}) {
    chain.send(PushDelivery{message, token},
               [&outcomes](TokenOutcome outcome) { outcomes.push_back(std::move(outcome)); });
  }
  REQUIRE(outcomes.size() == 3);
  CHECK(first_tokens == std::vector<std::string>{"t1", "t2"});
  CHECK(outcomes[0].result.provider_fault);
  // An unregistered token is the provider answering well: no breaker failure, flag kept.
  CHECK(outcomes[2].unregistered);
  CHECK(outcomes[2].result.outcome == SendOutcome::permanent);
  CHECK(chain.statuses()[1].state == BreakerState::closed);
}

TEST_CASE("worker provider chain sends a job the first provider never received to the next one at once") {
  TwoProviders t;
  t.first.script = {unreached(), unreached()};
  for (const char* job : {"a", "b"}) {
    const auto result = send(t.chain, job);
    REQUIRE(result);
    CHECK(result->outcome == SendOutcome::delivered);
  }
  CHECK(t.first.jobs == std::vector<std::string>{"a", "b"});
  CHECK(t.second.jobs == std::vector<std::string>{"a", "b"});
  // The first's failures were recorded: its breaker is open and the next job goes straight
  // to the second.
  CHECK(t.chain.statuses()[0].state == BreakerState::open);
  send(t.chain, "c");
  CHECK(t.first.jobs.size() == 2);
  CHECK(t.second.jobs.back() == "c");
  CHECK(t.chain.statuses()[1].state == BreakerState::closed);
}

TEST_CASE("worker provider chain tries each provider at most once per send and answers the last result") {
  TwoProviders t;
  t.first.script = {unreached("first refused")};
  t.second.script = {unreached("second refused")};
  const auto result = send(t.chain, "nowhere");
  REQUIRE(result);
  CHECK(result->outcome == SendOutcome::transient);
  CHECK(result->provider_fault);
  CHECK(result->nothing_sent);
  CHECK(result->detail == "second refused");
  CHECK(t.first.jobs.size() == 1);
  CHECK(t.second.jobs.size() == 1);
}

TEST_CASE("worker provider chain never fails over a fault that may have been sent") {
  TwoProviders t;
  // A timeout after the message went out, a 5xx after DATA: the provider may have it.
  t.first.script = {SendResult::transient_failure("timed out after the message", true)};
  const auto result = send(t.chain, "maybe-sent");
  REQUIRE(result);
  CHECK(result->detail == "timed out after the message");
  CHECK(t.second.jobs.empty());
  // nothing_sent without a provider fault (a 450 on RCPT TO, a full queue of ours) says
  // nothing against the provider: answered as it is too.
  auto busy = SendResult::transient_failure("450 mailbox busy", false);
  busy.nothing_sent = true;
  t.first.script = {busy};
  const auto busy_result = send(t.chain, "busy");
  REQUIRE(busy_result);
  CHECK(busy_result->detail == "450 mailbox busy");
  CHECK(t.second.jobs.empty());
}

TEST_CASE("worker provider chain skips providers whose breaker refuses when failing over") {
  FakeClock clock;
  FakeProvider a;
  FakeProvider b;
  FakeProvider c;
  Chain chain({{"a", a.function()}, {"b", b.function()}, {"c", c.function()}}, breaker_settings(),
              clock);
  a.script = {fault(), fault()};
  send(chain, "open-a-1");
  send(chain, "open-a-2");
  clock.advance(5s);
  b.script = {fault(), fault()};
  send(chain, "open-b-1");
  send(chain, "open-b-2");
  REQUIRE(chain.statuses()[0].state == BreakerState::open);
  REQUIRE(chain.statuses()[1].state == BreakerState::open);

  // a may probe again, b may not yet: a's probe is not reached, and the job goes to c.
  clock.advance(5s);
  a.script = {unreached()};
  const auto result = send(chain, "probe");
  REQUIRE(result);
  CHECK(result->outcome == SendOutcome::delivered);
  CHECK(a.jobs.back() == "probe");
  CHECK(b.jobs.back() == "open-b-2");
  CHECK(c.jobs == std::vector<std::string>{"probe"});
  CHECK(chain.statuses()[0].state == BreakerState::open);  // the failed probe reopened it
}

TEST_CASE("worker provider chain answers the unreached result when no other provider may be called") {
  TwoProviders t;
  t.open_first();  // open until 10 s
  t.clock.advance(5s);
  t.second.script = {fault(), fault()};
  send(t.chain, "x");
  send(t.chain, "y");
  REQUIRE(t.chain.statuses()[1].state == BreakerState::open);  // open until 15 s

  t.clock.advance(5s);
  t.first.script = {unreached("a down")};
  const auto second_calls = t.second.jobs.size();
  const auto result = send(t.chain, "only-a");
  REQUIRE(result);
  // The first provider's own answer, not "all providers unavailable": it was tried.
  CHECK(result->detail == "a down");
  CHECK(result->nothing_sent);
  CHECK(t.first.jobs.back() == "only-a");
  CHECK(t.second.jobs.size() == second_calls);
}

TEST_CASE("worker provider chain fails over a job answered later, from its own copy of the job") {
  TwoProviders t;
  t.first.hold = true;
  std::optional<SendResult> result;
  {
    std::string job = "late-job";
    t.chain.send(job, [&result](SendResult r) { result = std::move(r); });
    job.assign("overwritten by the caller");
  }
  CHECK_FALSE(result);
  REQUIRE(t.first.held.size() == 1);
  // The first provider answers later, from "its own thread": not reached.
  t.first.held.front()(unreached());
  REQUIRE(result);
  CHECK(result->outcome == SendOutcome::delivered);
  CHECK(t.second.jobs == std::vector<std::string>{"late-job"});
}

TEST_CASE("worker provider chain stops failing over once told to") {
  TwoProviders t;
  t.chain.stop_failover();
  t.first.script = {unreached()};
  const auto result = send(t.chain, "stays");
  REQUIRE(result);
  CHECK(result->nothing_sent);
  CHECK(result->outcome == SendOutcome::transient);
  CHECK(t.second.jobs.empty());
}

TEST_CASE("worker provider chain fails a push token over at once only when the provider was never reached") {
  const auto failed = [](http::ClientErrc error, std::uint32_t attempts) {
    http::ClientResult result;
    result.error = error;
    result.detail = "test";
    result.response.attempts = attempts;
    return notifs::worker::classify_push_response(result);
  };
  // Refused, DNS or TLS on the only attempt, or the client's own breaker: nothing left.
  CHECK(failed(http::ClientErrc::connect_failed, 1).result.nothing_sent);
  CHECK(failed(http::ClientErrc::circuit_open, 0).result.nothing_sent);
  // After several attempts an earlier one may have reached the provider; a timeout or a
  // lost connection may hide a request the provider took.
  CHECK_FALSE(failed(http::ClientErrc::connect_failed, 3).result.nothing_sent);
  CHECK_FALSE(failed(http::ClientErrc::deadline_exceeded, 1).result.nothing_sent);
  CHECK_FALSE(failed(http::ClientErrc::connection_lost, 1).result.nothing_sent);

  FakeClock clock;
  using PushChain = ProviderChain<PushDelivery, TokenOutcome>;
  std::vector<std::string> second_tokens;
  PushChain chain({{"fcm-a",
                    [&failed](const PushDelivery&, PushChain::Callback callback) {
                      callback(failed(http::ClientErrc::connect_failed, 1));
                    }},
                   {"fcm-b",
                    [&second_tokens](const PushDelivery& delivery, PushChain::Callback callback) {
                      second_tokens.push_back(delivery.token);
                      callback(TokenOutcome{SendResult::delivered_ok("projects/p/messages/1"), false});
                    }}},
                  breaker_settings(), clock);
  auto message = std::make_shared<PushMessage>();
  message->notification_id = "n-1";
  std::optional<TokenOutcome> outcome;
  chain.send(PushDelivery{message, "tok-1"}, [&outcome](TokenOutcome o) { outcome = std::move(o); });
  REQUIRE(outcome);
  CHECK(outcome->result.outcome == SendOutcome::delivered);
  CHECK(second_tokens == std::vector<std::string>{"tok-1"});
}
