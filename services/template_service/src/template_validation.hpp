#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "notifs/messaging/http/message.hpp"
#include "template_model.hpp"

// Request bodies, path and query parameters of template_service, parsed into typed inputs.
// Each parse_* collects every problem of a request before it throws, so that a client
// fixes a request in one round: messaging::http::HttpError 400 `validation_failed` with
// one {"field","problem"} per bad field. Unknown fields are problems too (a typo such as
// "subjct" is refused rather than silently dropped). A template text must compile as
// Mustache (template_problem()). Pure functions, thread-safe.
namespace notifs::template_service {

inline constexpr std::size_t kMaxCodeBytes = 64;
inline constexpr std::size_t kMaxSubjectChars = 998;     // RFC 5322's line length, in code points
inline constexpr std::size_t kMaxBodyBytes = 32 * 1024;  // email body and html_body
inline constexpr std::size_t kMaxTitleChars = 256;       // push title, code points
inline constexpr std::size_t kMaxPushBodyBytes = 4 * 1024;  // FCM refuses larger messages anyway
inline constexpr std::size_t kMaxLocaleBytes = 35;          // BCP 47's practical bound

// The template fields of a request body, each checked on its own (a string without NUL,
// compiles as Mustache) but not yet against a channel.
struct ContentInput {
  std::optional<std::string> subject;
  std::optional<std::string> body;
  std::optional<std::string> html_body;  // JSON null counts as absent
  std::optional<std::string> title;
};

// POST /api/v1/templates.
struct NewTemplate {
  std::string code;
  Channel channel = Channel::email;
  std::string locale{kDefaultLocale};
  TemplateContent content;
};
NewTemplate parse_new_template(const nlohmann::json& body);

// PUT /api/v1/templates/{code}: the fields are checked against the code's channel once it
// is known (content_for_channel()).
struct NewVersion {
  std::string locale{kDefaultLocale};
  std::optional<Channel> channel;  // when the body names one: must be the code's
  ContentInput content;
};
NewVersion parse_new_version(const nlohmann::json& body, std::string_view code);

// Email needs subject and body (html_body optional), push needs title and body; a field
// of the other channel, or over that channel's size limit, is a problem. Throws 400.
TemplateContent content_for_channel(Channel channel, const ContentInput& input);

// POST /api/v1/templates/{code}/render.
struct RenderRequest {
  std::string locale{kDefaultLocale};
  std::optional<std::int32_t> version;
  nlohmann::json variables = nlohmann::json::object();
};
RenderRequest parse_render_request(const nlohmann::json& body);

// The `{code}` path segment; 400 naming field `code` when it cannot be a code.
std::string parse_code_param(std::string_view text);
// ?locale= (default en) and ?version= (absent: the newest) of GET /templates/{code}.
std::string parse_locale_query(const messaging::http::Request& request);
std::optional<std::string> parse_optional_locale_query(const messaging::http::Request& request);
std::optional<std::int32_t> parse_version_query(const messaging::http::Request& request);
// ?channel= of the list; absent means both.
std::optional<Channel> parse_channel_query(const messaging::http::Request& request);

// The single checks (also used by the unit tests).
bool is_valid_code(std::string_view code);
// `en`, `fr`, `pt-BR`, `zh-Hant-TW`, `es-419` (and `pt_br`, `PT-br`...) in their canonical
// case, or nullopt. Stored locales are always canonical.
std::optional<std::string> canonical_locale(std::string_view text);
// A locale asked for (not stored): canonical when it has that shape; any other tag of
// letters, digits, '-' and '_' up to kMaxLocaleBytes is kept as it is, matches nothing
// stored and so falls back to `en` (a user's unusual but valid locale never turns a
// render into a 400); nullopt for anything else.
std::optional<std::string> requested_locale(std::string_view text);
std::size_t count_code_points(std::string_view utf8);

}  // namespace notifs::template_service
