#pragma once

// Failover over several delivery providers (SMTP servers, push endpoints) listed in order of
// preference, each behind its own circuit breaker.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/server.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"
#include "send_result.hpp"

namespace notifs::worker {

// How the chain reads a provider's result and builds one when no provider can be called.
// Specialize it for a result type that carries more than a SendResult (see push_sender.hpp).
template <typename Result>
struct ChainResultTraits;

template <>
struct ChainResultTraits<SendResult> {
  static const SendResult& outcome(const SendResult& result) { return result; }
  static SendResult from_outcome(SendResult outcome) { return outcome; }
};

// One provider's breaker as /ready and logs show it.
struct ProviderStatus {
  std::string name;
  messaging::resilience::BreakerState state = messaging::resilience::BreakerState::closed;
  double failure_rate = 0.0;                 // over the breaker's current window
  std::chrono::milliseconds remaining_open{0};  // how long an open breaker still refuses
};

// The detail of the result the chain answers when every breaker refuses.
inline constexpr const char* kAllProvidersUnavailable = "all providers unavailable";

namespace detail {

// The part of the chain that does not depend on the job type: the breakers, the choice of
// provider and the bookkeeping. Thread-safe (the breakers are).
class FailoverCore {
 public:
  FailoverCore(std::vector<std::string> names, messaging::resilience::CircuitBreakerSettings breaker,
               const messaging::common::Clock& clock);
  ~FailoverCore();
  FailoverCore(const FailoverCore&) = delete;
  FailoverCore& operator=(const FailoverCore&) = delete;

  // The first provider, in order, whose breaker allows a call (the breaker has counted it:
  // exactly one record() must follow); nullopt when every breaker refuses. Providers
  // marked in `skip` (one flag per provider, or empty) are not asked.
  std::optional<std::size_t> acquire(const std::vector<bool>& skip = {});
  void record(std::size_t index, bool provider_fault, messaging::common::Clock::time_point started);

  // Logs that provider `from` did not take a job, which now goes on to the next one.
  void log_failover(std::size_t from, const std::string& reason) const;

  std::size_t size() const;
  const std::string& name(std::size_t index) const;
  std::vector<ProviderStatus> statuses() const;
  messaging::http::DependencyStatus readiness(std::size_t index) const;
  const messaging::common::Clock& clock() const { return clock_; }

 private:
  struct Provider;
  const messaging::common::Clock& clock_;
  std::vector<std::unique_ptr<Provider>> providers_;
};

}  // namespace detail

// Sends each job through the first provider whose circuit breaker allows a call.
//
// - A result with provider_fault (connection refused, timeout, 5xx, auth rejected) is a
//   failure for that provider's breaker; every other result, permanent ones included, is a
//   success: the provider answered, the message or recipient was the problem.
// - While a provider's breaker is open (or half-open with its probes out) the next one in
//   order takes the traffic. Once open_duration has passed, the next job probes the first
//   provider again (half-open); when its probes succeed the breaker closes and traffic is
//   back on it. The order is a preference, never round-robin.
// - Failover within one send() happens only when nothing was sent: a result with both
//   provider_fault and nothing_sent (connection refused, DNS or TLS failure, a refusal
//   before the message went out) is recorded against that provider and the same job goes
//   at once to the next provider whose breaker allows a call, each provider at most once
//   per send(); when none is left the caller gets the last result. Any other fault is
//   returned as it is: a timed-out send may have gone out, and re-sending it elsewhere
//   would be a double send. The worker's retry tiers send it again later, by which time
//   the chain has moved on if the provider keeps failing.
// - When every breaker refuses the first call, the callback gets a transient "all providers
//   unavailable" result (provider_fault and nothing_sent set) at once, on the caller's
//   thread, and nothing is sent.
//
// A provider's send function must call its callback exactly once, from any thread, and must
// not block. If it throws instead, the chain counts a provider fault and answers a transient
// result carrying the exception's text (not failed over: a job one provider cannot even
// start is most likely one no provider can). A failover calls the next provider's send
// function from the thread the previous callback ran on.
//
// The chain keeps a copy of the job while it may still fail over (with more than one
// provider), so Job must be copyable; send(Job&&) moves it in instead.
//
// Thread-safe: send() and the status reads may be called from any thread. The chain must
// outlive every callback still in flight (the worker drains sends before destroying it),
// and a late fault may fail over to any other provider: call stop_failover() before
// destroying the providers one by one.
template <typename Job, typename Result = SendResult>
class ProviderChain {
 public:
  using Traits = ChainResultTraits<Result>;
  using Callback = std::function<void(Result result)>;
  using SendFunction = std::function<void(const Job& job, Callback callback)>;

