#pragma once

#include <atomic>
#include <chrono>

#include "notifs/messaging/common/clock.hpp"

namespace notifs::fakes {

// A Clock that moves only when a test says so. It starts well away from the epoch so a
// default-constructed time_point in the code under test never looks like "now".
// Safe to read and advance from any thread.
class FakeClock final : public messaging::common::Clock {
 public:
  explicit FakeClock(duration start = std::chrono::hours(1)) : now_(start.count()) {}

  time_point now() const override { return time_point(duration(now_.load())); }

  void advance(duration by) { now_.fetch_add(by.count()); }

 private:
  std::atomic<duration::rep> now_;
};

}  // namespace notifs::fakes
