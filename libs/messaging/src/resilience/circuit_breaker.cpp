#include "notifs/messaging/resilience/circuit_breaker.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <string>

namespace notifs::messaging::resilience {
namespace {

CircuitBreakerSettings validated(CircuitBreakerSettings settings) {
  auto fail = [](const std::string& what) {
    throw std::invalid_argument("circuit breaker settings: " + what);
  };
  if (settings.window_size == 0) {
    fail("window_size must be at least 1");
  }
  if (settings.minimum_calls == 0 || settings.minimum_calls > settings.window_size) {
    fail("minimum_calls must be in [1, window_size=" + std::to_string(settings.window_size) +
         "], got " + std::to_string(settings.minimum_calls));
  }
  if (!(settings.failure_rate_threshold > 0.0 && settings.failure_rate_threshold <= 1.0)) {
    fail("failure_rate_threshold must be in (0, 1], got " +
         std::to_string(settings.failure_rate_threshold));
  }
  if (settings.slow_call_threshold.count() <= 0) {
    fail("slow_call_threshold must be positive, got " +
         std::to_string(settings.slow_call_threshold.count()) + "ms");
  }
  if (settings.open_duration.count() <= 0) {
    fail("open_duration must be positive, got " + std::to_string(settings.open_duration.count()) +
         "ms");
  }
  if (settings.half_open_probes == 0) {
    fail("half_open_probes must be at least 1");
  }
  return settings;
}

}  // namespace

std::string_view to_string(BreakerState state) {
  switch (state) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "half_open";
  }
  return "unknown";
}

CircuitBreaker::CircuitBreaker(CircuitBreakerSettings settings, const common::Clock& clock,
                               TransitionListener listener)
    : settings_(validated(settings)),
      clock_(clock),
      listener_(std::move(listener)),
      window_(settings_.window_size, 0) {}

bool CircuitBreaker::try_acquire() {
  Transitions fired;
  std::unique_lock lock(mutex_);
  bool allowed = false;
  if (state_ == BreakerState::open &&
      clock_.now() - opened_at_ >= settings_.open_duration) {
    transition_locked(BreakerState::half_open, fired);
  }
  switch (state_) {
    case BreakerState::closed:
      allowed = true;
      break;
    case BreakerState::open:
      allowed = false;
      break;
    case BreakerState::half_open:
      // Probes already answered count too: a half-open period lets exactly
      // half_open_probes calls through, not that many at a time forever.
      allowed = probes_in_flight_ + probe_successes_ < settings_.half_open_probes;
      if (allowed) {
        ++probes_in_flight_;
      }
      break;
  }
  notify(lock, fired);
  return allowed;
}

void CircuitBreaker::record(CallOutcome outcome, std::chrono::nanoseconds elapsed) {
  const bool failed = outcome == CallOutcome::failure || elapsed > settings_.slow_call_threshold;
  Transitions fired;
  std::unique_lock lock(mutex_);
  switch (state_) {
    case BreakerState::closed:
      record_in_window_locked(failed);
      // Divided rather than cross-multiplied: 3/10 rounds to the same double as a
      // threshold written 0.3, so "exactly at the threshold" opens as documented.
      if (window_count_ >= settings_.minimum_calls &&
          static_cast<double>(window_failures_) / static_cast<double>(window_count_) >=
              settings_.failure_rate_threshold) {
        transition_locked(BreakerState::open, fired);
      }
      break;
    case BreakerState::open:
      // A call let through before the breaker opened: the decision is made already.
      break;
    case BreakerState::half_open:
      if (probes_in_flight_ == 0) {
        break;  // a late call from before half-open, not a probe (see the header)
      }
      --probes_in_flight_;
      if (failed) {
        transition_locked(BreakerState::open, fired);
      } else if (++probe_successes_ >= settings_.half_open_probes) {
        transition_locked(BreakerState::closed, fired);
      }
      break;
  }
  notify(lock, fired);
}

BreakerState CircuitBreaker::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

double CircuitBreaker::failure_rate() const {
  std::lock_guard lock(mutex_);
  if (window_count_ == 0) {
    return 0.0;
  }
  return static_cast<double>(window_failures_) / static_cast<double>(window_count_);
}

std::chrono::milliseconds CircuitBreaker::remaining_open() const {
  std::lock_guard lock(mutex_);
  if (state_ != BreakerState::open) {
    return std::chrono::milliseconds::zero();
  }
  const auto left = settings_.open_duration - (clock_.now() - opened_at_);
  if (left <= common::Clock::duration::zero()) {
    return std::chrono::milliseconds::zero();
  }
  // Rounded up: a Retry-After computed from this must not invite the caller back early.
  return std::chrono::ceil<std::chrono::milliseconds>(left);
}

void CircuitBreaker::transition_locked(BreakerState to, Transitions& fired) {
  const BreakerState from = state_;
  state_ = to;
  probes_in_flight_ = 0;
  probe_successes_ = 0;
  switch (to) {
    case BreakerState::open:
      // Also on a failed probe: the wait starts again from now.
      opened_at_ = clock_.now();
      break;
    case BreakerState::closed:
      // Failures from before the outage must not count against the recovered upstream.
      reset_window_locked();
      break;
    case BreakerState::half_open:
      break;
  }
  fired.emplace_back(from, to);
  ++transitions_fired_;
}

void CircuitBreaker::notify(std::unique_lock<std::mutex>& state_lock, const Transitions& fired) {
  if (fired.empty() || !listener_) {
    state_lock.unlock();
    return;
  }
  // Each transition took a ticket under mutex_; the listener runs for ticket n only after
  // n - 1 has been delivered. Waiting holds no lock the listener may need.
  std::uint64_t ticket = transitions_fired_ - fired.size();
  state_lock.unlock();

  // A throwing listener must still pass each turn on, or every later transition would
  // wait forever; its exception reaches the caller once the turns are handed over.
  std::exception_ptr listener_error;
  for (const auto& [from, to] : fired) {
    std::unique_lock turn_lock(notify_mutex_);
    notify_turn_.wait(turn_lock, [&] { return transitions_delivered_ == ticket; });
    turn_lock.unlock();
    if (!listener_error) {
      try {
        listener_(from, to);
      } catch (...) {
        listener_error = std::current_exception();
      }
    }
    turn_lock.lock();
    ++transitions_delivered_;
    ++ticket;
    turn_lock.unlock();
    notify_turn_.notify_all();
  }
  if (listener_error) {
    std::rethrow_exception(listener_error);
  }
}

void CircuitBreaker::record_in_window_locked(bool failed) {
  if (window_count_ == window_.size()) {
    window_failures_ -= window_[window_next_];
  } else {
    ++window_count_;
  }
  window_[window_next_] = failed ? 1 : 0;
  window_failures_ += window_[window_next_];
  window_next_ = (window_next_ + 1) % window_.size();
}

void CircuitBreaker::reset_window_locked() {
  std::fill(window_.begin(), window_.end(), std::uint8_t{0});
  window_next_ = 0;
  window_count_ = 0;
  window_failures_ = 0;
}

}  // namespace notifs::messaging::resilience