  struct Provider {
    std::string name;   // for logs and /ready, e.g. "smtp-1" or the host
    SendFunction send;
  };

  // Throws std::invalid_argument when there is no provider, a send function is empty or
  // the breaker settings are invalid.
  ProviderChain(std::vector<Provider> providers,
                messaging::resilience::CircuitBreakerSettings breaker,
                const messaging::common::Clock& clock = messaging::common::SystemClock::instance())
      : core_(names_of(providers), breaker, clock) {
    sends_.reserve(providers.size());
    for (auto& provider : providers) sends_.push_back(std::move(provider.send));
  }

  void send(const Job& job, Callback callback) {
    auto state = std::make_shared<SendState>(std::move(callback), core_.size());
    if (core_.size() > 1) state->job.emplace(job);
    attempt(state, job, std::nullopt);
  }

  void send(Job&& job, Callback callback) {
    if (core_.size() == 1) {
      send(static_cast<const Job&>(job), std::move(callback));
      return;
    }
    auto state = std::make_shared<SendState>(std::move(callback), core_.size());
    state->job.emplace(std::move(job));
    attempt(state, *state->job, std::nullopt);
  }

  // From now on every result reaches its caller as it is, without failover: for owners
  // that destroy their providers while callbacks may still come. Cannot be undone.
  void stop_failover() { failover_stopped_.store(true); }

  std::size_t size() const { return core_.size(); }
  const std::string& name(std::size_t index) const { return core_.name(index); }
  std::vector<ProviderStatus> statuses() const { return core_.statuses(); }
  // One provider for /ready: state is the breaker's ("closed", "open", "half_open"). ok is
  // false only while every provider's breaker is open: one open provider with a healthy
  // one behind it is a degraded chain that still delivers, not an unready worker.
  messaging::http::DependencyStatus readiness(std::size_t index) const { return core_.readiness(index); }

 private:
  // One send(): the job (kept for failover), the caller's callback and the providers tried.
  struct SendState {
    SendState(Callback done, std::size_t providers) : callback(std::move(done)), tried(providers, false) {}
    std::optional<Job> job;
    Callback callback;
    std::vector<bool> tried;  // touched by one attempt at a time: attempts follow each other
  };

  // One provider call of a send().
  struct Attempt {
    Attempt(ProviderChain* owner, std::shared_ptr<SendState> send_state, std::size_t provider,
            messaging::common::Clock::time_point start)
        : chain(owner), state(std::move(send_state)), index(provider), started(start) {}

    ProviderChain* chain;
    std::shared_ptr<SendState> state;
    std::size_t index;
    messaging::common::Clock::time_point started;
    std::atomic<bool> finished{false};

    // The breaker was granted one call: exactly one record(), whatever the send function does.
    void finish(Result result, bool may_fail_over) {
      if (finished.exchange(true)) return;
      const SendResult& outcome = Traits::outcome(result);
      chain->core_.record(index, outcome.provider_fault, started);
      if (may_fail_over && outcome.provider_fault && outcome.nothing_sent && state->job &&
          !chain->failover_stopped_.load()) {
        chain->core_.log_failover(index, outcome.detail);
        chain->attempt(state, *state->job, std::move(result));
        return;
      }
      state->callback(std::move(result));
    }
  };

  // Sends the job to the first allowed provider not yet tried; with none, answers `last`
  // (the previous provider's result) or "all providers unavailable".
  void attempt(const std::shared_ptr<SendState>& state, const Job& job, std::optional<Result> last) {
    const auto index = core_.acquire(state->tried);
    if (!index) {
      state->callback(last ? std::move(*last)
                           : Traits::from_outcome(SendResult::never_sent(kAllProvidersUnavailable)));
      return;
    }
    state->tried[*index] = true;
    auto current = std::make_shared<Attempt>(this, state, *index, core_.clock().now());
    try {
      sends_[*index](job, [current](Result result) { current->finish(std::move(result), true); });
    } catch (const std::exception& error) {
      current->finish(Traits::from_outcome(SendResult::transient_failure(
                          "provider " + core_.name(*index) + " failed to start the send: " + error.what(),
                          true)),
                      false);
    }
  }

  static std::vector<std::string> names_of(const std::vector<Provider>& providers) {
    std::vector<std::string> names;
    names.reserve(providers.size());
    for (const auto& provider : providers) {
      if (!provider.send) throw std::invalid_argument("provider " + provider.name + " has no send function");
      names.push_back(provider.name);
    }
    return names;
  }

  detail::FailoverCore core_;
  std::vector<SendFunction> sends_;
  std::atomic<bool> failover_stopped_{false};
};

}  // namespace notifs::worker
