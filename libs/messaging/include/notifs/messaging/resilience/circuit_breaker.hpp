#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>
#include <utility>
#include <vector>

#include "notifs/messaging/common/clock.hpp"

namespace notifs::messaging::resilience {

enum class BreakerState : std::uint8_t { closed = 0, open = 1, half_open = 2 };
std::string_view to_string(BreakerState state);

struct CircuitBreakerSettings {
  std::uint32_t window_size = 20;                   // the last N calls the failure rate is taken over
  std::uint32_t minimum_calls = 10;                 // no opening before this many calls are in the window
  double failure_rate_threshold = 0.5;              // open when failures / calls >= this (0..1]
  std::chrono::milliseconds slow_call_threshold{2000};  // a success slower than this counts as a failure
  std::chrono::milliseconds open_duration{5000};    // open -> half-open after this wait
  std::uint32_t half_open_probes = 3;               // calls let through while half-open; all must succeed
};

// Outcome of one call as the breaker sees it.
enum class CallOutcome : std::uint8_t { success, failure };

// A count-based sliding-window circuit breaker (the resilience4j model):
//   closed    -> open      when at least `minimum_calls` are in the window and the failure
//                          rate (slow successes count as failures) reaches the threshold;
//   open      -> half_open after `open_duration`, decided lazily on the next try_acquire();
//   half_open -> closed    after `half_open_probes` successful probes, -> open on any failure.
// While open, try_acquire() refuses at once, so callers fail fast and can serve cached data.
// Half-open lets at most `half_open_probes` calls through; the rest are refused until the
// probes have answered. The window starts empty each time the breaker closes.
//
// Late results: a call acquired in an earlier state may record() after the state changed.
// While open, a record() changes nothing. While half-open with no probe outstanding it is
// ignored; with probes outstanding the breaker cannot tell a late call from a probe (the
// bool API carries no ticket) and takes it as a probe's answer. That answer is fresh
// evidence about the upstream either way, and the counts stay consistent: the probe it
// stood in for is then ignored when it records in turn.
//
// Thread-safe; every method takes one short mutex. Time comes from the injected Clock, so
// the whole state machine is tested without sleeping. The constructor throws
// std::invalid_argument for settings that could never work (window_size 0, a threshold
// outside (0, 1], minimum_calls outside [1, window_size], zero probes, non-positive durations).
class CircuitBreaker {
 public:
  // Called with (from, to) on every transition, without the state lock held (it may read
  // state()), and in the order the transitions happened even across threads. It must not
  // call try_acquire() or record() on the same breaker.
  using TransitionListener = std::function<void(BreakerState from, BreakerState to)>;

  CircuitBreaker(CircuitBreakerSettings settings, const common::Clock& clock,
                 TransitionListener listener = {});

  // Asks to make one call. False means: fail fast, do not call the upstream. Every true
  // answer must be followed by exactly one record().
  bool try_acquire();
  // Reports the call that try_acquire() allowed. `elapsed` decides slowness.
  void record(CallOutcome outcome, std::chrono::nanoseconds elapsed);

  // Current state (an open breaker whose wait has passed still reads open until the next
  // try_acquire() moves it to half-open).
  BreakerState state() const;
  // Failure rate over the current window, 0 when empty.
  double failure_rate() const;
  // How long an open breaker still refuses calls; zero when not open.
  std::chrono::milliseconds remaining_open() const;

 private:
  using Transitions = std::vector<std::pair<BreakerState, BreakerState>>;

  void transition_locked(BreakerState to, Transitions& fired);
  // Releases the state lock, then delivers `fired` to the listener in transition order.
  void notify(std::unique_lock<std::mutex>& state_lock, const Transitions& fired);
  void record_in_window_locked(bool failed);
  void reset_window_locked();

  CircuitBreakerSettings settings_;
  const common::Clock& clock_;
  TransitionListener listener_;

  mutable std::mutex mutex_;
  BreakerState state_ = BreakerState::closed;
  std::uint64_t transitions_fired_ = 0;  // under mutex_: the order transitions happened in
  std::vector<std::uint8_t> window_;  // ring buffer: 1 = failure (or slow), 0 = success
  std::size_t window_next_ = 0;
  std::size_t window_count_ = 0;
  std::size_t window_failures_ = 0;
  common::Clock::time_point opened_at_{};
  std::uint32_t probes_in_flight_ = 0;
  std::uint32_t probe_successes_ = 0;

  // Listener delivery: each thread waits for its transitions' turn without holding any
  // lock the listener could need, so listeners see transitions in order and may read state().
  std::mutex notify_mutex_;
  std::condition_variable notify_turn_;
  std::uint64_t transitions_delivered_ = 0;  // under notify_mutex_
};

}  // namespace notifs::messaging::resilience
