#include "amqp/publisher_metrics.hpp"

#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::messaging::amqp::detail {

namespace {

constexpr std::array<AmqpErrc, 7> kFailureReasons{
    AmqpErrc::nacked,        AmqpErrc::unroutable,    AmqpErrc::confirm_timeout,
    AmqpErrc::connection_lost, AmqpErrc::backpressure, AmqpErrc::shutting_down,
    AmqpErrc::not_connected};

const char* reason_label(AmqpErrc reason) {
  switch (reason) {
    case AmqpErrc::nacked: return "nacked";
    case AmqpErrc::unroutable: return "unroutable";
    case AmqpErrc::confirm_timeout: return "confirm_timeout";
    case AmqpErrc::connection_lost: return "connection_lost";
    case AmqpErrc::backpressure: return "backpressure";
    case AmqpErrc::shutting_down: return "shutting_down";
    case AmqpErrc::not_connected: return "not_connected";
  }
  return "unknown";
}

// Confirm latency from 0.5 ms (an idle local broker) to the default 10 s confirm timeout.
const prometheus::Histogram::BucketBoundaries& confirm_buckets() {
  static const prometheus::Histogram::BucketBoundaries kBuckets{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0};
  return kBuckets;
}

prometheus::Counter* counter(prometheus::Registry& registry, const char* name, const char* help,
                             const prometheus::Labels& labels = {}) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add(labels);
}

}  // namespace

PublisherMetrics::PublisherMetrics(prometheus::Registry* registry) {
  if (registry == nullptr) return;
  published_ = counter(*registry, "amqp_published_total",
                       "Messages written to the broker by publishers (awaiting a confirm)");
  confirmed_ = counter(*registry, "amqp_confirmed_total",
                       "Published messages the broker acknowledged (publish succeeded)");
  nacked_ = counter(*registry, "amqp_nacked_total", "Published messages the broker refused");
  returned_ = counter(*registry, "amqp_returned_total",
                      "Mandatory messages the broker returned as unroutable");
  auto& failed = prometheus::BuildCounter()
                     .Name("amqp_publish_failed_total")
                     .Help("Publishes reported to the caller as failed, by reason")
                     .Register(*registry);
  for (const AmqpErrc reason : kFailureReasons) {
    failed_[static_cast<std::size_t>(reason)] = &failed.Add({{"reason", reason_label(reason)}});
  }
  invalid_ = &failed.Add({{"reason", "invalid_message"}});
  confirm_seconds_ = &prometheus::BuildHistogram()
                          .Name("amqp_publish_confirm_seconds")
                          .Help("Time from writing a message to the broker's confirm")
                          .Register(*registry)
                          .Add({}, confirm_buckets());
  reconnects_ = counter(*registry, "amqp_reconnects_total", "Connections rebuilt after a failure",
                        {{"role", "publisher"}});
}

void PublisherMetrics::published(std::size_t count) {
  if (published_ != nullptr && count > 0) published_->Increment(static_cast<double>(count));
}

void PublisherMetrics::confirmed(std::size_t count) {
  if (confirmed_ != nullptr && count > 0) confirmed_->Increment(static_cast<double>(count));
}

void PublisherMetrics::nacked(std::size_t count) {
  if (nacked_ != nullptr && count > 0) nacked_->Increment(static_cast<double>(count));
}

void PublisherMetrics::returned() {
  if (returned_ != nullptr) returned_->Increment();
}

void PublisherMetrics::failed(AmqpErrc reason, std::size_t count) {
  const auto index = static_cast<std::size_t>(reason);
  if (index < failed_.size() && failed_[index] != nullptr && count > 0) {
    failed_[index]->Increment(static_cast<double>(count));
  }
}

void PublisherMetrics::invalid() {
  if (invalid_ != nullptr) invalid_->Increment();
}

void PublisherMetrics::confirm_latency(std::chrono::steady_clock::duration elapsed) {
  if (confirm_seconds_ != nullptr) {
    confirm_seconds_->Observe(std::chrono::duration<double>(elapsed).count());
  }
}

void PublisherMetrics::reconnected() {
  if (reconnects_ != nullptr) reconnects_->Increment();
}

}  // namespace notifs::messaging::amqp::detail
