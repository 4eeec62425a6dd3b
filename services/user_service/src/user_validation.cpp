#include "user_validation.hpp"

#include <algorithm>
#include <initializer_list>
#include <unordered_set>
#include <utility>

#include "notifs/messaging/http/envelope.hpp"

namespace notifs::user_service {

namespace http = messaging::http;

namespace {

// The next code point of `text` at `pos` (advancing pos), or nullopt for a malformed,
// overlong or surrogate sequence. nlohmann's parser already refuses invalid UTF-8, so
// this matters only for text that did not come through it (path parameters).
std::optional<char32_t> next_code_point(std::string_view text, std::size_t& pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  std::size_t length = 0;
  char32_t value = 0;
  char32_t minimum = 0;
  if (lead < 0x80) {
    ++pos;
    return lead;
  } else if ((lead & 0xE0) == 0xC0) {
    length = 2;
    value = lead & 0x1F;
    minimum = 0x80;
  } else if ((lead & 0xF0) == 0xE0) {
    length = 3;
    value = lead & 0x0F;
    minimum = 0x800;
  } else if ((lead & 0xF8) == 0xF0) {
    length = 4;
    value = lead & 0x07;
    minimum = 0x10000;
  } else {
    return std::nullopt;
  }
  if (pos + length > text.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char next = byte(pos + i);
    if ((next & 0xC0) != 0x80) {
      return std::nullopt;
    }
    value = (value << 6) | (next & 0x3F);
  }
  if (value < minimum || value > 0x10FFFF || (value >= 0xD800 && value <= 0xDFFF)) {
    return std::nullopt;
  }
  pos += length;
  return value;
}

bool is_control(char32_t c) { return c < 0x20 || (c >= 0x7F && c <= 0x9F); }

// White space as Unicode's White_Space property has it, plus the zero-width characters
// that render as nothing: a name made only of these would look blank.
bool is_blank(char32_t c) {
  switch (c) {
    case U' ':
    case U'\t':
    case U'\n':
    case U'\v':
    case U'\f':
    case U'\r':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x200B:
    case 0x200C:
    case 0x200D:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x2060:
    case 0x3000:
    case 0xFEFF:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_ascii_space_or_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte <= 0x20 || byte == 0x7F;
}

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool has_nul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

[[noreturn]] void refuse(std::vector<http::FieldProblem> problems) {
  throw http::HttpError(400, "validation_failed", "request has invalid fields",
                        std::move(problems));
}

// Walks one JSON object, noting each problem against the field's name.
class BodyReader {
 public:
  explicit BodyReader(const nlohmann::json& object, std::string prefix = {})
      : object_(object), prefix_(std::move(prefix)) {}

  // Names at most kMaxReported unknown fields: a body can hold thousands.
  void allow_only(std::initializer_list<std::string_view> known) {
    constexpr std::size_t kMaxReported = 20;
    std::size_t unknown = 0;
    for (const auto& item : object_.items()) {
      if (std::find(known.begin(), known.end(), item.key()) == known.end() &&
          ++unknown <= kMaxReported) {
        problem(item.key(), "is not a known field");
      }
    }
  }

  bool has(std::string_view key) const { return object_.contains(key); }

  // nullptr (and a problem) when absent-but-required or not a string.
  const std::string* string(std::string_view key, bool required) {
    const auto it = object_.find(key);
    if (it == object_.end()) {
      if (required) {
        problem(key, "is required");
      }
      return nullptr;
    }
    if (!it->is_string()) {
      problem(key, std::string("must be a string, got ") + it->type_name());
      return nullptr;
    }
    return it->get_ptr<const std::string*>();
  }

  std::optional<bool> boolean(std::string_view key, bool required) {
    const auto it = object_.find(key);
    if (it == object_.end()) {
      if (required) {
        problem(key, "is required");
      }
      return std::nullopt;
    }
    if (!it->is_boolean()) {
      problem(key, std::string("must be a boolean, got ") + it->type_name());
      return std::nullopt;
    }
    return it->get<bool>();
  }

  const nlohmann::json* value(std::string_view key) const {
    const auto it = object_.find(key);
    return it == object_.end() ? nullptr : &*it;
  }

  // The text when present and `check(text)` finds no problem; else records the problem
  // against `key` and returns nullopt.
  template <typename Check>
  std::optional<std::string> checked(std::string_view key, const std::string* text, Check check) {
    if (text == nullptr) {
      return std::nullopt;
    }
    if (auto bad = check(*text)) {
      problem(key, std::move(*bad));
      return std::nullopt;
    }
    return *text;
  }

  void problem(std::string_view key, std::string text) {
    problems_.push_back({field(key), std::move(text)});
  }
  std::string field(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  std::vector<http::FieldProblem>& problems() { return problems_; }

 private:
  const nlohmann::json& object_;
  std::string prefix_;
  std::vector<http::FieldProblem> problems_;
};

// `push_tokens`: an array of valid tokens, duplicates collapsed (first kept), at most
// kMaxPushTokens distinct ones.
std::optional<std::vector<std::string>> read_push_tokens(BodyReader& reader) {
  const nlohmann::json* value = reader.value("push_tokens");
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_array()) {
    reader.problem("push_tokens",
                   std::string("must be an array of strings, got ") + value->type_name());
    return std::nullopt;
  }
  std::vector<std::string> tokens;
  std::unordered_set<std::string_view> seen;
  // A 64 KiB body can hold thousands of bad entries; the first few say enough.
  std::size_t bad_items = 0;
  const auto bad_item = [&](std::size_t i, std::string problem) {
    if (++bad_items <= kMaxPushTokens) {
      reader.problem("push_tokens[" + std::to_string(i) + "]", std::move(problem));
    }
  };
  for (std::size_t i = 0; i < value->size(); ++i) {
    const auto& item = (*value)[i];
    if (!item.is_string()) {
      bad_item(i, std::string("must be a string, got ") + item.type_name());
      continue;
    }
    const auto& token = item.get_ref<const std::string&>();
    if (auto bad = push_token_problem(token)) {
      bad_item(i, std::move(*bad));
      continue;
    }
    if (seen.insert(token).second) {
      tokens.push_back(token);
    }
  }
  if (bad_items > 0) {
    return std::nullopt;
  }
  if (tokens.size() > kMaxPushTokens) {
    reader.problem("push_tokens", "must hold at most " + std::to_string(kMaxPushTokens) +
                                      " distinct tokens, got " + std::to_string(tokens.size()));
    return std::nullopt;
  }
  return tokens;
}

// `preferences`: an object with optional booleans `email` and `push` (both required when
// `full`). Fields are named "preferences.email" etc. (or bare when `prefix` is empty).
struct PreferenceValues {
  std::optional<bool> email;
  std::optional<bool> push;
};

std::optional<PreferenceValues> read_preferences(const nlohmann::json& object,
                                                 const std::string& prefix, bool full,
                                                 std::vector<http::FieldProblem>& problems) {
  BodyReader reader(object, prefix);
  reader.allow_only({"email", "push"});
  PreferenceValues values;
  values.email = reader.boolean("email", full);
  values.push = reader.boolean("push", full);
  if (!reader.problems().empty()) {
    problems.insert(problems.end(), reader.problems().begin(), reader.problems().end());
    return std::nullopt;
  }
  return values;
}

}  // namespace

std::optional<std::string> name_problem(std::string_view name) {
  if (name.empty()) {
    return "must not be empty";
  }
  if (has_nul(name)) {
    return "must not contain NUL characters";
  }
  // A code point is at most 4 bytes: beyond this the name is too long whatever it holds,
  // and a 60 KB name is refused without decoding it.
  if (name.size() > 4 * kMaxNameChars) {
    return "must be at most " + std::to_string(kMaxNameChars) + " characters";
  }
  std::size_t characters = 0;
  bool blank = true;
  for (std::size_t pos = 0; pos < name.size();) {
    const auto c = next_code_point(name, pos);
    if (!c) {
      return "must be valid UTF-8";
    }
    if (is_control(*c)) {
      return "must not contain control characters";
    }
    blank = blank && is_blank(*c);
    ++characters;
  }
  if (characters > kMaxNameChars) {
    return "must be at most " + std::to_string(kMaxNameChars) + " characters";
  }
  if (blank) {
    return "must not be only whitespace";
  }
  return std::nullopt;
}

std::optional<std::string> email_problem(std::string_view email) {
  if (email.empty()) {
    return "must not be empty";
  }
  if (has_nul(email)) {
    return "must not contain NUL characters";
  }
  if (email.size() > kMaxEmailBytes) {
    return "must be at most " + std::to_string(kMaxEmailBytes) + " bytes";
  }
  if (std::any_of(email.begin(), email.end(), is_ascii_space_or_control)) {
    return "must not contain whitespace or control characters";
  }
  const auto at = email.find('@');
  if (at == std::string_view::npos || email.find('@', at + 1) != std::string_view::npos) {
    return "must contain exactly one '@'";
  }
  const auto local = email.substr(0, at);
  const auto domain = email.substr(at + 1);
  if (local.empty()) {
    return "must have a local part before '@'";
  }
  if (local.size() > kMaxEmailLocalBytes) {
    return "local part must be at most " + std::to_string(kMaxEmailLocalBytes) + " bytes";
  }
  if (domain.find('.') == std::string_view::npos || domain.front() == '.' || domain.back() == '.' ||
      domain.find("..") != std::string_view::npos) {
    return "must have a domain with a dot after '@', e.g. example.com";
  }
  for (std::size_t pos = 0; pos < email.size();) {
    if (!next_code_point(email, pos)) {
      return "must be valid UTF-8";
    }
  }
  return std::nullopt;
}

std::optional<std::string> locale_problem(std::string_view locale) {
  static constexpr const char* kShape =
      "must be a language tag such as en, fr or pt-BR (2-3 letters, optional -subtags)";
  if (locale.empty() || locale.size() > kMaxLocaleBytes) {
    return kShape;
  }
  std::size_t pos = 0;
  while (pos < locale.size() && is_ascii_alpha(locale[pos])) {
    ++pos;
  }
  if (pos < 2 || pos > 3) {
    return kShape;
  }
  while (pos < locale.size()) {
    if (locale[pos] != '-') {
      return kShape;
    }
    const std::size_t start = ++pos;
    while (pos < locale.size() && (is_ascii_alpha(locale[pos]) || is_ascii_digit(locale[pos]))) {
      ++pos;
    }
    if (pos == start || pos - start > 8) {
      return kShape;
    }
  }
  return std::nullopt;
}

std::optional<std::string> push_token_problem(std::string_view token) {
  if (token.empty()) {
    return "must not be empty";
  }
  if (token.size() > kMaxPushTokenBytes) {
    return "must be at most " + std::to_string(kMaxPushTokenBytes) + " bytes";
  }
  if (std::any_of(token.begin(), token.end(), is_ascii_space_or_control)) {
    return "must not contain whitespace or control characters";
  }
  for (std::size_t pos = 0; pos < token.size();) {
    if (!next_code_point(token, pos)) {
      return "must be valid UTF-8";
    }
  }
  return std::nullopt;
}

bool is_uuid(std::string_view text) {
  if (text.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash_here = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_here ? text[i] != '-' : !is_hex(text[i])) {
      return false;
    }
  }
  return true;
}

std::string parse_user_id(std::string_view text) {
  if (!is_uuid(text)) {
    refuse({{"id", "must be a UUID"}});
  }
  std::string id(text);
  std::transform(id.begin(), id.end(), id.begin(), [](char c) {
    return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return id;
}

std::string parse_push_token_param(std::string_view text) {
  if (auto bad = push_token_problem(text)) {
    refuse({{"token", std::move(*bad)}});
  }
  return std::string(text);
}

NewUser parse_new_user(const nlohmann::json& body) {
  BodyReader reader(body);
  reader.allow_only({"name", "email", "push_tokens", "preferences", "locale"});
  NewUser user;
  const auto name = reader.checked("name", reader.string("name", true), name_problem);
  const auto email = reader.checked("email", reader.string("email", true), email_problem);
  const auto locale = reader.checked("locale", reader.string("locale", false), locale_problem);
  auto tokens = read_push_tokens(reader);
  std::optional<PreferenceValues> preferences;
  if (const auto* value = reader.value("preferences")) {
    if (!value->is_object()) {
      reader.problem("preferences", std::string("must be an object, got ") + value->type_name());
    } else {
      preferences = read_preferences(*value, "preferences", false, reader.problems());
    }
  }
  if (!reader.problems().empty()) {
    refuse(std::move(reader.problems()));
  }
  user.name = *name;
  user.email = *email;
  if (locale) {
    user.locale = *locale;
  }
  if (tokens) {
    user.push_tokens = std::move(*tokens);
  }
  if (preferences) {
    user.preferences.email = preferences->email.value_or(true);
    user.preferences.push = preferences->push.value_or(true);
  }
  return user;
}

UserPatch parse_user_patch(const nlohmann::json& body) {
  BodyReader reader(body);
  reader.allow_only({"name", "email", "push_tokens", "preferences", "locale"});
  if (body.empty()) {
    reader.problem("body",
                   "must name at least one of name, email, push_tokens, preferences, locale");
  }
  UserPatch patch;
  patch.name = reader.checked("name", reader.string("name", false), name_problem);
  patch.email = reader.checked("email", reader.string("email", false), email_problem);
  patch.locale = reader.checked("locale", reader.string("locale", false), locale_problem);
  patch.push_tokens = read_push_tokens(reader);
  if (const auto* value = reader.value("preferences")) {
    if (!value->is_object()) {
      reader.problem("preferences", std::string("must be an object, got ") + value->type_name());
    } else if (auto preferences =
                   read_preferences(*value, "preferences", false, reader.problems())) {
      patch.email_enabled = preferences->email;
      patch.push_enabled = preferences->push;
    }
  }
  if (!reader.problems().empty()) {
    refuse(std::move(reader.problems()));
  }
  return patch;
}

Preferences parse_preferences_replacement(const nlohmann::json& body) {
  std::vector<http::FieldProblem> problems;
  const auto values = read_preferences(body, "", true, problems);
  if (!values) {
    refuse(std::move(problems));
  }
  return Preferences{*values->email, *values->push};
}

std::string parse_push_token_body(const nlohmann::json& body) {
  BodyReader reader(body);
  reader.allow_only({"token"});
  const auto token = reader.checked("token", reader.string("token", true), push_token_problem);
  if (!reader.problems().empty()) {
    refuse(std::move(reader.problems()));
  }
  return *token;
}

}  // namespace notifs::user_service
