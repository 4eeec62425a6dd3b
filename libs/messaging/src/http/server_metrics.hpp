#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "notifs/messaging/http/router.hpp"

namespace prometheus {
class Registry;
class Counter;
class Histogram;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace notifs::messaging::http::detail {

// The server's metrics on a shared registry. Families are merged by name, so two servers
// on one registry (tests, a process with an admin port) share the series. Thread-safe.
//
// Looking a series up in a prometheus Family builds a label map and, in prometheus-cpp
// 1.0, a whole throwaway metric (a Histogram with its buckets) on every call: that was the
// largest single cost of a request. So the series of each route are looked up once and
// their addresses kept in lock-free per-route tables (a series is never removed from its
// family, so the addresses stay valid as long as the registry).
class ServerMetrics {
 public:
  ServerMetrics(prometheus::Registry& registry, std::string service);
  ~ServerMetrics();
  ServerMetrics(const ServerMetrics&) = delete;
  ServerMetrics& operator=(const ServerMetrics&) = delete;

  // Sizes the per-route tables; call once the routes are final, before serving. Routes
  // beyond the prepared count are still counted, through the slow path.
  void prepare(std::size_t route_count);

  // `route` is the matched route, or null for "unmatched": the label is the route's
  // pattern, never the raw path, so the number of series stays bounded whatever clients
  // send.
  void observe_request(const Router::Route* route, Method method, unsigned status,
                       double seconds);
  void connection_opened();
  void connection_closed();

 private:
  static constexpr std::size_t kMethods = 8;       // values of http::Method
  static constexpr std::size_t kStatusSlots = 16;  // distinct (method, status) per route

  struct StatusSlot {
    std::atomic<std::uint32_t> key{0};  // 0: free; else (method + 1) << 16 | status
    std::atomic<prometheus::Counter*> counter{nullptr};
  };
  struct RouteSeries {
    std::array<std::atomic<prometheus::Histogram*>, kMethods> durations{};
    std::array<StatusSlot, kStatusSlots> requests{};
  };

  prometheus::Counter& requests_series(std::string_view route, Method method, unsigned status);
  prometheus::Histogram& durations_series(std::string_view route, Method method);

  std::string service_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Gauge& connections_;
  // Index = Route::index; the last entry is "unmatched".
  std::unique_ptr<RouteSeries[]> routes_;
  std::size_t route_count_ = 0;
};

}  // namespace notifs::messaging::http::detail
