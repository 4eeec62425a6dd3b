#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fakes/fake_clock.hpp"
#include "notifs/messaging/common/clock.hpp"
#include "rate_limiter.hpp"

using notifs::api_gateway::add_rate_limit_headers;
using notifs::api_gateway::rate_limited_error;
using notifs::api_gateway::RateLimiter;
using notifs::api_gateway::RateLimitSettings;
using notifs::fakes::FakeClock;
using notifs::messaging::http::Headers;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

namespace {

RateLimitSettings limit(double rate, double burst, std::size_t max_keys = 100000) {
  RateLimitSettings settings;
  settings.requests_per_second = rate;
  settings.burst = burst;
  settings.max_keys = max_keys;
  return settings;
}

// How many of `attempts` acquires on `key` are allowed, time standing still.
int drain(RateLimiter& limiter, std::string_view key, int attempts = 1000) {
  int allowed = 0;
  for (int i = 0; i < attempts; ++i) allowed += limiter.acquire(key).allowed ? 1 : 0;
  return allowed;
}

// A clock a test may set anywhere, backwards included; FakeClock only moves forward.
class SettableClock final : public notifs::messaging::common::Clock {
 public:
  explicit SettableClock(duration start) : now_(start.count()) {}
  time_point now() const override { return time_point(duration(now_.load())); }
  void set(duration to) { now_.store(to.count()); }

 private:
  std::atomic<duration::rep> now_;
};

}  // namespace

TEST_CASE("rate_limiter is off by default and allows everything", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter({}, clock);
  CHECK_FALSE(limiter.enabled());
  for (int i = 0; i < 10000; ++i) {
    const auto decision = limiter.acquire("key-" + std::to_string(i % 3));
    REQUIRE(decision.allowed);
    CHECK(decision.limit == 0);
  }
  CHECK(limiter.tracked_keys() == 0);  // off means no memory spent per key either

  Headers headers;
  add_rate_limit_headers(limiter.acquire("key"), headers);
  CHECK(headers.size() == 0);

  // A burst alone does not turn it on: the rate does.
  RateLimiter burst_only(limit(0, 5), clock);
  CHECK_FALSE(burst_only.enabled());
  CHECK(drain(burst_only, "key") == 1000);
}

TEST_CASE("rate_limiter grants the burst then refuses", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(1, 3), clock);
  REQUIRE(limiter.enabled());

  for (std::int64_t expected_remaining : {2, 1, 0}) {
    const auto decision = limiter.acquire("key");
    REQUIRE(decision.allowed);
    CHECK(decision.limit == 3);
    CHECK(decision.remaining == expected_remaining);
    CHECK(decision.retry_after == seconds(0));
  }
  const auto refused = limiter.acquire("key");
  CHECK_FALSE(refused.allowed);
  CHECK(refused.limit == 3);
  CHECK(refused.remaining == 0);
  CHECK(refused.retry_after == seconds(1));
  CHECK(refused.reset == seconds(3));  // three tokens at 1/s to be full again

  // Refusals take nothing: after one interval exactly one more is allowed.
  CHECK(drain(limiter, "key", 50) == 0);
  clock.advance(seconds(1));
  CHECK(drain(limiter, "key") == 1);
}

TEST_CASE("rate_limiter burst 0 means one second's worth, at least one request",
          "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter five(limit(5, 0), clock);
  CHECK(five.acquire("key").limit == 5);
  CHECK(drain(five, "key") == 4);

  // Half a request per second cannot mean a bucket of half a request: nothing would pass.
  RateLimiter half(limit(0.5, 0), clock);
  const auto first = half.acquire("key");
  CHECK(first.allowed);
  CHECK(first.limit == 1);
  CHECK(first.remaining == 0);
  CHECK(drain(half, "key") == 0);

  // A fractional burst holds its whole part.
  RateLimiter fractional(limit(1, 2.5), clock);
  CHECK(fractional.acquire("key").limit == 2);
  CHECK(drain(fractional, "key") == 1);
}

TEST_CASE("rate_limiter refills at a fractional rate", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(0.5, 2), clock);  // one request every 2 s, two at once
  CHECK(drain(limiter, "key") == 2);

  auto refused = limiter.acquire("key");
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == seconds(2));
  CHECK(refused.reset == seconds(4));

  clock.advance(seconds(1));
  refused = limiter.acquire("key");
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == seconds(1));
  CHECK(refused.reset == seconds(3));

  clock.advance(milliseconds(999));
  CHECK_FALSE(limiter.acquire("key").allowed);
  clock.advance(milliseconds(1));
  const auto allowed = limiter.acquire("key");
  CHECK(allowed.allowed);
  CHECK(allowed.remaining == 0);
  CHECK(drain(limiter, "key") == 0);

  // 0.1/s: ten seconds per request, with no drift from 1e9 / 0.1 in floating point.
  RateLimiter slow(limit(0.1, 1), clock);
  for (int round = 0; round < 100; ++round) {
    INFO("round " << round);
    REQUIRE(slow.acquire("key").allowed);
    clock.advance(seconds(10) - nanoseconds(1));
    REQUIRE_FALSE(slow.acquire("key").allowed);
    clock.advance(nanoseconds(1));
  }
}

