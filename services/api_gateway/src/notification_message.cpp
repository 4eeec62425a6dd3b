#include "notification_message.hpp"

#include <cstdint>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "notifs/contract/timestamp.hpp"

namespace notifs::api_gateway {

namespace amqp = messaging::amqp;
using contract::format_rfc3339_ms;
using nlohmann::json;

amqp::OutgoingMessage make_notification_message(const NotificationRequest& request,
                                                const NotificationIdentity& identity,
                                                const Recipient& recipient, std::string locale,
                                                std::string traceparent,
                                                const amqp::TopologyNames& names) {
  if (identity.notification_id.empty()) {
    throw std::invalid_argument("make_notification_message: empty notification_id");
  }
  if (request.priority < kMinPriority || request.priority > kMaxPriority) {
    throw std::invalid_argument("make_notification_message: priority " +
                                std::to_string(request.priority) + " is outside 0..9");
  }
  const std::string_view channel = to_string(request.notification_type);

  json recipient_json = {{"name", recipient.name}};
  switch (request.notification_type) {
    case Channel::email:
      if (recipient.email.empty()) {
        throw std::invalid_argument("make_notification_message: email notification " +
                                    identity.notification_id + " has no recipient email");
      }
      recipient_json["email"] = recipient.email;
      break;
    case Channel::push:
      if (recipient.push_tokens.empty()) {
        throw std::invalid_argument("make_notification_message: push notification " +
                                    identity.notification_id + " has no push tokens");
      }
      recipient_json["push_tokens"] = recipient.push_tokens;
      break;
  }

  const json body = {
      {"notification_id", identity.notification_id},
      {"request_id", request.request_id},
      {"notification_type", channel},
      {"user_id", request.user_id},
      {"template_code", request.template_code},
      {"locale", std::move(locale)},
      {"variables", request.variables},
      {"recipient", std::move(recipient_json)},
      {"priority", request.priority},
      {"metadata", request.metadata},
      {"created_at", format_rfc3339_ms(identity.created_at)},
  };

  amqp::OutgoingMessage message;
  message.exchange = names.direct_exchange();
  message.routing_key = std::string(channel);
  message.body = body.dump();
  message.content_type = "application/json";
  message.message_id = identity.notification_id;
  message.correlation_id = request.request_id;
  message.priority = static_cast<std::uint8_t>(request.priority);
  message.timestamp = identity.created_at;
  message.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{1});
  if (!traceparent.empty()) {
    message.headers.set(std::string(amqp::kTraceparentHeader), std::move(traceparent));
  }
  message.persistent = true;
  message.mandatory = true;
  return message;
}

}  // namespace notifs::api_gateway
