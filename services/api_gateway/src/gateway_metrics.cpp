#include "gateway_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::api_gateway {

namespace {

constexpr std::array<Rejection, kRejectionCount> kRejections{
    Rejection::unauthorized,           Rejection::rate_limited,
    Rejection::validation_failed,      Rejection::idempotency_conflict,
    Rejection::idempotency_in_progress, Rejection::user_not_found,
    Rejection::template_not_found,     Rejection::database_unavailable,
    Rejection::user_service_unavailable, Rejection::template_service_unavailable,
    Rejection::broker_unavailable,     Rejection::internal_error};

constexpr std::array<std::string_view, 4> kStatusEventResults{"applied", "stale", "invalid",
                                                              "failed"};

void increment(prometheus::Counter* counter, double by = 1) {
  if (counter != nullptr && by > 0) {
    counter->Increment(by);
  }
}

// The counters hold the Directory's monotonic figures; `before` is what they last copied.
double delta(std::uint64_t now, std::uint64_t before) {
  return now > before ? static_cast<double>(now - before) : 0.0;
}

}  // namespace

std::string_view to_string(Rejection rejection) {
  switch (rejection) {
    case Rejection::unauthorized: return "unauthorized";
    case Rejection::rate_limited: return "rate_limited";
    case Rejection::validation_failed: return "validation_failed";
    case Rejection::idempotency_conflict: return "idempotency_conflict";
    case Rejection::idempotency_in_progress: return "idempotency_in_progress";
    case Rejection::user_not_found: return "user_not_found";
    case Rejection::template_not_found: return "template_not_found";
    case Rejection::database_unavailable: return "database_unavailable";
    case Rejection::user_service_unavailable: return "user_service_unavailable";
    case Rejection::template_service_unavailable: return "template_service_unavailable";
    case Rejection::broker_unavailable: return "broker_unavailable";
    case Rejection::internal_error: return "internal_error";
  }
  return "unknown";
}

GatewayMetrics::GatewayMetrics(prometheus::Registry* registry) {
  if (registry == nullptr) {
    return;
  }
  auto& notifications = prometheus::BuildCounter()
                            .Name("notifs_gateway_notifications_total")
                            .Help("Notification requests answered with success, by outcome")
                            .Register(*registry);
  accepted_ = &notifications.Add({{"outcome", "accepted"}});
  replayed_ = &notifications.Add({{"outcome", "replayed"}});
  skipped_ = &notifications.Add({{"outcome", "skipped"}});
  auto& rejected = prometheus::BuildCounter()
                       .Name("notifs_gateway_rejected_total")
                       .Help("Notification requests refused, by reason (the error code)")
                       .Register(*registry);
  for (const auto rejection : kRejections) {
    rejected_[static_cast<std::size_t>(rejection)] =
        &rejected.Add({{"reason", std::string(to_string(rejection))}});
  }
  // From an idle local broker's half millisecond to the longest publish deadline.
  publish_seconds_ =
      &prometheus::BuildHistogram()
           .Name("notifs_gateway_publish_confirm_seconds")
           .Help("Time from handing a notification to the publisher to the broker's answer")
           .Register(*registry)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                            0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                                                            2.5, 5.0, 10.0});
  auto& events = prometheus::BuildCounter()
                     .Name("notifs_gateway_status_events_total")
                     .Help("Worker status events consumed from status.queue, by result")
                     .Register(*registry);
  for (std::size_t i = 0; i < kStatusEventResults.size(); ++i) {
    status_events_[i] = &events.Add({{"result", std::string(kStatusEventResults[i])}});
  }
  auto& lookups = prometheus::BuildCounter()
                      .Name("notifs_gateway_cache_lookups_total")
                      .Help("User and template lookups by cache result")
                      .Register(*registry);
  for (auto [side, name] : {std::pair{&users_, "users"}, std::pair{&templates_, "templates"}}) {
    side->hit = &lookups.Add({{"cache", name}, {"result", "hit"}});
    side->stale = &lookups.Add({{"cache", name}, {"result", "stale"}});
    side->negative = &lookups.Add({{"cache", name}, {"result", "negative"}});
    side->miss = &lookups.Add({{"cache", name}, {"result", "miss"}});
  }
  upstream_fetches_ = &prometheus::BuildCounter()
                           .Name("notifs_gateway_upstream_fetches_total")
                           .Help("Calls to user_service and template_service (one per coalesced burst)")
                           .Register(*registry)
                           .Add({});
  stale_served_ = &prometheus::BuildCounter()
                       .Name("notifs_gateway_stale_served_total")
                       .Help("Cached entries served past their TTL because the upstream failed")
                       .Register(*registry)
                       .Add({});
}

void GatewayMetrics::accepted() { increment(accepted_); }
void GatewayMetrics::replayed() { increment(replayed_); }
void GatewayMetrics::skipped() { increment(skipped_); }

void GatewayMetrics::rejected(Rejection rejection) {
  increment(rejected_[static_cast<std::size_t>(rejection)]);
}

void GatewayMetrics::publish_answered(std::chrono::steady_clock::duration took) {
  if (publish_seconds_ != nullptr) {
    publish_seconds_->Observe(std::chrono::duration<double>(took).count());
  }
}

void GatewayMetrics::status_event(StatusEventResult result) {
  increment(status_events_[static_cast<std::size_t>(result)]);
}

void GatewayMetrics::sync_directory(const DirectoryStats& stats) {
  if (upstream_fetches_ == nullptr) {
    return;
  }
  std::lock_guard lock(sync_mutex_);
  const auto copy = [](const DirectoryCounters& counters, const LookupCacheStats& now,
                       const LookupCacheStats& before) {
    increment(counters.hit, delta(now.fresh_hits, before.fresh_hits));
    increment(counters.stale, delta(now.stale_hits, before.stale_hits));
    increment(counters.negative, delta(now.absent_hits, before.absent_hits));
    increment(counters.miss, delta(now.misses, before.misses));
  };
  copy(users_, stats.users, synced_.users);
  copy(templates_, stats.templates, synced_.templates);
  increment(upstream_fetches_, delta(stats.upstream_fetches, synced_.upstream_fetches));
  increment(stale_served_, delta(stats.stale_served, synced_.stale_served));
  synced_ = stats;
}

}  // namespace notifs::api_gateway
