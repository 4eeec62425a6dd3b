#include "provider_chain.hpp"

#include <stdexcept>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker::detail {

namespace resilience = messaging::resilience;

struct FailoverCore::Provider {
  Provider(std::string provider_name, resilience::CircuitBreakerSettings settings,
           const messaging::common::Clock& clock)
      : name(std::move(provider_name)),
        breaker(settings, clock, [this](resilience::BreakerState from, resilience::BreakerState to) {
          // Failover is something an operator wants to see in the log, once per transition.
          messaging::common::logger("worker")->warn("provider breaker provider={} from={} to={}",
                                                    name, resilience::to_string(from),
                                                    resilience::to_string(to));
        }) {}

  std::string name;
  resilience::CircuitBreaker breaker;
};

FailoverCore::FailoverCore(std::vector<std::string> names,
                           resilience::CircuitBreakerSettings breaker,
                           const messaging::common::Clock& clock)
    : clock_(clock) {
  if (names.empty()) throw std::invalid_argument("a provider chain needs at least one provider");
  providers_.reserve(names.size());
  for (auto& name : names) {
    providers_.push_back(std::make_unique<Provider>(std::move(name), breaker, clock));
  }
}

FailoverCore::~FailoverCore() = default;

std::optional<std::size_t> FailoverCore::acquire(const std::vector<bool>& skip) {
  // try_acquire() is what moves an open breaker whose wait has passed to half-open, so
  // asking the preferred providers first on every call is what brings traffic back. A
  // skipped provider is not asked at all: a permit it granted would never be recorded.
  for (std::size_t index = 0; index < providers_.size(); ++index) {
    if (index < skip.size() && skip[index]) continue;
    if (providers_[index]->breaker.try_acquire()) return index;
  }
  return std::nullopt;
}

void FailoverCore::log_failover(std::size_t from, const std::string& reason) const {
  // Debug: while a provider refuses, every message would log this until its breaker opens.
  messaging::common::logger("worker")->debug("provider not reached, trying the next provider={} err={}",
                                             providers_.at(from)->name, reason);
}

void FailoverCore::record(std::size_t index, bool provider_fault,
                          messaging::common::Clock::time_point started) {
  providers_.at(index)->breaker.record(
      provider_fault ? resilience::CallOutcome::failure : resilience::CallOutcome::success,
      clock_.now() - started);
}

std::size_t FailoverCore::size() const { return providers_.size(); }

const std::string& FailoverCore::name(std::size_t index) const { return providers_.at(index)->name; }

std::vector<ProviderStatus> FailoverCore::statuses() const {
  std::vector<ProviderStatus> out;
  out.reserve(providers_.size());
  for (const auto& provider : providers_) {
    out.push_back(ProviderStatus{provider->name, provider->breaker.state(),
                                 provider->breaker.failure_rate(),
                                 provider->breaker.remaining_open()});
  }
  return out;
}

messaging::http::DependencyStatus FailoverCore::readiness(std::size_t index) const {
  const auto& provider = *providers_.at(index);
  const auto state = provider.breaker.state();
  // An open breaker whose wait is over lets the next call probe, so it does not count as
  // unavailable even though it still reads open until that call comes.
  auto refusing = [](const Provider& p) {
    return p.breaker.state() == resilience::BreakerState::open &&
           p.breaker.remaining_open().count() > 0;
  };
  bool any_available = false;
  for (const auto& other : providers_) any_available = any_available || !refusing(*other);

  messaging::http::DependencyStatus status;
  status.ok = any_available;
  status.state = std::string(resilience::to_string(state));
  if (refusing(provider)) {
    status.detail = "breaker open for another " +
                    std::to_string(provider.breaker.remaining_open().count()) + " ms";
    status.detail += any_available ? "; traffic goes to the next provider" : "; no provider available";
  }
  return status;
}

}  // namespace notifs::worker::detail
