#include "amqp/consumer_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::messaging::amqp::detail {

namespace {

// Handler time from 1 ms (an immediate ack) to 30 s (a slow provider behind the handler).
const prometheus::Histogram::BucketBoundaries& handler_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0};
  return kBuckets;
}

prometheus::Counter* counter(prometheus::Registry& registry, const char* name, const char* help,
                             const prometheus::Labels& labels) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

}  // namespace

ConsumerMetrics::ConsumerMetrics(prometheus::Registry* registry, const std::string& queue) {
  if (registry == nullptr) return;
  const prometheus::Labels labels{{"queue", queue}};
  consumed_ = counter(*registry, "amqp_consumed_total", "Deliveries received by consumers",
                      labels);
  acked_ = counter(*registry, "amqp_acked_total", "Deliveries acknowledged by consumers",
                   labels);
  retried_ = counter(*registry, "amqp_retried_total",
                     "Deliveries republished (confirmed) to a retry tier", labels);
  dead_lettered_ = counter(*registry, "amqp_dead_lettered_total",
                           "Deliveries republished (confirmed) to the dead-letter exchange",
                           labels);
  rejected_ = counter(*registry, "amqp_rejected_total",
                      "Deliveries rejected with requeue (republish failed, or no retry tiers)",
                      labels);
  reconnects_ = counter(*registry, "amqp_reconnects_total",
                        "Connections rebuilt after a failure", {{"role", "consumer"}});
  handler_seconds_ = &prometheus::BuildHistogram()
                          .Name("amqp_handler_seconds")
                          .Help("Time from handing a delivery to its handler to its outcome")
                          .Register(*registry)
                          .Add(labels, handler_buckets());
}

void ConsumerMetrics::consumed() {
  if (consumed_ != nullptr) consumed_->Increment();
}

void ConsumerMetrics::acked(std::size_t count) {
  if (acked_ != nullptr) acked_->Increment(static_cast<double>(count));
}

void ConsumerMetrics::retried() {
  if (retried_ != nullptr) retried_->Increment();
}

void ConsumerMetrics::dead_lettered() {
  if (dead_lettered_ != nullptr) dead_lettered_->Increment();
}

void ConsumerMetrics::rejected() {
  if (rejected_ != nullptr) rejected_->Increment();
}

void ConsumerMetrics::reconnected() {
  if (reconnects_ != nullptr) reconnects_->Increment();
}

void ConsumerMetrics::handler_time(std::chrono::steady_clock::duration elapsed) {
  if (handler_seconds_ != nullptr) {
    handler_seconds_->Observe(std::chrono::duration<double>(elapsed).count());
  }
}

}  // namespace notifs::messaging::amqp::detail
