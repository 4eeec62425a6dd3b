#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace prometheus {
class Counter;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::storage::detail {

// The pool's Prometheus series, all labelled pool=<name>. Without a registry every call
// does nothing. Thread-safe (prometheus-cpp metrics are).
class PoolMetrics {
 public:
  PoolMetrics(prometheus::Registry* registry, const std::string& pool);

  void set_state(std::size_t open, std::size_t idle, std::size_t waiting);
  void acquired(std::chrono::steady_clock::duration waited);
  void acquire_timed_out();
  void connect_failed();
  void connection_lost();

 private:
  prometheus::Gauge* open_ = nullptr;
  prometheus::Gauge* idle_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Histogram* acquire_wait_ = nullptr;
  prometheus::Counter* acquire_timeouts_ = nullptr;
  prometheus::Counter* connect_failures_ = nullptr;
  prometheus::Counter* connections_lost_ = nullptr;
};

}  // namespace notifs::storage::detail
