#include "notifs/contract/notification_job.hpp"

#include <algorithm>
#include <cstdint>
#include <unordered_set>
#include <utility>

#include "notifs/messaging/common/request_id.hpp"

namespace notifs::contract {

using messaging::common::is_uuid;
using nlohmann::json;

namespace {

// The gateway lets variables and metadata nest 32 levels (the object itself being the
// first); the body adds one and the recipient is shallow. Anything deeper was not written
// by a gateway, and refusing it here keeps every later recursive walk (dump, the render
// request, mustache) shallow. The check runs while parsing: deeper containers are never
// built.
constexpr int kMaxContainerDepth = 40;

constexpr std::size_t kMaxTemplateCodeChars = 64;

[[noreturn]] void refuse(std::string field, const std::string& problem) {
  throw JobFormatError(std::move(field), problem);
}

std::string lower_ascii(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return text;
}

// The member `name`, or null when it is absent or JSON null (both mean "not given").
const json* member(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

const std::string& required_string(const json& object, const char* name, const std::string& path) {
  const json* value = member(object, name);
  if (value == nullptr) {
    refuse(path, "is missing");
  }
  if (!value->is_string()) {
    refuse(path, std::string("must be a string, not ") + value->type_name());
  }
  return value->get_ref<const std::string&>();
}

std::string optional_string(const json& object, const char* name, const std::string& path) {
  const json* value = member(object, name);
  if (value == nullptr) {
    return {};
  }
  if (!value->is_string()) {
    refuse(path, std::string("must be a string, not ") + value->type_name());
  }
  return value->get<std::string>();
}

std::string required_uuid(const json& object, const char* name) {
  const auto& text = required_string(object, name, name);
  if (!is_uuid(text)) {
    refuse(name, "must be a UUID");
  }
  return lower_ascii(text);
}

bool is_template_code(std::string_view text) {
  return !text.empty() && text.size() <= kMaxTemplateCodeChars &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-';
         });
}

bool has_control_or_space(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte <= 0x20 || byte == 0x7F;
  });
}

// An address a mail header can carry: something@something, no white space and no control
// characters (CR/LF would let a recipient inject headers). user_service validated it more
// strictly; this only stops what the message builder must never see.
bool is_plausible_address(std::string_view text) {
  const auto at = text.find('@');
  return at != std::string_view::npos && at > 0 && at + 1 < text.size() &&
         !has_control_or_space(text);
}

int read_priority(const json& body) {
  const json* value = member(body, "priority");
  if (value == nullptr) {
    refuse("priority", "is missing");
  }
  // As the gateway does: an integral JSON number; 5.0, "5" and true are not priorities.
  if (value->is_number_unsigned()) {
    const auto number = value->get<std::uint64_t>();
    if (number > 9) {
      refuse("priority", "must be 0 to 9");
    }
    return static_cast<int>(number);
  }
  if (value->is_number_integer()) {
    const auto number = value->get<std::int64_t>();
    if (number < 0 || number > 9) {
      refuse("priority", "must be 0 to 9");
    }
    return static_cast<int>(number);
  }
  refuse("priority", std::string("must be an integer 0 to 9, not ") + value->type_name());
}

json read_object(const json& body, const char* name, bool required) {
  const json* value = member(body, name);
  if (value == nullptr) {
    if (required) {
      refuse(name, "is missing");
    }
    return json::object();
  }
  if (!value->is_object()) {
    refuse(name, std::string("must be a JSON object, not ") + value->type_name());
  }
  return *value;
}

JobRecipient read_recipient(const json& body, const std::string& type) {
  const json* value = member(body, "recipient");
  if (value == nullptr) {
    refuse("recipient", "is missing");
  }
  if (!value->is_object()) {
    refuse("recipient", std::string("must be a JSON object, not ") + value->type_name());
  }
  JobRecipient recipient;
  recipient.name = optional_string(*value, "name", "recipient.name");
  // Only the address the channel needs is read: the gateway writes only that one, and a
  // push job is not refused over an email member it never uses.
  if (type == "email") {
    recipient.email = required_string(*value, "email", "recipient.email");
    if (!is_plausible_address(recipient.email)) {
      refuse("recipient.email", "must be an email address");
    }
    return recipient;
  }
  const json* tokens = member(*value, "push_tokens");
  if (tokens == nullptr) {
    refuse("recipient.push_tokens", "is missing");
  }
  if (!tokens->is_array()) {
    refuse("recipient.push_tokens",
           std::string("must be an array of strings, not ") + tokens->type_name());
  }
  if (tokens->empty()) {
    refuse("recipient.push_tokens", "must hold at least one token");
  }
  // A token listed twice would get the notification twice; the first mention is kept.
  std::unordered_set<std::string> seen;
  for (std::size_t i = 0; i < tokens->size(); ++i) {
    const auto& token = (*tokens)[i];
    const std::string path = "recipient.push_tokens[" + std::to_string(i) + "]";
    if (!token.is_string()) {
      refuse(path, std::string("must be a string, not ") + token.type_name());
    }
    const auto& text = token.get_ref<const std::string&>();
    if (text.empty()) {
      refuse(path, "must not be empty");
    }
    if (seen.insert(text).second) {
      recipient.push_tokens.push_back(text);
    }
  }
  return recipient;
}

}  // namespace

JobFormatError::JobFormatError(std::string field, const std::string& problem)
    : std::invalid_argument(field.empty() ? "notification job: " + problem
                                          : "notification job: " + field + " " + problem),
      field_(std::move(field)) {}

NotificationJob decode_notification_job(std::string_view body) {
  bool too_deep = false;
  const json::parser_callback_t limit_depth = [&too_deep](int depth, json::parse_event_t event,
                                                          json& /*parsed*/) {
    if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
        depth >= kMaxContainerDepth) {
      too_deep = true;
      return false;  // not built; the parse goes on (it is iterative) and is refused below
    }
    return true;
  };
  // Invalid UTF-8 in a string is a parse error in nlohmann's lexer, so every string below
  // is valid UTF-8.
  const json document = json::parse(body, limit_depth, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    refuse("", "is not valid JSON");
  }
  if (too_deep) {
    refuse("", "is nested deeper than " + std::to_string(kMaxContainerDepth) + " levels");
  }
  if (!document.is_object()) {
    refuse("", std::string("must be a JSON object, not ") + document.type_name());
  }

  NotificationJob job;
  job.notification_id = required_uuid(document, "notification_id");
  job.request_id = required_string(document, "request_id", "request_id");
  if (job.request_id.empty()) {
    refuse("request_id", "must not be empty");
  }
  job.notification_type = required_string(document, "notification_type", "notification_type");
  if (job.notification_type != "email" && job.notification_type != "push") {
    refuse("notification_type", "must be email or push");
  }
  job.user_id = required_uuid(document, "user_id");
  job.template_code = required_string(document, "template_code", "template_code");
  if (!is_template_code(job.template_code)) {
    refuse("template_code", "must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'");
  }
  job.locale = optional_string(document, "locale", "locale");
  job.variables = read_object(document, "variables", /*required=*/true);
  job.recipient = read_recipient(document, job.notification_type);
  job.priority = read_priority(document);
  job.metadata = read_object(document, "metadata", /*required=*/false);
  job.created_at = required_string(document, "created_at", "created_at");
  if (job.created_at.empty()) {
    refuse("created_at", "must not be empty");
  }
  return job;
}

}  // namespace notifs::contract
