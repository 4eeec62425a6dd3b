#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "notification_request.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/topology.hpp"

// The notification message of CONTRACT.md (RabbitMQ topology), built from a validated
// request and what the gateway learned while accepting it. Pure functions, thread-safe.
namespace notifs::api_gateway {

// What the gateway assigned when it accepted the request.
struct NotificationIdentity {
  std::string notification_id;
  std::chrono::system_clock::time_point created_at;
};

// The snapshot of the user the worker delivers to, so that it needs no user lookup.
// Only the channel's address goes into the message: `email` for email, `push_tokens` for
// push. The gateway answers `skipped` before building a message when that address is
// missing, so an empty one here is a caller's bug.
struct Recipient {
  std::string name;
  std::string email;                     // email notifications
  std::vector<std::string> push_tokens;  // push notifications
};

// The message for notifications.direct (prefixed by `names` in tests), routing key the
// channel; persistent, mandatory, application/json; message_id the notification id,
// correlation_id the request id, the request's priority, timestamp created_at; headers
// x-attempt = 1 and traceparent (left out when `traceparent` is empty). The body is the
// contract's JSON, `created_at` in RFC 3339 UTC with milliseconds. Throws
// std::invalid_argument when the recipient has no address for the channel, the
// notification id is empty or the priority is outside 0..9.
messaging::amqp::OutgoingMessage make_notification_message(
    const NotificationRequest& request, const NotificationIdentity& identity,
    const Recipient& recipient, std::string locale, std::string traceparent,
    const messaging::amqp::TopologyNames& names);

}  // namespace notifs::api_gateway
