#pragma once

#include <array>
#include <chrono>
#include <cstddef>

#include "notifs/messaging/amqp/error.hpp"

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::messaging::amqp::detail {

// The publisher's Prometheus series. Families carry no constant labels, so several
// publishers (and consumers) share one registry; publishers sharing a registry add up
// into the same series. Every series exists from the start (zeros included) and the hot
// path only touches atomics. Without a registry every call is a no-op. Thread-safe.
class PublisherMetrics {
 public:
  explicit PublisherMetrics(prometheus::Registry* registry);

  void published(std::size_t count);
  void confirmed(std::size_t count);
  void nacked(std::size_t count);
  void returned();
  void failed(AmqpErrc reason, std::size_t count = 1);
  // A message refused because it cannot be encoded (reason="invalid_message").
  void invalid();
  void confirm_latency(std::chrono::steady_clock::duration elapsed);
  void reconnected();

 private:
  // Indexed by AmqpErrc (1-based in the enum).
  static constexpr std::size_t kReasons = 8;

  prometheus::Counter* published_ = nullptr;
  prometheus::Counter* confirmed_ = nullptr;
  prometheus::Counter* nacked_ = nullptr;
  prometheus::Counter* returned_ = nullptr;
  std::array<prometheus::Counter*, kReasons> failed_{};
  prometheus::Counter* invalid_ = nullptr;
  prometheus::Histogram* confirm_seconds_ = nullptr;
  prometheus::Counter* reconnects_ = nullptr;
};

}  // namespace notifs::messaging::amqp::detail
