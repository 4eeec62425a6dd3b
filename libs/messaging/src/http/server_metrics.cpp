#include "http/server_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::messaging::http::detail {

namespace {

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
                       .Add({{"service", service_}})) {}

void ServerMetrics::observe_request(std::string_view method, std::string_view route,
                                    unsigned status, double seconds) {
  requests_
      .Add({{"service", service_},
            {"method", std::string(method)},
            {"route", std::string(route)},
            {"status", std::to_string(status)}})
      .Increment();
  durations_
      .Add({{"service", service_}, {"method", std::string(method)}, {"route", std::string(route)}},
           duration_buckets())
      .Observe(seconds);
}

void ServerMetrics::connection_opened() { connections_.Increment(); }

void ServerMetrics::connection_closed() { connections_.Decrement(); }

}  // namespace notifs::messaging::http::detail
