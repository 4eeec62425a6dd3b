#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "user.hpp"

// Request bodies and path parameters of user_service, parsed into typed inputs. Every
// parse_* collects all problems of a body before it throws, so that a client fixes a
// request in one round: messaging::http::HttpError 400 `validation_failed` with one
// {"field","problem"} per bad field. Unknown fields are problems too, so that a typo
// ("emial") is refused instead of silently ignored. Pure functions, thread-safe.
namespace notifs::user_service {

inline constexpr std::size_t kMaxNameChars = 200;        // code points
inline constexpr std::size_t kMaxEmailBytes = 254;       // RFC 5321 path limit
inline constexpr std::size_t kMaxEmailLocalBytes = 64;   // RFC 5321 local-part limit
inline constexpr std::size_t kMaxLocaleBytes = 35;       // BCP 47's practical bound
inline constexpr std::size_t kMaxPushTokens = 20;        // per user
inline constexpr std::size_t kMaxPushTokenBytes = 4096;  // FCM and APNs tokens are far shorter

// POST /api/v1/users. name and email are required; the rest default.
struct NewUser {
  std::string name;
  std::string email;
  std::vector<std::string> push_tokens;  // duplicates collapsed, first occurrence kept
  Preferences preferences;
  std::string locale = "en";
};

// PATCH /api/v1/users/{id}: only the fields present change; preferences merge per key;
// push_tokens, when present, replaces the whole list.
struct UserPatch {
  std::optional<std::string> name;
  std::optional<std::string> email;
  std::optional<std::string> locale;
  std::optional<std::vector<std::string>> push_tokens;
  std::optional<bool> email_enabled;
  std::optional<bool> push_enabled;
};

NewUser parse_new_user(const nlohmann::json& body);
// An empty object is refused too: a PATCH that changes nothing is most likely a mistake.
UserPatch parse_user_patch(const nlohmann::json& body);
// PUT /api/v1/users/{id}/preferences: a full replacement, both booleans required.
Preferences parse_preferences_replacement(const nlohmann::json& body);
// POST /api/v1/users/{id}/push_tokens: {"token": "..."}.
std::string parse_push_token_body(const nlohmann::json& body);

// Path parameters. parse_user_id accepts a UUID in its 8-4-4-4-12 hex form, any case,
// and returns it lowercase (as PostgreSQL prints it); otherwise 400 naming field `id`.
std::string parse_user_id(std::string_view text);
// A push token in the path; 400 naming field `token` when no valid token could look so.
std::string parse_push_token_param(std::string_view text);

// The single checks, each returning the problem or nullopt.
std::optional<std::string> name_problem(std::string_view name);
std::optional<std::string> email_problem(std::string_view email);
std::optional<std::string> locale_problem(std::string_view locale);
std::optional<std::string> push_token_problem(std::string_view token);
bool is_uuid(std::string_view text);

}  // namespace notifs::user_service
