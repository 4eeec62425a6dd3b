#include "notification_message.hpp"

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

namespace notifs::api_gateway {

namespace amqp = messaging::amqp;
using nlohmann::json;

std::string format_rfc3339_ms(std::chrono::system_clock::time_point at) {
  using namespace std::chrono;
  // floor, not duration_cast: before the epoch, truncation toward zero would move the
  // seconds part one second late.
  const auto ms = floor<milliseconds>(at.time_since_epoch());
  const auto secs = floor<seconds>(ms);
  const auto millis = (ms - secs).count();
  const std::time_t whole = static_cast<std::time_t>(secs.count());
  std::tm utc{};
  if (gmtime_r(&whole, &utc) == nullptr) {
    throw std::invalid_argument("format_rfc3339_ms: time out of range");
  }
  char text[40];
  const int written = std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                    utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                    utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  if (written <= 0 || static_cast<std::size_t>(written) >= sizeof text) {
    throw std::invalid_argument("format_rfc3339_ms: time out of range");
  }
  return std::string(text, static_cast<std::size_t>(written));
}

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
