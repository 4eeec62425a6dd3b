#include "worker_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace notifs::worker {

namespace {

constexpr std::array<std::string_view, kMessageResultCount> kResultNames{
    "delivered", "duplicate", "retried", "failed", "invalid"};

double seconds(std::chrono::steady_clock::duration elapsed) {
  return std::chrono::duration<double>(elapsed).count();
}

prometheus::Histogram::BucketBoundaries latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
}

}  // namespace

std::string_view to_string(MessageResult result) {
  return kResultNames[static_cast<std::size_t>(result)];
}

WorkerMetrics::WorkerMetrics(prometheus::Registry* registry, const std::string& channel) {
  if (registry == nullptr) {
    return;
  }
  auto& messages = prometheus::BuildCounter()
                       .Name("notifs_worker_messages_total")
                       .Help("Messages the worker finished, by how they left it")
                       .Register(*registry);
  for (std::size_t i = 0; i < kMessageResultCount; ++i) {
    messages_[i] =
        &messages.Add({{"channel", channel}, {"result", std::string(kResultNames[i])}});
  }
  send_seconds_ = &prometheus::BuildHistogram()
                       .Name("notifs_worker_send_seconds")
                       .Help("One provider send, start to answer")
                       .Register(*registry)
                       .Add({{"channel", channel}}, latency_buckets());
  processing_seconds_ = &prometheus::BuildHistogram()
                             .Name("notifs_worker_processing_seconds")
                             .Help("Delivery from the broker to its outcome")
                             .Register(*registry)
                             .Add({{"channel", channel}}, latency_buckets());
  unrecorded_ = &prometheus::BuildCounter()
                     .Name("notifs_worker_unrecorded_sends_total")
                     .Help("Sends the send ledger could not record before the ack")
                     .Register(*registry)
                     .Add({{"channel", channel}});
}

void WorkerMetrics::message(MessageResult result, std::chrono::steady_clock::duration processing) {
  if (auto* counter = messages_[static_cast<std::size_t>(result)]) {
    counter->Increment();
    processing_seconds_->Observe(seconds(processing));
  }
}

void WorkerMetrics::send_took(std::chrono::steady_clock::duration elapsed) {
  if (send_seconds_ != nullptr) {
    send_seconds_->Observe(seconds(elapsed));
  }
}

void WorkerMetrics::unrecorded_send() {
  if (unrecorded_ != nullptr) {
    unrecorded_->Increment();
  }
}

}  // namespace notifs::worker