TEST_CASE("rate_limiter refill stops at the bucket size", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(2, 4), clock);
  CHECK(drain(limiter, "key") == 4);
  clock.advance(std::chrono::hours(24));
  const auto first = limiter.acquire("key");
  CHECK(first.remaining == 3);
  CHECK(drain(limiter, "key") == 3);
}

TEST_CASE("rate_limiter keeps keys independent", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(1, 2), clock);
  CHECK(drain(limiter, "alpha") == 2);
  CHECK_FALSE(limiter.acquire("alpha").allowed);

  const auto beta = limiter.acquire("beta");
  CHECK(beta.allowed);
  CHECK(beta.remaining == 1);
  CHECK(drain(limiter, "beta") == 1);

  // Keys differing only in case or by a prefix are different keys.
  CHECK(limiter.acquire("Alpha").allowed);
  CHECK(limiter.acquire("alph").allowed);
  CHECK(limiter.acquire(std::string("alpha\0x", 7)).allowed);
  CHECK(limiter.tracked_keys() == 5);
}

TEST_CASE("rate_limiter retry_after is rounded up, at least 1 and accurate",
          "[api_gateway][rate_limit]") {
  FakeClock clock;
  SECTION("a wait under a second still says 1") {
    RateLimiter limiter(limit(10, 1), clock);
    REQUIRE(limiter.acquire("key").allowed);
    const auto refused = limiter.acquire("key");
    CHECK_FALSE(refused.allowed);
    CHECK(refused.retry_after == seconds(1));
    CHECK(refused.reset == seconds(1));  // 100 ms, rounded up
    clock.advance(milliseconds(100));
    CHECK(limiter.acquire("key").allowed);
  }
  SECTION("a partial second is rounded up, and waiting that long is enough") {
    RateLimiter limiter(limit(0.25, 1), clock);
    REQUIRE(limiter.acquire("key").allowed);
    CHECK(limiter.acquire("key").retry_after == seconds(4));
    clock.advance(milliseconds(1500));
    const auto refused = limiter.acquire("key");
    CHECK(refused.retry_after == seconds(3));  // 2.5 s left
    clock.advance(milliseconds(2500) - nanoseconds(1));
    const auto almost = limiter.acquire("key");
    CHECK_FALSE(almost.allowed);
    CHECK(almost.retry_after == seconds(1));
    clock.advance(nanoseconds(1));
    CHECK(limiter.acquire("key").allowed);
  }
  SECTION("the slowest rate allowed does not overflow") {
    RateLimiter limiter(limit(1e-6, 1), clock);
    REQUIRE(limiter.acquire("key").allowed);
    CHECK(limiter.acquire("key").retry_after == seconds(1'000'000));
  }
  SECTION("the fastest rate allowed with a huge burst") {
    RateLimiter limiter(limit(1e9, 0), clock);
    const auto first = limiter.acquire("key");
    CHECK(first.allowed);
    CHECK(first.limit == 1'000'000'000);
    CHECK(first.remaining == 999'999'999);
  }
}

TEST_CASE("rate_limiter headers carry the decision", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(0.5, 3), clock);

  Headers allowed_headers;
  add_rate_limit_headers(limiter.acquire("key"), allowed_headers);
  CHECK(allowed_headers.get("RateLimit-Limit") == "3");
  CHECK(allowed_headers.get("RateLimit-Remaining") == "2");
  CHECK(allowed_headers.get("RateLimit-Reset") == "2");
  CHECK_FALSE(allowed_headers.contains("Retry-After"));

  REQUIRE(drain(limiter, "key") == 2);
  clock.advance(milliseconds(500));
  const auto refused = limiter.acquire("key");
  REQUIRE_FALSE(refused.allowed);
  Headers refused_headers;
  refused_headers.set("ratelimit-remaining", "stale");  // replaced, names are case-insensitive
  add_rate_limit_headers(refused, refused_headers);
  CHECK(refused_headers.get("RateLimit-Limit") == "3");
  CHECK(refused_headers.get("RateLimit-Remaining") == "0");
  CHECK(refused_headers.get("RateLimit-Reset") == "6");  // 5.5 s to full, rounded up
  CHECK(refused_headers.get("Retry-After") == "2");      // 1.5 s to the next one
  CHECK(refused_headers.size() == 4);

  const auto error = rate_limited_error(refused);
  CHECK(error.status() == 429);
  CHECK(error.code() == "rate_limited");
  CHECK(error.headers().get("Retry-After") == "2");
  CHECK(error.headers().get("RateLimit-Remaining") == "0");
  const auto response = error.to_response();
  CHECK(response.status == 429);
  CHECK(response.headers.get("Retry-After") == "2");
  CHECK(response.headers.get("RateLimit-Limit") == "3");
  CHECK(response.body.find("rate_limited") != std::string::npos);

  // Even a decision without a limit yields a 429 the contract accepts.
  RateLimiter::Decision bare;
  bare.allowed = false;
  CHECK(rate_limited_error(bare).headers().get("Retry-After") == "1");
}

