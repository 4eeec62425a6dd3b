#include "http/client_metrics.hpp"

#include <stdexcept>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::messaging::http::detail {
namespace {

using resilience::BreakerState;

constexpr std::array<BreakerState, 3> kStates{BreakerState::closed, BreakerState::open,
                                              BreakerState::half_open};

// Latency buckets from 5 ms to the default 5 s deadline and a little past it.
const prometheus::Histogram::BucketBoundaries& duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  return kBuckets;
}

template <typename Builder>
auto& build_family(Builder builder, const char* name, const char* help,
                   prometheus::Registry& registry) {
  try {
    return builder.Name(name).Help(help).Register(registry);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("metrics family ") + name +
                                " cannot be registered (a Registry shared by several "
                                "ServiceClients must use InsertBehavior::Merge): " + e.what());
  }
}

}  // namespace

std::string_view to_string(CallOutcomeLabel outcome) {
  switch (outcome) {
    case CallOutcomeLabel::success: return "success";
    case CallOutcomeLabel::client_error: return "client_error";
    case CallOutcomeLabel::server_error: return "server_error";
    case CallOutcomeLabel::circuit_open: return "circuit_open";
    case CallOutcomeLabel::deadline_exceeded: return "deadline_exceeded";
    case CallOutcomeLabel::connect_failed: return "connect_failed";
    case CallOutcomeLabel::connection_lost: return "connection_lost";
    case CallOutcomeLabel::protocol_error: return "protocol_error";
    case CallOutcomeLabel::shutting_down: return "shutting_down";
  }
  return "unknown";
}

ClientMetrics::ClientMetrics(prometheus::Registry* registry, const std::string& upstream) {
  if (registry == nullptr) return;
  enabled_ = true;
  auto& calls = build_family(prometheus::BuildCounter(), "upstream_calls_total",
                             "Calls to an upstream service by how they ended", *registry);
  for (std::size_t i = 0; i < kCallOutcomeCount; ++i) {
    calls_[i] = &calls.Add(
        {{"upstream", upstream},
         {"outcome", std::string(to_string(static_cast<CallOutcomeLabel>(i)))}});
  }
  attempts_ = &build_family(prometheus::BuildCounter(), "upstream_attempts_total",
                            "Requests sent to an upstream service, retries included", *registry)
                   .Add({{"upstream", upstream}});
  retries_ = &build_family(prometheus::BuildCounter(), "upstream_retries_total",
                           "Requests sent again after a failed attempt", *registry)
                  .Add({{"upstream", upstream}});
  duration_ = &build_family(prometheus::BuildHistogram(), "upstream_call_duration_seconds",
                            "Duration of calls that reached an upstream, retries and waits "
                            "included",
                            *registry)
                   .Add({{"upstream", upstream}}, duration_buckets());
  breaker_state_ = &build_family(prometheus::BuildGauge(), "upstream_breaker_state",
                                 "Circuit breaker state: 0 closed, 1 open, 2 half-open", *registry)
                        .Add({{"upstream", upstream}});
  auto& transitions = build_family(prometheus::BuildCounter(), "upstream_breaker_transitions_total",
                                   "Circuit breaker state changes", *registry);
  for (auto from : kStates) {
    for (auto to : kStates) {
      if (from == to) continue;
      transitions_[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)] =
          &transitions.Add({{"upstream", upstream},
                            {"from", std::string(resilience::to_string(from))},
                            {"to", std::string(resilience::to_string(to))}});
    }
  }
}

void ClientMetrics::on_call(CallOutcomeLabel outcome, std::chrono::nanoseconds duration,
                            bool observe_duration) {
  if (!enabled_) return;
  calls_[static_cast<std::size_t>(outcome)]->Increment();
  if (observe_duration) {
    duration_->Observe(std::chrono::duration<double>(duration).count());
  }
}

void ClientMetrics::on_attempt() {
  if (enabled_) attempts_->Increment();
}

void ClientMetrics::on_retry() {
  if (enabled_) retries_->Increment();
}

void ClientMetrics::on_breaker_transition(BreakerState from, BreakerState to) {
  if (!enabled_) return;
  breaker_state_->Set(static_cast<double>(static_cast<std::uint8_t>(to)));
  if (auto* counter = transitions_[static_cast<std::size_t>(from)][static_cast<std::size_t>(to)]) {
    counter->Increment();
  }
}

}  // namespace notifs::messaging::http::detail
