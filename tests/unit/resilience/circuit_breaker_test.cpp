#include <atomic>
#include <chrono>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "fakes/fake_clock.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"

using notifs::fakes::FakeClock;
using notifs::messaging::resilience::BreakerState;
using notifs::messaging::resilience::CallOutcome;
using notifs::messaging::resilience::CircuitBreaker;
using notifs::messaging::resilience::CircuitBreakerSettings;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kFast{10};

CircuitBreakerSettings small_settings() {
  CircuitBreakerSettings settings;
  settings.window_size = 10;
  settings.minimum_calls = 4;
  settings.failure_rate_threshold = 0.5;
  settings.slow_call_threshold = milliseconds(100);
  settings.open_duration = milliseconds(1000);
  settings.half_open_probes = 2;
  return settings;
}

// Records transitions for later inspection; the listener may run on any thread.
struct TransitionLog {
  std::mutex mutex;
  std::vector<std::pair<BreakerState, BreakerState>> seen;

  CircuitBreaker::TransitionListener listener() {
    return [this](BreakerState from, BreakerState to) {
      std::lock_guard lock(mutex);
      seen.emplace_back(from, to);
    };
  }
  std::vector<std::pair<BreakerState, BreakerState>> snapshot() {
    std::lock_guard lock(mutex);
    return seen;
  }
};

void call(CircuitBreaker& breaker, CallOutcome outcome, std::chrono::nanoseconds elapsed = kFast) {
  REQUIRE(breaker.try_acquire());
  breaker.record(outcome, elapsed);
}

void open_it(CircuitBreaker& breaker, std::uint32_t calls) {
  for (std::uint32_t i = 0; i < calls; ++i) {
    call(breaker, CallOutcome::failure);
  }
  REQUIRE(breaker.state() == BreakerState::open);
}

}  // namespace

TEST_CASE("breaker stays closed below minimum calls even if all fail", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  for (int i = 0; i < 3; ++i) {
    call(breaker, CallOutcome::failure);
  }
  CHECK(breaker.state() == BreakerState::closed);
  CHECK(breaker.failure_rate() == Approx(1.0));
  call(breaker, CallOutcome::failure);  // the fourth reaches minimum_calls
  CHECK(breaker.state() == BreakerState::open);
}

TEST_CASE("breaker opens exactly when the failure rate reaches the threshold", "[resilience][breaker]") {
  FakeClock clock;
  auto settings = small_settings();
  settings.minimum_calls = 10;
  settings.failure_rate_threshold = 0.3;
  CircuitBreaker breaker(settings, clock);
  for (int i = 0; i < 7; ++i) {
    call(breaker, CallOutcome::success);
  }
  call(breaker, CallOutcome::failure);
  call(breaker, CallOutcome::failure);
  CHECK(breaker.state() == BreakerState::closed);  // 9 calls: under minimum
  call(breaker, CallOutcome::success);
  CHECK(breaker.state() == BreakerState::closed);  // 2/10 = 0.2 < 0.3
  CHECK(breaker.failure_rate() == Approx(0.2));
  call(breaker, CallOutcome::failure);             // window slides: 3/10 = 0.3
  CHECK(breaker.failure_rate() == Approx(0.3));
  CHECK(breaker.state() == BreakerState::open);
}

TEST_CASE("breaker with threshold 1 opens only when every call failed", "[resilience][breaker]") {
  FakeClock clock;
  auto settings = small_settings();
  settings.failure_rate_threshold = 1.0;
  CircuitBreaker breaker(settings, clock);
  call(breaker, CallOutcome::success);
  for (int i = 0; i < 9; ++i) {
    call(breaker, CallOutcome::failure);
  }
  CHECK(breaker.state() == BreakerState::closed);  // 9/10
  call(breaker, CallOutcome::failure);             // the success slides out: 10/10
  CHECK(breaker.state() == BreakerState::open);
}

TEST_CASE("breaker counts slow successes as failures", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  call(breaker, CallOutcome::success, milliseconds(100));  // at the threshold: not slow
  CHECK(breaker.failure_rate() == Approx(0.0));
  call(breaker, CallOutcome::success, milliseconds(101));
  call(breaker, CallOutcome::success, std::chrono::seconds(30));
  CHECK(breaker.failure_rate() == Approx(2.0 / 3.0));
  CHECK(breaker.state() == BreakerState::closed);
  call(breaker, CallOutcome::success, kFast);  // 2/4 = 0.5
  CHECK(breaker.state() == BreakerState::open);
}

