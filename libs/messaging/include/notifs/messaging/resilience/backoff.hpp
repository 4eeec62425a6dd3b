#pragma once

#include <chrono>
#include <cstdint>

namespace notifs::messaging::common {
class Random;
}

namespace notifs::messaging::resilience {

struct BackoffSettings {
  std::chrono::milliseconds base{50};   // ceiling of the first retry's wait
  std::chrono::milliseconds max{2000};  // no wait is ever longer than this
  double factor = 2.0;                  // growth of the ceiling per retry
};

// Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
// Jitter"): the wait before retry n (n >= 1) is uniform in [0, min(max, base * factor^(n-1))].
// Full jitter spreads synchronized clients apart, which matters more than the mean wait.
// Stateless apart from the settings; thread-safe if the Random is.
class JitteredExponentialBackoff {
 public:
  JitteredExponentialBackoff(BackoffSettings settings, common::Random& random);

  // The ceiling for retry n, without jitter (n = 0 is treated as 1).
  std::chrono::milliseconds ceiling(std::uint32_t retry) const;
  // A jittered wait for retry n.
  std::chrono::milliseconds next_delay(std::uint32_t retry) const;

  const BackoffSettings& settings() const { return settings_; }

 private:
  BackoffSettings settings_;
  common::Random& random_;
};

}  // namespace notifs::messaging::resilience
