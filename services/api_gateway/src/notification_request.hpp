#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/http/message.hpp"

// The body of `POST /api/v1/notifications` (CONTRACT.md, api_gateway), parsed and
// validated into a typed request, and the fingerprint the idempotency ledger compares.
// Pure functions, no I/O, thread-safe.
namespace notifs::api_gateway {

enum class Channel { email, push };
// "email" | "push": also the routing key on notifications.direct.
std::string_view to_string(Channel channel);
std::optional<Channel> channel_from_string(std::string_view text);

inline constexpr std::size_t kMaxTemplateCodeChars = 64;
inline constexpr std::size_t kMaxRequestIdChars = 128;
inline constexpr std::size_t kMaxMetadataBytes = 4096;  // compact JSON serialization
// Containers inside variables and metadata (the object itself is level 1). Templates need
// a few levels; this bound keeps every later recursive walk (dump, jsonb, mustache) shallow.
inline constexpr std::size_t kMaxValueDepth = 32;
inline constexpr int kMinPriority = 0;
inline constexpr int kMaxPriority = 9;
inline constexpr int kDefaultPriority = 5;
inline constexpr std::string_view kIdempotencyKeyHeader = "Idempotency-Key";

struct NotificationRequest {
  Channel notification_type = Channel::email;
  std::string user_id;        // canonical UUID, lower case
  std::string template_code;  // [a-z0-9_.-]{1,64}
  nlohmann::json variables = nlohmann::json::object();
  std::string request_id;  // the idempotency key, from the body or Idempotency-Key
  int priority = kDefaultPriority;
  nlohmann::json metadata = nlohmann::json::object();
};

// Parses the request's body (messaging::http::parse_json_object: an empty body, invalid
// JSON or a non-object top level give its 400) and validates every field. All problems are
// collected before throwing, so a client fixes a request in one round: HttpError 400
// `validation_failed` with one FieldProblem per bad field. Unknown fields are ignored, as
// the issue asks. The decisions where CONTRACT.md is silent:
// - `null` for an optional field (variables, priority, metadata, body request_id) means
//   absent: clients that serialize every member send it, and it cannot mean anything else.
// - user_id: 8-4-4-4-12 hex digits in any case, stored lower case. Braces, `urn:uuid:` and
//   the 32-digit form are refused: one spelling per user keeps cache and ledger keys unique.
// - request_id: 1 to 128 printable ASCII characters (0x21..0x7E) with inner spaces allowed
//   and none at either end. An HTTP header cannot carry leading or trailing spaces (they
//   are optional white space) nor, portably, non-ASCII, and the same key must be sendable
//   in either place. Control characters and NUL are refused.
// - request_id sources: body `request_id` or header `Idempotency-Key`; both present must be
//   equal (else a problem on `request_id`); a bad header value is a problem on
//   `Idempotency-Key`; repeated Idempotency-Key headers must agree.
// - priority: an integral JSON number 0..9. 5.0, "5", true are refused: the contract's
//   examples are integers, and accepting 5.0 would make 5 and 5.0 one request with two
//   different bodies.
// - variables and metadata: objects nesting at most kMaxValueDepth levels, with no NUL
//   (U+0000) in any key or string: PostgreSQL's text and jsonb, where the ledger keeps
//   them, cannot store it, and no template has a use for it. metadata's compact
//   serialization is at most 4096 bytes.
// - duplicate keys in the body: the last one wins (nlohmann's parser); the fingerprint is
//   computed from the parsed values, so a replay of the same bytes always matches.
NotificationRequest parse_notification_request(const messaging::http::Request& request);

// Hex SHA-256 of the canonical serialization of the fields that define the notification:
// notification_type, user_id, template_code, variables, priority, metadata (request_id is
// the ledger's key, not part of the body it compares). The serialization is nlohmann's
// compact dump() of one object holding them: nlohmann::json keeps object members in a
// std::map, so keys are sorted at every level and key order or white space in the client's
// body never changes the result; string escapes are normalized by the parse. Defaults are
// applied first, so an omitted priority and `"priority": 5` give the same fingerprint.
// Throws nlohmann::json::type_error only for strings that are not UTF-8, which a parsed
// request never holds.
std::string request_fingerprint(const NotificationRequest& request);

// Single checks, exposed for tests and for other routes that take the same values.
using messaging::common::is_uuid;
bool is_template_code(std::string_view text);
bool is_request_id(std::string_view text);

}  // namespace notifs::api_gateway