TEST_CASE("an open breaker refuses until the wait has passed, then goes half-open", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  open_it(breaker, 4);

  CHECK_FALSE(breaker.try_acquire());
  CHECK(breaker.remaining_open() == milliseconds(1000));
  clock.advance(milliseconds(999));
  CHECK(breaker.remaining_open() == milliseconds(1));
  CHECK_FALSE(breaker.try_acquire());
  CHECK(breaker.state() == BreakerState::open);
  clock.advance(std::chrono::microseconds(999));
  CHECK(breaker.remaining_open() == milliseconds(1));  // rounded up, never zero early
  CHECK_FALSE(breaker.try_acquire());

  clock.advance(std::chrono::microseconds(1));
  CHECK(breaker.remaining_open() == milliseconds(0));
  CHECK(breaker.state() == BreakerState::open);  // lazily: nobody asked yet
  CHECK(breaker.try_acquire());
  CHECK(breaker.state() == BreakerState::half_open);
  CHECK(breaker.remaining_open() == milliseconds(0));
}

TEST_CASE("half-open lets only the configured number of probes through", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  open_it(breaker, 4);
  clock.advance(milliseconds(1000));

  CHECK(breaker.try_acquire());
  CHECK(breaker.try_acquire());
  CHECK_FALSE(breaker.try_acquire());  // both probes out
  CHECK_FALSE(breaker.try_acquire());
  breaker.record(CallOutcome::success, kFast);
  CHECK(breaker.state() == BreakerState::half_open);
  CHECK_FALSE(breaker.try_acquire());  // an answered probe does not free a slot
  breaker.record(CallOutcome::success, kFast);
  CHECK(breaker.state() == BreakerState::closed);
  CHECK(breaker.try_acquire());
  breaker.record(CallOutcome::success, kFast);
}

TEST_CASE("successful probes close the breaker with a fresh window", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  open_it(breaker, 4);
  CHECK(breaker.failure_rate() == Approx(1.0));
  clock.advance(milliseconds(1000));
  call(breaker, CallOutcome::success);
  call(breaker, CallOutcome::success);
  REQUIRE(breaker.state() == BreakerState::closed);
  CHECK(breaker.failure_rate() == Approx(0.0));

  // The old failures are gone: it takes minimum_calls new calls to open again.
  for (int i = 0; i < 3; ++i) {
    call(breaker, CallOutcome::failure);
  }
  CHECK(breaker.state() == BreakerState::closed);
  call(breaker, CallOutcome::failure);
  CHECK(breaker.state() == BreakerState::open);
}

TEST_CASE("a failing or slow probe re-opens the breaker and restarts the wait", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  open_it(breaker, 4);
  clock.advance(milliseconds(1500));

  auto probe_outcome = GENERATE(std::make_pair(CallOutcome::failure, kFast),
                                std::make_pair(CallOutcome::success, milliseconds(500)));
  REQUIRE(breaker.try_acquire());
  REQUIRE(breaker.try_acquire());
  breaker.record(CallOutcome::success, kFast);
  breaker.record(probe_outcome.first, probe_outcome.second);
  CHECK(breaker.state() == BreakerState::open);
  CHECK(breaker.remaining_open() == milliseconds(1000));  // counted from the failed probe
  clock.advance(milliseconds(999));
  CHECK_FALSE(breaker.try_acquire());
  clock.advance(milliseconds(1));
  CHECK(breaker.try_acquire());
  CHECK(breaker.state() == BreakerState::half_open);
  breaker.record(CallOutcome::success, kFast);
}

TEST_CASE("the other probe answering after a re-open changes nothing", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  open_it(breaker, 4);
  clock.advance(milliseconds(1000));
  REQUIRE(breaker.try_acquire());
  REQUIRE(breaker.try_acquire());
  breaker.record(CallOutcome::failure, kFast);
  REQUIRE(breaker.state() == BreakerState::open);
  breaker.record(CallOutcome::success, kFast);  // the second probe, late
  CHECK(breaker.state() == BreakerState::open);
  CHECK_FALSE(breaker.try_acquire());
}

