#include "amqp/topology_declarer.hpp"

#include <cmath>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <vector>

namespace notifs::messaging::amqp::detail {

namespace {

// More tiers than this is a configuration mistake (with factor 2 and 1 s base, tier 32
// waits 68 years), and every tier is a queue per channel.
constexpr std::uint32_t kMaxRetryTiers = 32;
constexpr std::int64_t kClassicMaxPriority = 10;
constexpr int kReplyPreconditionFailed = 406;

// An AMQP field table that owns its strings (rabbitmq-c's only point at bytes).
class ArgumentTable {
 public:
  ArgumentTable& text(std::string_view key, std::string_view value) {
    amqp_table_entry_t entry{};
    entry.key = keep(key);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = keep(value);
    entries_.push_back(entry);
    return *this;
  }
  ArgumentTable& number(std::string_view key, std::int64_t value) {
    amqp_table_entry_t entry{};
    entry.key = keep(key);
    entry.value.kind = AMQP_FIELD_KIND_I64;
    entry.value.value.i64 = value;
    entries_.push_back(entry);
    return *this;
  }
  amqp_table_t table() {
    amqp_table_t table{};
    table.num_entries = static_cast<int>(entries_.size());
    table.entries = entries_.empty() ? nullptr : entries_.data();
    return table;
  }

 private:
  amqp_bytes_t keep(std::string_view text) {
    const std::string& kept = strings_.emplace_back(text);
    amqp_bytes_t bytes{};
    bytes.len = kept.size();
    bytes.bytes = const_cast<char*>(kept.data());
    return bytes;
  }