TEST_CASE("rate_limiter drops the least recently used key beyond max_keys",
          "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(1, 1, 2), clock);
  REQUIRE(limiter.acquire("a").allowed);
  REQUIRE(limiter.acquire("b").allowed);
  REQUIRE_FALSE(limiter.acquire("a").allowed);  // a is now the most recent
  REQUIRE(limiter.acquire("c").allowed);        // evicts b
  CHECK(limiter.tracked_keys() == 2);

  CHECK_FALSE(limiter.acquire("a").allowed);  // kept: still empty
  // b was dropped and comes back full (the documented price of the bound); this evicts c.
  CHECK(limiter.acquire("b").allowed);
  CHECK(limiter.acquire("c").allowed);  // c was dropped too, so it is full again
  CHECK(limiter.tracked_keys() == 2);

  // A refusal counts as use: the refused key is not the one dropped.
  RateLimiter refused_use(limit(1, 1, 2), clock);
  REQUIRE(refused_use.acquire("x").allowed);
  REQUIRE(refused_use.acquire("y").allowed);
  REQUIRE_FALSE(refused_use.acquire("x").allowed);
  REQUIRE(refused_use.acquire("z").allowed);  // evicts y
  CHECK_FALSE(refused_use.acquire("x").allowed);
}

TEST_CASE("rate_limiter bound holds exactly across shards", "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(1, 1, 2000), clock);
  for (int i = 0; i < 20000; ++i) {
    REQUIRE(limiter.acquire("key-" + std::to_string(i)).allowed);
  }
  CHECK(limiter.tracked_keys() == 2000);
  // The most recent key of all is still there, empty.
  CHECK_FALSE(limiter.acquire("key-19999").allowed);
  // A long key replacing a short one (reusing its node) is a correct bucket too.
  const std::string long_key(300, 'k');
  REQUIRE(limiter.acquire(long_key).allowed);
  CHECK_FALSE(limiter.acquire(long_key).allowed);
  CHECK(limiter.tracked_keys() == 2000);
}

TEST_CASE("rate_limiter never grants more than the burst to concurrent callers",
          "[api_gateway][rate_limit]") {
  FakeClock clock;
  // A burst large enough that the threads contend for it for a while, not for a moment.
  constexpr int kBurst = 400000;
  RateLimiter limiter(limit(1, kBurst), clock);
  std::atomic<int> ready{0};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      ++ready;
      while (ready.load() < 4) std::this_thread::yield();  // start together
      int mine = 0;
      for (int i = 0; i < kBurst; ++i) mine += limiter.acquire("shared").allowed ? 1 : 0;
      allowed += mine;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(allowed == kBurst);  // the clock is frozen: exactly the burst, no refill
}

TEST_CASE("rate_limiter concurrent callers get at most burst plus refill",
          "[api_gateway][rate_limit]") {
  FakeClock clock;
  RateLimiter limiter(limit(100, 50), clock);
  std::atomic<bool> done{false};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      int mine = 0;
      bool last_round = false;
      while (!last_round) {
        last_round = done.load();
        for (int i = 0; i < 100; ++i) mine += limiter.acquire("shared").allowed ? 1 : 0;
      }
      allowed += mine;
    });
  }
  // 2 s of fake time in 1 ms steps: 200 refills of one request each.
  for (int i = 0; i < 2000; ++i) {
    clock.advance(milliseconds(1));
    std::this_thread::yield();
  }
  done = true;
  for (auto& thread : threads) thread.join();
  CHECK(allowed <= 50 + 200);
  // Not an equality: an acquirer starved while the clock ran lets the bucket overflow,
  // and what overflows is lost, as it should be.
  CHECK(allowed >= 50);
}

TEST_CASE("rate_limiter treats a clock going backwards as no time passing",
          "[api_gateway][rate_limit]") {
  SettableClock clock(seconds(100));
  RateLimiter limiter(limit(1, 2), clock);
  REQUIRE(drain(limiter, "key") == 2);

  clock.set(seconds(50));
  const auto refused = limiter.acquire("key");
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == seconds(1));  // not 51 s: the bucket did not lose tokens
  CHECK(refused.reset == seconds(2));
  CHECK(limiter.acquire("other").allowed);  // a new key starts full

  // Time starts counting again from the latest reading, not from the jump.
  clock.set(seconds(100) + milliseconds(999));
  CHECK_FALSE(limiter.acquire("key").allowed);
  clock.set(seconds(101));
  CHECK(limiter.acquire("key").allowed);
  CHECK_FALSE(limiter.acquire("key").allowed);
}

TEST_CASE("rate_limiter rejects malformed settings", "[api_gateway][rate_limit]") {
  FakeClock clock;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(RateLimiter(limit(-1, 0), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(nan, 0), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(inf, 0), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(1, -1), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(1, nan), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(1e-9, 0), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(2e9, 0), clock), std::invalid_argument);
  CHECK_THROWS_AS(RateLimiter(limit(1, 1, 0), clock), std::invalid_argument);
  CHECK_NOTHROW(RateLimiter(limit(0, 0, 0), clock));  // off: max_keys is unused
}
