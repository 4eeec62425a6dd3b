#include "notification_request.hpp"

#include <array>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include "notifs/runtime/digest.hpp"

#include "notifs/messaging/http/envelope.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;
using nlohmann::json;

namespace {

char to_lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_visible_ascii(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte >= 0x21 && byte <= 0x7E;
}

// Why a variables/metadata value cannot be kept, or nullopt. `depth` is the level of
// `value` itself; the walk stops at the first problem, so recursion never goes deeper
// than kMaxValueDepth + 1 whatever the input.
std::optional<std::string> value_problem(const json& value, std::size_t depth) {
  constexpr std::string_view kNul("\0", 1);
  if (value.is_structured() && depth > kMaxValueDepth) {
    return "nests deeper than " + std::to_string(kMaxValueDepth) + " levels";
  }
  if (value.is_string()) {
    if (value.get_ref<const std::string&>().find(kNul) != std::string::npos) {
      return "must not contain NUL (U+0000) characters";
    }
  } else if (value.is_object()) {
    for (const auto& [key, member] : value.items()) {
      if (key.find(kNul) != std::string::npos) {
        return "must not contain NUL (U+0000) characters";
      }
      if (auto problem = value_problem(member, depth + 1)) {
        return problem;
      }
    }
  } else if (value.is_array()) {
    for (const auto& element : value) {
      if (auto problem = value_problem(element, depth + 1)) {
        return problem;
      }
    }
  }
  return std::nullopt;
}

class ProblemList {
 public:
  void add(std::string field, std::string problem) {
    problems_.push_back({std::move(field), std::move(problem)});
  }
  bool empty() const { return problems_.empty(); }
  [[noreturn]] void refuse() {
    throw http::HttpError(400, "validation_failed", "request has invalid fields",
                          std::move(problems_));
  }

 private:
  std::vector<http::FieldProblem> problems_;
};

// A required string member, or nullptr after noting why not.
const std::string* required_string(const json& body, std::string_view key, ProblemList& problems) {
  const auto it = body.find(key);
  if (it == body.end()) {
    problems.add(std::string(key), "is required");
    return nullptr;
  }
  if (!it->is_string()) {
    problems.add(std::string(key), std::string("must be a string, got ") + it->type_name());
    return nullptr;
  }
  return it->get_ptr<const std::string*>();
}

// An optional member; nullptr when absent or null.
const json* optional_member(const json& body, std::string_view key) {
  const auto it = body.find(key);
  return (it == body.end() || it->is_null()) ? nullptr : &*it;
}

// variables and metadata: an object, bounded in depth, with no NUL.
std::optional<json> read_object(const json& body, std::string_view key, ProblemList& problems) {
  const json* value = optional_member(body, key);
  if (value == nullptr) {
    return json::object();
  }
  if (!value->is_object()) {
    problems.add(std::string(key), std::string("must be an object, got ") + value->type_name());
    return std::nullopt;
  }
  if (auto problem = value_problem(*value, 1)) {
    problems.add(std::string(key), std::move(*problem));
    return std::nullopt;
  }
  return *value;
}

std::string request_id_rule() {
  return "must be 1 to " + std::to_string(kMaxRequestIdChars) +
         " printable ASCII characters, spaces only between them";
}

// The request id from the body and/or the Idempotency-Key header(s).
std::optional<std::string> read_request_id(const json& body, const http::Request& request,
                                           ProblemList& problems) {
  std::optional<std::string> from_body;
  bool body_bad = false;
  if (const json* value = optional_member(body, "request_id")) {
    if (!value->is_string()) {
      problems.add("request_id", std::string("must be a string, got ") + value->type_name());
      body_bad = true;
    } else if (!is_request_id(value->get_ref<const std::string&>())) {
      problems.add("request_id", request_id_rule());
      body_bad = true;
    } else {
      from_body = value->get<std::string>();
    }
  }

  std::optional<std::string_view> from_header;
  bool header_bad = false;
  for (const auto& [name, header_value] : request.headers) {
    if (!http::iequals(name, kIdempotencyKeyHeader) || header_bad) {
      continue;
    }
    if (!is_request_id(header_value)) {
      problems.add(std::string(kIdempotencyKeyHeader), request_id_rule());
      header_bad = true;
    } else if (from_header && *from_header != header_value) {
      // Two keys for one request: either may be the one the client retries with.
      problems.add(std::string(kIdempotencyKeyHeader),
                   "is given more than once with different values");
      header_bad = true;
    } else {
      from_header = header_value;
    }
  }
  if (body_bad || header_bad) {
    return std::nullopt;
  }
  if (from_body && from_header && *from_body != *from_header) {
    problems.add("request_id", "differs from the Idempotency-Key header");
    return std::nullopt;
  }
  if (from_body) {
    return from_body;
  }
  if (from_header) {
    return std::string(*from_header);
  }
  problems.add("request_id", "required: body request_id or Idempotency-Key header");
  return std::nullopt;
}

std::optional<int> read_priority(const json& body, ProblemList& problems) {
  const json* value = optional_member(body, "priority");
  if (value == nullptr) {
    return kDefaultPriority;
  }
  // is_number_integer covers both signed and unsigned storage; floats (5.0, 1e300) and
  // strings are refused, and comparing in 64 bits keeps huge integers from wrapping.
  const std::string rule = "must be an integer from " + std::to_string(kMinPriority) + " to " +
                           std::to_string(kMaxPriority);
  if (!value->is_number_integer()) {
    problems.add("priority", rule + ", got " + value->type_name());
    return std::nullopt;
  }
  if (value->is_number_unsigned()) {
    const auto number = value->get<std::uint64_t>();
    if (number > static_cast<std::uint64_t>(kMaxPriority)) {
      problems.add("priority", rule);
      return std::nullopt;
    }
    return static_cast<int>(number);
  }
  const auto number = value->get<std::int64_t>();
  if (number < kMinPriority || number > kMaxPriority) {
    problems.add("priority", rule);
    return std::nullopt;
  }
  return static_cast<int>(number);
}

}  // namespace

