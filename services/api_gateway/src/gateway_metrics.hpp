#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string_view>

#include "directory.hpp"

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::api_gateway {

// Why a POST /api/v1/notifications was not accepted: the `reason` label of
// notifs_gateway_rejected_total, and the error code the client saw.
enum class Rejection : std::uint8_t {
  unauthorized,
  rate_limited,
  validation_failed,    // 400 of every kind, 413 and 415 are counted by the HTTP server
  idempotency_conflict,
  idempotency_in_progress,
  user_not_found,
  template_not_found,
  database_unavailable,
  user_service_unavailable,
  template_service_unavailable,
  broker_unavailable,
  internal_error,
};
inline constexpr std::size_t kRejectionCount = 12;
std::string_view to_string(Rejection rejection);

// The gateway's own figures (the HTTP server, publisher, consumer and pool count theirs):
//   notifs_gateway_notifications_total{outcome="accepted|replayed|skipped"}
//   notifs_gateway_rejected_total{reason=...}
//   notifs_gateway_publish_confirm_seconds  (publish call to the broker's answer, either way)
//   notifs_gateway_status_events_total{result="applied|stale|invalid|failed"}
//   notifs_gateway_cache_lookups_total{cache="users|templates",result="hit|stale|negative|miss"}
//   notifs_gateway_upstream_fetches_total, notifs_gateway_stale_served_total
// The cache figures live in the Directory; sync_directory() copies what changed since the
// last call into the counters (it runs before each scrape).
//
// Without a registry every call does nothing. Thread-safe.
class GatewayMetrics {
 public:
  explicit GatewayMetrics(prometheus::Registry* registry);

  void accepted();
  void replayed();
  void skipped();
  void rejected(Rejection rejection);
  void publish_answered(std::chrono::steady_clock::duration took);
  enum class StatusEventResult : std::uint8_t { applied, stale, invalid, failed };
  void status_event(StatusEventResult result);
  void sync_directory(const DirectoryStats& stats);

 private:
  prometheus::Counter* accepted_ = nullptr;
  prometheus::Counter* replayed_ = nullptr;
  prometheus::Counter* skipped_ = nullptr;
  std::array<prometheus::Counter*, kRejectionCount> rejected_{};
  prometheus::Histogram* publish_seconds_ = nullptr;
  std::array<prometheus::Counter*, 4> status_events_{};

  struct DirectoryCounters {
    prometheus::Counter* hit = nullptr;
    prometheus::Counter* stale = nullptr;
    prometheus::Counter* negative = nullptr;
    prometheus::Counter* miss = nullptr;
  };
  DirectoryCounters users_;
  DirectoryCounters templates_;
  prometheus::Counter* upstream_fetches_ = nullptr;
  prometheus::Counter* stale_served_ = nullptr;
  std::mutex sync_mutex_;
  DirectoryStats synced_;  // what the counters already hold
};

}  // namespace notifs::api_gateway
