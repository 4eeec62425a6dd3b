#include "http/server_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::messaging::http::detail {

namespace {

constexpr std::string_view kUnmatched = "unmatched";

// Seconds; from a cached read (~1 ms) to a request that hits a client timeout (~10 s).
const prometheus::Histogram::BucketBoundaries& duration_buckets() {
  static const prometheus::Histogram::BucketBoundaries buckets{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  return buckets;
}

}  // namespace

ServerMetrics::ServerMetrics(prometheus::Registry& registry, std::string service)
    : service_(std::move(service)),
      requests_(prometheus::BuildCounter()
                    .Name("http_requests_total")
                    .Help("HTTP requests answered, by method, route pattern and status")
                    .Register(registry)),
      durations_(prometheus::BuildHistogram()
                     .Name("http_request_duration_seconds")
                     .Help("Seconds from the first byte of a request until its response is ready")
                     .Register(registry)),
      connections_(prometheus::BuildGauge()
                       .Name("http_connections_active")
                       .Help("Open client connections")
                       .Register(registry)
                       .Add({{"service", service_}})),
      routes_(std::make_unique<RouteSeries[]>(1)) {}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::prepare(std::size_t route_count) {
  routes_ = std::make_unique<RouteSeries[]>(route_count + 1);
  route_count_ = route_count;
}

prometheus::Counter& ServerMetrics::requests_series(std::string_view route, Method method,
                                                    unsigned status) {
  return requests_.Add({{"service", service_},
                        {"method", std::string(to_string(method))},
                        {"route", std::string(route)},
                        {"status", std::to_string(status)}});
}

prometheus::Histogram& ServerMetrics::durations_series(std::string_view route, Method method) {
  return durations_.Add(
      {{"service", service_}, {"method", std::string(to_string(method))}, {"route", std::string(route)}},
      duration_buckets());
}

void ServerMetrics::observe_request(const Router::Route* route, Method method, unsigned status,
                                    double seconds) {
  const std::string_view label = route ? std::string_view(route->pattern) : kUnmatched;
  const std::size_t index = route ? route->index : route_count_;
  const auto method_index = static_cast<std::size_t>(method);
  if (index > route_count_ || method_index >= kMethods) {
    requests_series(label, method, status).Increment();
    durations_series(label, method).Observe(seconds);
    return;
  }
  RouteSeries& series = routes_[index];

  // Racing threads may both resolve a missing series: Family::Add returns the same object
  // to both, so whichever pointer lands in the table is the right one.
  auto* histogram = series.durations[method_index].load(std::memory_order_acquire);
  if (histogram == nullptr) {
    histogram = &durations_series(label, method);
    series.durations[method_index].store(histogram, std::memory_order_release);
  }
  histogram->Observe(seconds);

  // Slots are claimed front to back and never freed, so a free slot ends the search. A
  // slot whose key is claimed but whose counter is not yet stored is treated as a miss.
  const auto key = static_cast<std::uint32_t>(((method_index + 1) << 16) | (status & 0xFFFF));
  for (auto& slot : series.requests) {
    const auto seen = slot.key.load(std::memory_order_acquire);
    if (seen == 0) {
      break;
    }
    if (seen == key) {
      if (auto* counter = slot.counter.load(std::memory_order_acquire)) {
        counter->Increment();
        return;
      }
      break;
    }
  }
  auto& counter = requests_series(label, method, status);
  counter.Increment();
  for (auto& slot : series.requests) {
    std::uint32_t expected = 0;
    if (slot.key.compare_exchange_strong(expected, key, std::memory_order_acq_rel)) {
      slot.counter.store(&counter, std::memory_order_release);
      return;
    }
    if (expected == key) {
      return;  // another thread claimed it; it stores the same counter
    }
  }
  // Every slot is taken (an unusual spread of statuses): this one stays on the slow path.
}

void ServerMetrics::connection_opened() { connections_.Increment(); }

void ServerMetrics::connection_closed() { connections_.Decrement(); }

}  // namespace notifs::messaging::http::detail