  std::deque<std::string> strings_;  // stable addresses as it grows
  std::vector<amqp_table_entry_t> entries_;
};

amqp_bytes_t bytes_of(const std::string& text) {
  amqp_bytes_t bytes{};
  bytes.len = text.size();
  bytes.bytes = const_cast<char*>(text.data());
  return bytes;
}

// Quorum queues dead-letter at-most-once unless told otherwise, and at-least-once only
// takes effect together with reject-publish overflow (with drop-head the broker falls back
// to at-most-once, logging a warning nobody reads): both are set on every quorum queue
// that dead-letters, the retry tiers included, because a TTL expiry is a dead-lettering
// too and a message lost there is a notification silently never sent.
void add_safe_dead_lettering(ArgumentTable& args, QueueType type,
                             const std::string& exchange, const std::string& routing_key) {
  args.text("x-dead-letter-exchange", exchange);
  args.text("x-dead-letter-routing-key", routing_key);
  if (type == QueueType::quorum) {
    args.text("x-dead-letter-strategy", "at-least-once");
    args.text("x-overflow", "reject-publish");
  }
}

ArgumentTable queue_type_args(QueueType type) {
  ArgumentTable args;
  // Explicit even for classic: a vhost whose default queue type is quorum would otherwise
  // make the queue quorum, which rejects x-max-priority.
  args.text("x-queue-type", to_string(type));
  return args;
}

// Runs one declaration; a 406 "inequivalent arg" becomes TopologyMismatch.
//
// What the broker's check covers (RabbitMQ 3.10.8, rabbit_amqqueue:assert_args_equivalence):
// the durable/auto_delete/exclusive flags, and those arguments the EXISTING queue's type
// knows, in that type's order, the first difference named. For quorum queues that is
// x-dead-letter-exchange, -routing-key, x-dead-letter-strategy, x-expires, x-max-length(-bytes),
// x-max-in-memory-length/-bytes, x-overflow, x-single-active-consumer, x-queue-type,
// x-quorum-initial-group-size, x-delivery-limit, x-message-ttl, x-queue-leader-locator; for
// classic ones x-expires, x-message-ttl, x-dead-letter-*, x-max-length(-bytes),
// x-max-priority, x-overflow, x-queue-mode, x-queue-version, x-single-active-consumer,
// x-queue-type, x-queue-master-locator. An argument missing on one side differs from a
// present one, so every argument we rely on is checked both ways, and an extra argument on
// the existing queue is refused too. (A classic queue met where quorum is configured is
// reported by its first differing classic argument, not by x-queue-type.)
//
// What no AMQP reply shows: policies. An "overflow" policy takes precedence over the
// x-overflow argument of a quorum queue, and drop-head silently turns at-least-once
// dead-lettering back into at-most-once; so does a node whose stream_queue feature flag is
// disabled (an upgraded node that never enabled it). Only the management API (the queue's
// effective_policy_definition) or rabbitmqctl can see either; this library does not talk to
// them, so operators must not put overflow policies on these queues.
template <typename Step>
void declare(Step&& step) {
  try {
    step();
  } catch (const AmqpError& error) {
    if (error.scope() == AmqpError::Scope::channel && error.code() == kReplyPreconditionFailed) {
      if (auto parsed = parse_inequivalent_arg(error.reply_text())) {
        throw TopologyMismatch(parsed->entity, parsed->argument, error.reply_text());
      }
    }
    throw;
  }
}

void declare_exchange(Connection& connection, amqp_channel_t channel, const std::string& name) {
  declare([&] {
    amqp_exchange_declare(connection.state(), channel, bytes_of(name),
                          amqp_cstring_bytes("direct"), /*passive=*/0, /*durable=*/1,
                          /*auto_delete=*/0, /*internal=*/0, amqp_empty_table);
    connection.check_last_reply("exchange.declare " + name, channel);
  });
}

void declare_queue(Connection& connection, amqp_channel_t channel, const std::string& name,
                   ArgumentTable& args) {
  declare([&] {
    amqp_queue_declare(connection.state(), channel, bytes_of(name), /*passive=*/0,
                       /*durable=*/1, /*exclusive=*/0, /*auto_delete=*/0, args.table());
    connection.check_last_reply("queue.declare " + name, channel);
  });
}

void bind(Connection& connection, amqp_channel_t channel, const std::string& queue,
          const std::string& exchange, const std::string& routing_key) {
  amqp_queue_bind(connection.state(), channel, bytes_of(queue), bytes_of(exchange),
                  bytes_of(routing_key), amqp_empty_table);
  connection.check_last_reply("queue.bind " + queue + " to " + exchange + " key " + routing_key,
                              channel);
}

}  // namespace

std::optional<InequivalentArg> parse_inequivalent_arg(std::string_view text) {
  constexpr std::string_view kArgStart = "inequivalent arg '";
  const std::size_t arg_begin = text.find(kArgStart);
  if (arg_begin == std::string_view::npos) return std::nullopt;
  const std::size_t arg_first = arg_begin + kArgStart.size();
  const std::size_t arg_end = text.find("' for ", arg_first);
  if (arg_end == std::string_view::npos) return std::nullopt;
  InequivalentArg result;
  result.argument = std::string(text.substr(arg_first, arg_end - arg_first));

  // "... for queue 'NAME' in vhost '/'": the name ends at the last "' in vhost '", so a
  // quote inside the name does not cut it short.
  std::string_view rest = text.substr(arg_end + 6);
  const std::size_t quote = rest.find('\'');
  const std::size_t name_end = rest.rfind("' in vhost '");
  if (quote == std::string_view::npos || name_end == std::string_view::npos ||
      name_end < quote + 1) {
    return std::nullopt;
  }
  result.entity = std::string(rest.substr(quote + 1, name_end - quote - 1));
  if (result.argument.empty() || result.entity.empty()) return std::nullopt;
  return result;
}

void validate_topology(const TopologySettings& topology) {
  if (topology.channels.empty()) {
    throw std::invalid_argument("topology: no channels (expected e.g. email, push)");
  }
  for (const auto& channel : topology.channels) {
    if (channel.empty()) throw std::invalid_argument("topology: an empty channel name");
    if (channel.size() > 200) {
      throw std::invalid_argument("topology: channel name longer than 200 bytes: " + channel);
    }
  }
  if (topology.retry_tiers > kMaxRetryTiers) {
    throw std::invalid_argument("topology: more than " + std::to_string(kMaxRetryTiers) +
                                " retry tiers (" + std::to_string(topology.retry_tiers) + ")");
  }
  if (topology.retry_base_delay.count() < 0) {
    throw std::invalid_argument("topology: negative retry base delay");
  }
  if (!std::isfinite(topology.retry_factor) || topology.retry_factor < 1.0) {
    throw std::invalid_argument("topology: retry factor must be a number >= 1");
  }
  if (topology.queue_type == QueueType::quorum && topology.delivery_limit == 0) {
    throw std::invalid_argument("topology: quorum delivery limit must be at least 1");
  }
}

void declare_topology(Connection& connection, amqp_channel_t channel,
                      const TopologySettings& topology) {
  validate_topology(topology);
  const TopologyNames& names = topology.names;
  const QueueType type = topology.queue_type;

  for (const auto& exchange : {names.direct_exchange(), names.retry_exchange(),
                               names.dead_letter_exchange(), names.status_exchange()}) {
    declare_exchange(connection, channel, exchange);
  }

  for (const auto& name : topology.channels) {
    const std::string main_queue = names.main_queue(name);
    ArgumentTable main_args = queue_type_args(type);
    if (type == QueueType::quorum) {
      // Ends crash loops: a message whose handler kills the process is redelivered this
      // many times, then dead-lettered instead of being retried forever.
      main_args.number("x-delivery-limit", topology.delivery_limit);
    } else {
      main_args.number("x-max-priority", kClassicMaxPriority);
    }
    add_safe_dead_lettering(main_args, type, names.dead_letter_exchange(), name);
    declare_queue(connection, channel, main_queue, main_args);
    bind(connection, channel, main_queue, names.direct_exchange(), name);

    for (std::uint32_t tier = 1; tier <= topology.retry_tiers; ++tier) {
      const std::string retry_queue = names.retry_queue(name, tier);
      ArgumentTable retry_args = queue_type_args(type);
      retry_args.number("x-message-ttl", retry_delay(topology, tier).count());
      add_safe_dead_lettering(retry_args, type, names.direct_exchange(), name);
      declare_queue(connection, channel, retry_queue, retry_args);
      // The queue's own name is its key, so a republish names exactly one tier.
      bind(connection, channel, retry_queue, names.retry_exchange(), retry_queue);
    }
  }

  ArgumentTable failed_args = queue_type_args(type);
  declare_queue(connection, channel, names.failed_queue(), failed_args);
  for (const auto& name : topology.channels) {
    bind(connection, channel, names.failed_queue(), names.dead_letter_exchange(), name);
  }

  ArgumentTable status_args = queue_type_args(type);
  declare_queue(connection, channel, names.status_queue(), status_args);
  bind(connection, channel, names.status_queue(), names.status_exchange(),
       std::string(TopologyNames::kStatusRoutingKey));
}

}  // namespace notifs::messaging::amqp::detail
