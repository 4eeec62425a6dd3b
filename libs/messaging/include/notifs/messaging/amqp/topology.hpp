#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "notifs/messaging/amqp/connection_settings.hpp"

namespace notifs::messaging::amqp {

enum class QueueType { quorum, classic };
std::optional<QueueType> parse_queue_type(std::string_view text);
std::string_view to_string(QueueType type);

// The names of CONTRACT.md's topology. `prefix` is empty in production, so the names are
// exactly the contract's; tests isolate themselves with a prefix of their own.
class TopologyNames {
 public:
  explicit TopologyNames(std::string prefix = {}) : prefix_(std::move(prefix)) {}

  std::string direct_exchange() const { return prefix_ + "notifications.direct"; }
  std::string retry_exchange() const { return prefix_ + "notifications.retry"; }
  std::string dead_letter_exchange() const { return prefix_ + "notifications.dlx"; }
  std::string status_exchange() const { return prefix_ + "notifications.status"; }
  std::string failed_queue() const { return prefix_ + "failed.queue"; }
  std::string status_queue() const { return prefix_ + "status.queue"; }
  static constexpr std::string_view kStatusRoutingKey = "status";

  // "email.queue"; bound to the direct exchange with routing key "email".
  std::string main_queue(std::string_view channel) const {
    return prefix_ + std::string(channel) + ".queue";
  }
  // "email.retry.2" (tiers are 1-based); also its routing key on the retry exchange.
  std::string retry_queue(std::string_view channel, std::uint32_t tier) const {
    return prefix_ + std::string(channel) + ".retry." + std::to_string(tier);
  }

 private:
  std::string prefix_;
};

struct TopologySettings {
  QueueType queue_type = QueueType::quorum;       // RABBITMQ_QUEUE_TYPE
  std::vector<std::string> channels{"email", "push"};  // routing keys of notifications.direct
  std::uint32_t retry_tiers = 3;                  // email.retry.1 .. email.retry.N
  std::chrono::milliseconds retry_base_delay{5000};  // TTL of tier 1
  double retry_factor = 4.0;                      // tier n's TTL = base * factor^(n-1)
  std::uint32_t delivery_limit = 10;              // quorum x-delivery-limit (crash loops end)
  TopologyNames names;                            // contract names (tests: a prefix)
};

// TTL of retry tier `tier` (1-based).
std::chrono::milliseconds retry_delay(const TopologySettings& settings, std::uint32_t tier);

// Declares the whole topology idempotently over a connection of its own. Blocking (run it
// at start, not on an io thread). Throws TopologyMismatch when an existing queue has
// arguments that differ (the broker's 406 names the argument), AmqpError otherwise.
void declare_topology(const ConnectionSettings& connection, const TopologySettings& topology);

}  // namespace notifs::messaging::amqp
