#pragma once

#include <chrono>

namespace notifs::messaging::common {

// A monotonic time source. Everything that decides by elapsed time (circuit breakers,
// retry budgets, caches) takes a Clock& so tests drive time by hand instead of sleeping.
// Implementations must be safe to call from any thread.
class Clock {
 public:
  using duration = std::chrono::steady_clock::duration;
  using time_point = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual time_point now() const = 0;
};

// The real monotonic clock. Stateless, so one shared instance is fine.
class SystemClock final : public Clock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }

  static SystemClock& instance() {
    static SystemClock clock;
    return clock;
  }
};

}  // namespace notifs::messaging::common
