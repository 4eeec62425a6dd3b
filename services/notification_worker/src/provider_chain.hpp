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
  // exactly one record() must follow); nullopt when every breaker refuses.
  std::optional<std::size_t> acquire();
  void record(std::size_t index, bool provider_fault, messaging::common::Clock::time_point started);

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
// - One job goes to one provider per send(). A provider's failure is returned as it is, not
//   re-sent to the next provider at once: a timed-out send may have gone out, and re-sending
//   it elsewhere would be a double send. The worker's retry tiers send it again later, by
//   which time the chain has moved on if the provider keeps failing.
// - When every breaker refuses, the callback gets a transient "all providers unavailable"
//   result (provider_fault set) at once, on the caller's thread, and nothing is sent.
//
// A provider's send function must call its callback exactly once, from any thread, and must
// not block. If it throws instead, the chain counts a provider fault and answers a transient
// result carrying the exception's text.
//
// Thread-safe: send() and the status reads may be called from any thread. The chain must
// outlive every callback still in flight (the worker drains sends before destroying it).
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
    const auto index = core_.acquire();
    if (!index) {
      callback(Traits::from_outcome(SendResult::transient_failure(kAllProvidersUnavailable, true)));
      return;
    }
    const auto started = core_.clock().now();
    // Shared so that a send function that both calls back and throws is recorded once.
    auto state = std::make_shared<Pending>(this, *index, started, std::move(callback));
    try {
      sends_[*index](job, [state](Result result) { state->finish(std::move(result)); });
    } catch (const std::exception& error) {
      state->finish(Traits::from_outcome(SendResult::transient_failure(
          "provider " + core_.name(*index) + " failed to start the send: " + error.what(), true)));
    }
  }

  std::size_t size() const { return core_.size(); }
  const std::string& name(std::size_t index) const { return core_.name(index); }
  std::vector<ProviderStatus> statuses() const { return core_.statuses(); }
  // One provider for /ready: state is the breaker's ("closed", "open", "half_open"). ok is
  // false only while every provider's breaker is open: one open provider with a healthy
  // one behind it is a degraded chain that still delivers, not an unready worker.
  messaging::http::DependencyStatus readiness(std::size_t index) const { return core_.readiness(index); }

 private:
  struct Pending {
    Pending(ProviderChain* owner, std::size_t provider, messaging::common::Clock::time_point start,
            Callback done)
        : chain(owner), index(provider), started(start), callback(std::move(done)) {}

    ProviderChain* chain;
    std::size_t index;
    messaging::common::Clock::time_point started;
    Callback callback;
    std::atomic<bool> finished{false};

    // The breaker was granted one call: exactly one record(), whatever the send function does.
    void finish(Result result) {
      if (finished.exchange(true)) return;
      chain->core_.record(index, Traits::outcome(result).provider_fault, started);
      callback(std::move(result));
    }
  };

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
};

}  // namespace notifs::worker
