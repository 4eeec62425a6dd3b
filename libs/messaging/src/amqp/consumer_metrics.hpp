#pragma once

#include <chrono>
#include <cstddef>
#include <string>

namespace prometheus {
class Counter;
class Histogram;
class Registry;
}  // namespace prometheus

namespace notifs::messaging::amqp::detail {

// The consumer's Prometheus series. Families carry no constant labels so several
// consumers (and the publisher) share one registry; each consumer's series are labelled
// with its queue. Without a registry every call is a no-op.
class ConsumerMetrics {
 public:
  ConsumerMetrics(prometheus::Registry* registry, const std::string& queue);

  void consumed();
  void acked(std::size_t count);
  void retried();
  void dead_lettered();
  void rejected();
  void reconnected();
  void handler_time(std::chrono::steady_clock::duration elapsed);

 private:
  prometheus::Counter* consumed_ = nullptr;
  prometheus::Counter* acked_ = nullptr;
  prometheus::Counter* retried_ = nullptr;
  prometheus::Counter* dead_lettered_ = nullptr;
  prometheus::Counter* rejected_ = nullptr;
  prometheus::Counter* reconnects_ = nullptr;
  prometheus::Histogram* handler_seconds_ = nullptr;
};

}  // namespace notifs::messaging::amqp::detail
