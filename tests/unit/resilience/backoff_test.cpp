#include <chrono>
#include <limits>
#include <stdexcept>

#include <catch2/catch.hpp>

#include "fakes/fake_random.hpp"
#include "notifs/messaging/resilience/backoff.hpp"

using notifs::fakes::FakeRandom;
using notifs::messaging::resilience::BackoffSettings;
using notifs::messaging::resilience::JitteredExponentialBackoff;
using std::chrono::milliseconds;

TEST_CASE("backoff ceiling grows by the factor from base and stops at max", "[resilience][backoff]") {
  FakeRandom random;
  JitteredExponentialBackoff backoff({milliseconds(50), milliseconds(2000), 2.0}, random);
  CHECK(backoff.ceiling(0) == milliseconds(50));  // 0 is treated as the first retry
  CHECK(backoff.ceiling(1) == milliseconds(50));
  CHECK(backoff.ceiling(2) == milliseconds(100));
  CHECK(backoff.ceiling(3) == milliseconds(200));
  CHECK(backoff.ceiling(5) == milliseconds(800));
  CHECK(backoff.ceiling(6) == milliseconds(1600));
  CHECK(backoff.ceiling(7) == milliseconds(2000));  // 3200 capped
  CHECK(backoff.ceiling(8) == milliseconds(2000));
  CHECK(random.draws() == 0);  // the ceiling is not jittered
}

TEST_CASE("backoff ceiling with a non-integer factor", "[resilience][backoff]") {
  FakeRandom random;
  JitteredExponentialBackoff backoff({milliseconds(100), milliseconds(1000), 1.5}, random);
  CHECK(backoff.ceiling(1) == milliseconds(100));
  CHECK(backoff.ceiling(2) == milliseconds(150));
  CHECK(backoff.ceiling(3) == milliseconds(225));
  CHECK(backoff.ceiling(20) == milliseconds(1000));
}

TEST_CASE("backoff survives huge retry numbers without overflow", "[resilience][backoff]") {
  FakeRandom random(FakeRandom::kMax);
  JitteredExponentialBackoff backoff({milliseconds(50), milliseconds(2000), 2.0}, random);
  for (std::uint32_t retry : {64u, 65u, 1000u, 1u << 20, std::numeric_limits<std::uint32_t>::max()}) {
    INFO("retry " << retry);
    CHECK(backoff.ceiling(retry) == milliseconds(2000));
    CHECK(backoff.next_delay(retry) == milliseconds(2000));
  }

  // Even with a max near the top of the representable range.
  const milliseconds huge(std::numeric_limits<milliseconds::rep>::max() / 2);
  JitteredExponentialBackoff wide({milliseconds(1), huge, 10.0}, random);
  CHECK(wide.ceiling(400) == huge);
  CHECK(wide.next_delay(400) == huge);
}

TEST_CASE("backoff jitter spans exactly [0, ceiling]", "[resilience][backoff]") {
  FakeRandom random(0);
  JitteredExponentialBackoff backoff({milliseconds(50), milliseconds(2000), 2.0}, random);
  CHECK(backoff.next_delay(1) == milliseconds(0));
  CHECK(backoff.next_delay(10) == milliseconds(0));

  random.set({FakeRandom::kMax});
  CHECK(backoff.next_delay(1) == milliseconds(50));
  CHECK(backoff.next_delay(3) == milliseconds(200));
  CHECK(backoff.next_delay(10) == milliseconds(2000));

  // Half of the 64-bit range lands in the middle of [0, ceiling].
  random.set({std::uint64_t{1} << 63});
  CHECK(backoff.next_delay(3) == milliseconds(100));
}

TEST_CASE("backoff jitter stays in bounds for arbitrary draws", "[resilience][backoff]") {
  FakeRandom random{0x9e3779b97f4a7c15ULL, 0x1ULL, 0xdeadbeefcafebabeULL, 0x7fffffffffffffffULL,
                    0x8000000000000000ULL, 0xfffffffffffffffeULL};
  JitteredExponentialBackoff backoff({milliseconds(50), milliseconds(2000), 2.0}, random);
  for (std::uint32_t retry = 1; retry <= 12; ++retry) {
    for (int draw = 0; draw < 6; ++draw) {
      auto delay = backoff.next_delay(retry);
      CHECK(delay >= milliseconds(0));
      CHECK(delay <= backoff.ceiling(retry));
    }
  }
}

TEST_CASE("backoff with base zero never waits", "[resilience][backoff]") {
  FakeRandom random(FakeRandom::kMax);
  JitteredExponentialBackoff backoff({milliseconds(0), milliseconds(0), 2.0}, random);
  CHECK(backoff.next_delay(1) == milliseconds(0));
  CHECK(backoff.next_delay(100) == milliseconds(0));
}

TEST_CASE("backoff rejects settings that cannot work", "[resilience][backoff]") {
  FakeRandom random;
  auto make = [&](BackoffSettings settings) { JitteredExponentialBackoff backoff(settings, random); };
  CHECK_THROWS_AS(make({milliseconds(-1), milliseconds(10), 2.0}), std::invalid_argument);
  CHECK_THROWS_AS(make({milliseconds(100), milliseconds(10), 2.0}), std::invalid_argument);
  CHECK_THROWS_AS(make({milliseconds(10), milliseconds(100), 0.5}), std::invalid_argument);
  CHECK_THROWS_AS(make({milliseconds(10), milliseconds(100), std::numeric_limits<double>::quiet_NaN()}),
                  std::invalid_argument);
  CHECK_THROWS_AS(make({milliseconds(10), milliseconds(100), std::numeric_limits<double>::infinity()}),
                  std::invalid_argument);
  CHECK_NOTHROW(make({milliseconds(10), milliseconds(10), 1.0}));
}
