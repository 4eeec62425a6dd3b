#pragma once

#include <amqp.h>

#include <optional>
#include <string>
#include <string_view>

#include "amqp/connection.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace notifs::messaging::amqp::detail {

// Declares CONTRACT.md's topology on an open channel: the four durable direct exchanges,
// per channel its main queue and retry tiers, failed.queue, status.queue and every binding.
// Idempotent: publishers and consumers call it on every (re)connect, so a broker that lost
// its definitions gets them back. Blocking (one RPC per entity).
//
// Throws std::invalid_argument for settings that cannot work, TopologyMismatch when an
// existing queue or exchange differs in an argument the broker compares (its 406 names
// the entity and the argument; the channel is then closed, and close-ok already sent, so
// the channel number can be opened again), AmqpError for anything else.
void declare_topology(Connection& connection, amqp_channel_t channel,
                      const TopologySettings& topology);

// Throws std::invalid_argument naming the first setting that cannot work (no channels, an
// empty channel name, a factor below 1, a negative delay, too many tiers).
void validate_topology(const TopologySettings& topology);

// The entity and argument of the broker's
//   "PRECONDITION_FAILED - inequivalent arg 'x-overflow' for queue 'email.queue' in vhost
//   '/': received ... but current is ..."
// nullopt for any other text.
struct InequivalentArg {
  std::string entity;    // the queue or exchange name
  std::string argument;  // "x-dead-letter-strategy", "durable", "type", ...
};
std::optional<InequivalentArg> parse_inequivalent_arg(std::string_view reply_text);

}  // namespace notifs::messaging::amqp::detail