TEST_CASE("late results from the closed era do not corrupt later states", "[resilience][breaker]") {
  FakeClock clock;
  CircuitBreaker breaker(small_settings(), clock);
  // Three slow calls are let through while closed and are still running when it opens.
  REQUIRE(breaker.try_acquire());
  REQUIRE(breaker.try_acquire());
  REQUIRE(breaker.try_acquire());
  open_it(breaker, 4);

  // One finishes while open: ignored, the wait is unchanged.
  clock.advance(milliseconds(400));
  breaker.record(CallOutcome::success, std::chrono::seconds(5));
  CHECK(breaker.state() == BreakerState::open);
  CHECK(breaker.remaining_open() == milliseconds(600));

  // One finishes while half-open before any probe is out: ignored, probes unaffected.
  clock.advance(milliseconds(600));
  REQUIRE(breaker.try_acquire());
  breaker.record(CallOutcome::success, kFast);  // that was the first probe, answered
  CHECK(breaker.state() == BreakerState::half_open);
  // No probe is outstanding now, so this can only be a late call.
  breaker.record(CallOutcome::failure, std::chrono::seconds(5));
  CHECK(breaker.state() == BreakerState::half_open);
  REQUIRE(breaker.try_acquire());  // the second and last probe slot is still free
  CHECK_FALSE(breaker.try_acquire());
  breaker.record(CallOutcome::success, kFast);
  CHECK(breaker.state() == BreakerState::closed);

  // The last one finishes after closing: it is a result like any other in the new window.
  breaker.record(CallOutcome::failure, kFast);
  CHECK(breaker.state() == BreakerState::closed);
  CHECK(breaker.failure_rate() == Approx(1.0));
}

TEST_CASE("breaker reports every transition to the listener, in order", "[resilience][breaker]") {
  FakeClock clock;
  TransitionLog log;
  CircuitBreaker breaker(small_settings(), clock, log.listener());
  open_it(breaker, 4);
  clock.advance(milliseconds(1000));
  call(breaker, CallOutcome::failure);  // half-open, then open again
  clock.advance(milliseconds(1000));
  call(breaker, CallOutcome::success);
  call(breaker, CallOutcome::success);

  using S = BreakerState;
  std::vector<std::pair<S, S>> expected{
      {S::closed, S::open},    {S::open, S::half_open}, {S::half_open, S::open},
      {S::open, S::half_open}, {S::half_open, S::closed},
  };
  CHECK(log.snapshot() == expected);
}

TEST_CASE("the listener may read the breaker's state", "[resilience][breaker]") {
  FakeClock clock;
  std::vector<BreakerState> observed;
  CircuitBreaker* self = nullptr;
  CircuitBreaker breaker(small_settings(), clock, [&](BreakerState, BreakerState) {
    observed.push_back(self->state());  // would deadlock if called under the state lock
  });
  self = &breaker;
  open_it(breaker, 4);
  CHECK(observed == std::vector<BreakerState>{BreakerState::open});
}

TEST_CASE("a throwing listener does not stop the breaker or later notifications", "[resilience][breaker]") {
  FakeClock clock;
  int calls = 0;
  CircuitBreaker breaker(small_settings(), clock, [&](BreakerState, BreakerState to) {
    ++calls;
    if (to == BreakerState::open) {
      throw std::runtime_error("listener failed");
    }
  });
  for (int i = 0; i < 3; ++i) {
    call(breaker, CallOutcome::failure);
  }
  REQUIRE(breaker.try_acquire());
  CHECK_THROWS_AS(breaker.record(CallOutcome::failure, kFast), std::runtime_error);
  CHECK(breaker.state() == BreakerState::open);  // the transition itself happened
  clock.advance(milliseconds(1000));
  CHECK(breaker.try_acquire());  // open -> half_open is still delivered, not stuck
  CHECK(calls == 2);
  breaker.record(CallOutcome::success, kFast);
}

