#include "notifs/messaging/amqp/topology.hpp"

#include <cmath>
#include <limits>

#include "amqp/connection.hpp"
#include "amqp/topology_declarer.hpp"

namespace notifs::messaging::amqp {

namespace {

// RabbitMQ refuses an x-message-ttl above ten years (rabbit_misc:check_expiry).
constexpr std::chrono::milliseconds kMaxRetryDelay{315'360'000'000LL};
constexpr amqp_channel_t kDeclareChannel = 1;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ci(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

std::optional<QueueType> parse_queue_type(std::string_view text) {
  if (equals_ci(text, "quorum")) return QueueType::quorum;
  if (equals_ci(text, "classic")) return QueueType::classic;
  return std::nullopt;
}

std::string_view to_string(QueueType type) {
  switch (type) {
    case QueueType::quorum: return "quorum";
    case QueueType::classic: return "classic";
  }
  return "quorum";
}

std::chrono::milliseconds retry_delay(const TopologySettings& settings, std::uint32_t tier) {
  const auto base = settings.retry_base_delay.count();
  if (base <= 0) return std::chrono::milliseconds{0};
  const double factor =
      std::isfinite(settings.retry_factor) && settings.retry_factor >= 1.0 ? settings.retry_factor
                                                                           : 1.0;
  const std::uint32_t exponent = tier <= 1 ? 0 : tier - 1;
  // In floating point and clamped before converting back: base * factor^n overflows any
  // integer type long before it stops being a sensible (if useless) configuration.
  const long double delay =
      static_cast<long double>(base) * std::pow(static_cast<long double>(factor), exponent);
  if (!std::isfinite(delay) || delay >= static_cast<long double>(kMaxRetryDelay.count())) {
    return kMaxRetryDelay;
  }
  return std::chrono::milliseconds{static_cast<std::int64_t>(std::llround(delay))};
}

void declare_topology(const ConnectionSettings& connection, const TopologySettings& topology) {
  detail::validate_topology(topology);
  const auto owned = detail::Connection::open(connection);
  owned->open_channel(kDeclareChannel);
  detail::declare_topology(*owned, kDeclareChannel, topology);
  owned->close_channel(kDeclareChannel);
}

}  // namespace notifs::messaging::amqp
