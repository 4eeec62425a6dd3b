#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

// The body of a notification message on email.queue and push.queue (CONTRACT.md, "A
// notification message"), as a worker reads it. The gateway writes it
// (services/api_gateway/src/notification_message.cpp); a unit test round-trips the two.

namespace notifs::contract {

struct JobRecipient {
  std::string name;
  std::string email;                     // email jobs: non-empty
  std::vector<std::string> push_tokens;  // push jobs: at least one
};

struct NotificationJob {
  std::string notification_id;    // UUID, lower case
  std::string request_id;
  std::string notification_type;  // "email" | "push"
  std::string user_id;            // UUID, lower case
  std::string template_code;
  std::string locale;             // may be empty: the template's default
  nlohmann::json variables = nlohmann::json::object();
  JobRecipient recipient;
  int priority = 5;               // 0..9
  nlohmann::json metadata = nlohmann::json::object();
  std::string created_at;         // RFC 3339, as written by the gateway
};

// A body that is not a notification message. It can never succeed, so the worker
// dead-letters it with what() as the reason; field() names the first offending field
// (empty when the body is not a JSON object at all).
class JobFormatError : public std::invalid_argument {
 public:
  JobFormatError(std::string field, const std::string& problem);
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// Parses and checks a message body: required fields present with the right types,
// notification_id and user_id UUIDs, notification_type known, the recipient field the
// type needs, priority in 0..9, variables and metadata objects (absent metadata: {}).
// Unknown fields are ignored (a newer gateway may add some). Throws JobFormatError.
NotificationJob decode_notification_job(std::string_view body);

}  // namespace notifs::contract
