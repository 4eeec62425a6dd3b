#include "pool_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::storage::detail {

namespace {

// From a free idle connection (microseconds) to the default 2 s acquire timeout and a
// slow connect beyond it.
const prometheus::Histogram::BucketBoundaries& wait_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0};
  return kBuckets;
}

prometheus::Gauge* gauge(prometheus::Registry& registry, const char* name, const char* help,
                         const std::string& pool) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add({{"pool", pool}});
}

}  // namespace

PoolMetrics::PoolMetrics(prometheus::Registry* registry, const std::string& pool) {
  if (registry == nullptr) return;
  open_ = gauge(*registry, "notifs_db_connections_open",
                "PostgreSQL connections that exist (lent, idle or being opened)", pool);
  idle_ = gauge(*registry, "notifs_db_connections_idle",
                "PostgreSQL connections in the pool lent to nobody", pool);
  waiting_ = gauge(*registry, "notifs_db_waiting_borrowers",
                   "Borrowers waiting for a free PostgreSQL connection", pool);
  acquire_wait_ = &prometheus::BuildHistogram()
                       .Name("notifs_db_acquire_wait_seconds")
                       .Help("Time a borrower waited for a connection (including opening it)")
                       .Register(*registry)
                       .Add({{"pool", pool}}, wait_buckets());
  acquire_timeouts_ = &prometheus::BuildCounter()
                           .Name("notifs_db_acquire_timeouts_total")
                           .Help("Borrowers that found no free connection within the timeout")
                           .Register(*registry)
                           .Add({{"pool", pool}});
  auto& failures = prometheus::BuildCounter()
                       .Name("notifs_db_connection_failures_total")
                       .Help(
                           "Connections that could not be opened (kind=connect) or broke "
                           "while in use (kind=lost)")
                       .Register(*registry);
  connect_failures_ = &failures.Add({{"pool", pool}, {"kind", "connect"}});
  connections_lost_ = &failures.Add({{"pool", pool}, {"kind", "lost"}});
}

void PoolMetrics::set_state(std::size_t open, std::size_t idle, std::size_t waiting) {
  if (open_ == nullptr) return;
  open_->Set(static_cast<double>(open));
  idle_->Set(static_cast<double>(idle));
  waiting_->Set(static_cast<double>(waiting));
}

void PoolMetrics::acquired(std::chrono::steady_clock::duration waited) {
  if (acquire_wait_ == nullptr) return;
  acquire_wait_->Observe(std::chrono::duration<double>(waited).count());
}

void PoolMetrics::acquire_timed_out() {
  if (acquire_timeouts_ != nullptr) acquire_timeouts_->Increment();
}

void PoolMetrics::connect_failed() {
  if (connect_failures_ != nullptr) connect_failures_->Increment();
}

void PoolMetrics::connection_lost() {
  if (connections_lost_ != nullptr) connections_lost_->Increment();
}

}  // namespace notifs::storage::detail
