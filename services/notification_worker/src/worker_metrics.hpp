#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::worker {

// How one message left the worker: the `result` label of notifs_worker_messages_total.
enum class MessageResult : std::uint8_t {
  delivered,  // sent now, recorded, acked
  duplicate,  // its send was already recorded: acked without sending again
  retried,    // transient failure: republished to the next retry tier
  failed,     // permanent failure or retries exhausted: dead-lettered to failed.queue
  invalid,    // not a notification message, or for the other channel: dead-lettered
};
inline constexpr std::size_t kMessageResultCount = 5;
std::string_view to_string(MessageResult result);

// The worker's own figures (the consumer, publisher, HTTP clients and pool count theirs):
//   notifs_worker_messages_total{channel, result}
//   notifs_worker_send_seconds{channel}       one provider send, start to answer
//   notifs_worker_processing_seconds{channel} delivery to outcome, every result
//   notifs_worker_unrecorded_sends_total{channel}  sent, but the send ledger could not
//                                                  record it (a redelivery could resend)
// Without a registry every call does nothing. Thread-safe.
class WorkerMetrics {
 public:
  WorkerMetrics(prometheus::Registry* registry, const std::string& channel);

  void message(MessageResult result, std::chrono::steady_clock::duration processing);
  void send_took(std::chrono::steady_clock::duration elapsed);
  void unrecorded_send();

 private:
  std::array<prometheus::Counter*, kMessageResultCount> messages_{};
  prometheus::Histogram* send_seconds_ = nullptr;
  prometheus::Histogram* processing_seconds_ = nullptr;
  prometheus::Counter* unrecorded_ = nullptr;
};

}  // namespace notifs::worker
