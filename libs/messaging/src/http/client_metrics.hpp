#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "notifs/messaging/resilience/circuit_breaker.hpp"

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::messaging::http::detail {

// How a call ended, as the upstream_calls_total{outcome} label says it.
enum class CallOutcomeLabel : std::uint8_t {
  success,            // 1xx-3xx response
  client_error,       // 4xx response
  server_error,       // 5xx response
  circuit_open,
  deadline_exceeded,
  connect_failed,
  connection_lost,
  protocol_error,
  shutting_down,
};
inline constexpr std::size_t kCallOutcomeCount = 9;
std::string_view to_string(CallOutcomeLabel outcome);

// The per-upstream series of one ServiceClient. Several clients share one registry: every
// family is built with the same name, help and no constant labels, which prometheus-cpp's
// default Registry (InsertBehavior::Merge) answers with the family already there; the
// upstream is a variable label, and Family::Add returns the existing series for a known
// label set. A Registry built with InsertBehavior::Throw refuses the second client: the
// constructor rethrows that as std::invalid_argument naming the family.
//
// Every series is created up front (zeros included), so dashboards see an upstream before
// its first failure, and the hot path only touches atomics. A null registry makes every
// method a no-op. Thread-safe (prometheus metrics are atomic).
class ClientMetrics {
 public:
  ClientMetrics(prometheus::Registry* registry, const std::string& upstream);

  void on_call(CallOutcomeLabel outcome, std::chrono::nanoseconds duration, bool observe_duration);
  void on_attempt();
  void on_retry();
  void on_breaker_transition(resilience::BreakerState from, resilience::BreakerState to);

 private:
  bool enabled_ = false;
  std::array<prometheus::Counter*, kCallOutcomeCount> calls_{};
  prometheus::Counter* attempts_ = nullptr;
  prometheus::Counter* retries_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Gauge* breaker_state_ = nullptr;
  std::array<std::array<prometheus::Counter*, 3>, 3> transitions_{};  // [from][to]
};

}  // namespace notifs::messaging::http::detail