std::string_view to_string(Channel channel) {
  switch (channel) {
    case Channel::email:
      return "email";
    case Channel::push:
      return "push";
  }
  return "email";  // unreachable: every enumerator is handled above
}

std::optional<Channel> channel_from_string(std::string_view text) {
  if (text == "email") return Channel::email;
  if (text == "push") return Channel::push;
  return std::nullopt;
}

bool is_template_code(std::string_view text) {
  if (text.empty() || text.size() > kMaxTemplateCodeChars) {
    return false;
  }
  for (const char c : text) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool is_request_id(std::string_view text) {
  if (text.empty() || text.size() > kMaxRequestIdChars) {
    return false;
  }
  if (text.front() == ' ' || text.back() == ' ') {
    return false;
  }
  for (const char c : text) {
    if (c != ' ' && !is_visible_ascii(c)) {
      return false;
    }
  }
  return true;
}

namespace {

// http::parse_json_object turns parse_error into its 400 but lets nlohmann's out_of_range
// through, which the parser throws for a number beyond a double ("1e400"): left alone,
// that is a 500 for something the client sent.
json parse_body(const http::Request& request) {
  try {
    return http::parse_json_object(request);
  } catch (const json::out_of_range&) {
    throw http::HttpError(400, "invalid_json",
                          "request body is not valid JSON (a number is out of range)");
  }
}

}  // namespace

NotificationRequest parse_notification_request(const http::Request& request) {
  const json body = parse_body(request);
  ProblemList problems;
  NotificationRequest out;

  if (const std::string* type = required_string(body, "notification_type", problems)) {
    if (const auto channel = channel_from_string(*type)) {
      out.notification_type = *channel;
    } else {
      problems.add("notification_type", "must be \"email\" or \"push\"");
    }
  }

  if (const std::string* user_id = required_string(body, "user_id", problems)) {
    if (is_uuid(*user_id)) {
      out.user_id.reserve(user_id->size());
      for (const char c : *user_id) {
        out.user_id.push_back(to_lower_ascii(c));
      }
    } else {
      problems.add("user_id", "must be a UUID (8-4-4-4-12 hexadecimal digits)");
    }
  }

  if (const std::string* code = required_string(body, "template_code", problems)) {
    if (is_template_code(*code)) {
      out.template_code = *code;
    } else {
      problems.add("template_code", "must be 1 to " + std::to_string(kMaxTemplateCodeChars) +
                                        " characters of a-z, 0-9, '_', '.', '-'");
    }
  }

  if (auto variables = read_object(body, "variables", problems)) {
    out.variables = std::move(*variables);
  }

  if (auto request_id = read_request_id(body, request, problems)) {
    out.request_id = std::move(*request_id);
  }

  if (const auto priority = read_priority(body, problems)) {
    out.priority = *priority;
  }

  if (auto metadata = read_object(body, "metadata", problems)) {
    // Measured as the ledger and the message will carry it: compact, UTF-8 unescaped.
    const std::size_t size = metadata->dump().size();
    if (size > kMaxMetadataBytes) {
      problems.add("metadata", "must be at most " + std::to_string(kMaxMetadataBytes) +
                                   " bytes as compact JSON, got " + std::to_string(size));
    } else {
      out.metadata = std::move(*metadata);
    }
  }

  if (!problems.empty()) {
    problems.refuse();
  }
  return out;
}

std::string request_fingerprint(const NotificationRequest& request) {
  const json canonical = {
      {"notification_type", to_string(request.notification_type)},
      {"user_id", request.user_id},
      {"template_code", request.template_code},
      {"variables", request.variables},
      {"priority", request.priority},
      {"metadata", request.metadata},
  };
  return runtime::to_hex(runtime::sha256(canonical.dump()));
}

}  // namespace notifs::api_gateway