TEST_CASE("failures slide out of the window", "[resilience][breaker]") {
  FakeClock clock;
  auto settings = small_settings();
  settings.window_size = 5;
  settings.minimum_calls = 5;
  settings.failure_rate_threshold = 0.6;
  CircuitBreaker breaker(settings, clock);
  call(breaker, CallOutcome::failure);
  call(breaker, CallOutcome::failure);
  for (int i = 0; i < 3; ++i) {
    call(breaker, CallOutcome::success);
  }
  CHECK(breaker.failure_rate() == Approx(0.4));
  call(breaker, CallOutcome::success);  // evicts the first failure
  CHECK(breaker.failure_rate() == Approx(0.2));
  call(breaker, CallOutcome::success);
  CHECK(breaker.failure_rate() == Approx(0.0));
  call(breaker, CallOutcome::failure);
  call(breaker, CallOutcome::failure);
  CHECK(breaker.state() == BreakerState::closed);  // 2/5
  call(breaker, CallOutcome::failure);
  CHECK(breaker.state() == BreakerState::open);    // 3/5 = 0.6
}

TEST_CASE("breaker state names", "[resilience][breaker]") {
  using notifs::messaging::resilience::to_string;
  CHECK(to_string(BreakerState::closed) == "closed");
  CHECK(to_string(BreakerState::open) == "open");
  CHECK(to_string(BreakerState::half_open) == "half_open");
}

TEST_CASE("breaker rejects settings that cannot work", "[resilience][breaker]") {
  FakeClock clock;
  auto rejects = [&](auto change) {
    auto settings = small_settings();
    change(settings);
    CHECK_THROWS_AS(CircuitBreaker(settings, clock), std::invalid_argument);
  };
  rejects([](CircuitBreakerSettings& s) { s.window_size = 0; });
  rejects([](CircuitBreakerSettings& s) { s.minimum_calls = 0; });
  rejects([](CircuitBreakerSettings& s) { s.minimum_calls = s.window_size + 1; });
  rejects([](CircuitBreakerSettings& s) { s.failure_rate_threshold = 0.0; });
  rejects([](CircuitBreakerSettings& s) { s.failure_rate_threshold = -0.5; });
  rejects([](CircuitBreakerSettings& s) { s.failure_rate_threshold = 1.01; });
  rejects([](CircuitBreakerSettings& s) { s.failure_rate_threshold = std::numeric_limits<double>::quiet_NaN(); });
  rejects([](CircuitBreakerSettings& s) { s.slow_call_threshold = milliseconds(0); });
  rejects([](CircuitBreakerSettings& s) { s.open_duration = milliseconds(-1); });
  rejects([](CircuitBreakerSettings& s) { s.half_open_probes = 0; });

  CHECK_NOTHROW(CircuitBreaker(CircuitBreakerSettings{}, clock));
  try {
    auto settings = small_settings();
    settings.window_size = 0;
    CircuitBreaker breaker(settings, clock);
    FAIL("no exception");
  } catch (const std::invalid_argument& error) {
    CHECK_THAT(error.what(), Catch::Contains("window_size"));
  }
}

TEST_CASE("breaker survives many threads acquiring and recording", "[resilience][breaker]") {
  FakeClock clock;
  TransitionLog log;
  auto settings = small_settings();
  settings.half_open_probes = 3;
  CircuitBreaker* self = nullptr;
  auto record_transition = log.listener();
  // Reading the breaker from the listener while other threads transition it must not deadlock.
  CircuitBreaker breaker(settings, clock, [&](BreakerState from, BreakerState to) {
    (void)self->state();
    record_transition(from, to);
  });
  self = &breaker;

  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 2000;
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        // Every thread moves time and fails in bursts, so even if the scheduler ran the
        // threads one after another each would drive the breaker through all its states.
        if (i % 50 == 0) {
          clock.advance(milliseconds(300));
        }
        if (breaker.try_acquire()) {
          admitted.fetch_add(1);
          bool fail = ((i + t) / 5) % 2 == 0;
          breaker.record(fail ? CallOutcome::failure : CallOutcome::success, kFast);
        }
        (void)breaker.state();
        (void)breaker.failure_rate();
        (void)breaker.remaining_open();
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }

  CHECK(admitted.load() > 0);
  auto seen = log.snapshot();
  CHECK(seen.size() >= 3);  // the threads did move it through its states
  // Delivered in order: each transition starts where the previous one ended.
  BreakerState current = BreakerState::closed;
  for (const auto& [from, to] : seen) {
    CHECK(from == current);
    CHECK(from != to);
    current = to;
  }
  CHECK(current == breaker.state());
  CHECK(breaker.failure_rate() >= 0.0);
  CHECK(breaker.failure_rate() <= 1.0);
}
