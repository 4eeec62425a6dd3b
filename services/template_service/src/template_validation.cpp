#include "template_validation.hpp"

#include <algorithm>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <utility>
#include <vector>

#include "notifs/messaging/http/envelope.hpp"
#include "template_renderer.hpp"

namespace notifs::template_service {

namespace http = messaging::http;

namespace {

constexpr std::string_view kLocaleProblem = "must be a locale such as en, fr or pt-BR";
constexpr std::string_view kVersionProblem = "must be a positive integer";

class Problems {
 public:
  void add(std::string field, std::string problem) {
    problems_.push_back({std::move(field), std::move(problem)});
  }
  bool empty() const { return problems_.empty(); }
  bool has(std::string_view field) const {
    return std::any_of(problems_.begin(), problems_.end(),
                       [&](const auto& problem) { return problem.field == field; });
  }

  void throw_if_any() const {
    if (problems_.empty()) {
      return;
    }
    std::string message = "the request is invalid: ";
    for (std::size_t i = 0; i < problems_.size(); ++i) {
      message += (i == 0 ? "" : "; ") + problems_[i].field + " " + problems_[i].problem;
    }
    throw http::HttpError(400, "validation_failed", std::move(message), problems_);
  }

 private:
  std::vector<http::FieldProblem> problems_;
};

bool is_ascii_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }
char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

void refuse_unknown_fields(const nlohmann::json& body,
                           std::initializer_list<std::string_view> known, Problems& problems) {
  for (const auto& [key, value] : body.items()) {
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      problems.add(key, "is not a field of this request");
    }
  }
}

// A string field: nullopt when absent (or null, when `null_is_absent`), after recording
// a problem when it is present but not a string or contains NUL.
std::optional<std::string> string_field(const nlohmann::json& body, const std::string& name,
                                        Problems& problems, bool null_is_absent = false) {
  const auto it = body.find(name);
  if (it == body.end() || (null_is_absent && it->is_null())) {
    return std::nullopt;
  }
  if (!it->is_string()) {
    problems.add(name, std::string("must be a string, got ") + it->type_name());
    return std::nullopt;
  }
  auto text = it->get<std::string>();
  // PostgreSQL text cannot hold NUL; and no template needs one.
  if (text.find('\0') != std::string::npos) {
    problems.add(name, "must not contain NUL characters (\\u0000)");
    return std::nullopt;
  }
  return text;
}

std::optional<std::string> template_field(const nlohmann::json& body, const std::string& name,
                                          Problems& problems) {
  auto text = string_field(body, name, problems, name == "html_body");
  if (!text) {
    return std::nullopt;
  }
  if (text->empty()) {
    problems.add(name, name == "html_body" ? "must not be empty (omit it or send null for none)"
                                           : "must not be empty");
    return std::nullopt;
  }
  // Checked here already so that a 40 KiB text is not parsed as Mustache before being
  // refused for its size (the channel's exact limit is checked once the channel is known).
  if (text->size() > kMaxBodyBytes) {
    problems.add(name, "must be at most " + std::to_string(kMaxBodyBytes) + " bytes");
    return std::nullopt;
  }
  if (auto problem = template_problem(*text)) {
    problems.add(name, std::move(*problem));
    return std::nullopt;
  }
  return text;
}

ContentInput parse_content(const nlohmann::json& body, Problems& problems) {
  ContentInput input;
  input.subject = template_field(body, "subject", problems);
  input.body = template_field(body, "body", problems);
  input.html_body = template_field(body, "html_body", problems);
  input.title = template_field(body, "title", problems);
  return input;
}

std::optional<Channel> channel_field(const nlohmann::json& body, Problems& problems,
                                     bool required) {
  auto text = string_field(body, "channel", problems);
  if (!text) {
    if (required && !problems.has("channel")) {
      problems.add("channel", "is required");
    }
    return std::nullopt;
  }
  auto channel = channel_from_string(*text);
  if (!channel) {
    problems.add("channel", "must be \"email\" or \"push\"");
  }
  return channel;
}

std::string locale_field(const nlohmann::json& body, Problems& problems,
                         std::optional<std::string> (*parse)(std::string_view)) {
  auto text = string_field(body, "locale", problems, true);
  if (!text) {
    return std::string(kDefaultLocale);
  }
  auto locale = parse(*text);
  if (!locale) {
    problems.add("locale", std::string(kLocaleProblem));
    return std::string(kDefaultLocale);
  }
  return std::move(*locale);
}

// Checks that `input` holds exactly the fields of `channel`, adding problems; fills
// `content` with them.
void check_channel_fields(Channel channel, const ContentInput& input, Problems& problems,
                          TemplateContent& content) {
  auto require = [&](const std::optional<std::string>& value, std::string_view name) {
    if (!value && !problems.has(name)) {
      problems.add(std::string(name),
                   "is required for " + std::string(to_string(channel)) + " templates");
    }
  };
  auto refuse = [&](const std::optional<std::string>& value, std::string_view name) {
    if (value) {
      problems.add(std::string(name),
                   "is not a field of " + std::string(to_string(channel)) + " templates");
    }
  };
  require(input.body, "body");
  if (channel == Channel::email) {
    require(input.subject, "subject");
    refuse(input.title, "title");
    if (input.subject) {
      if (input.subject->find_first_of("\r\n") != std::string::npos) {
        problems.add("subject", "must be one line (no CR or LF)");
      } else if (count_code_points(*input.subject) > kMaxSubjectChars) {
        problems.add("subject",
                     "must be at most " + std::to_string(kMaxSubjectChars) + " characters");
      }
    }
  } else {
    require(input.title, "title");
    refuse(input.subject, "subject");
    refuse(input.html_body, "html_body");
    if (input.title && count_code_points(*input.title) > kMaxTitleChars) {
      problems.add("title", "must be at most " + std::to_string(kMaxTitleChars) + " characters");
    }
    if (input.body && input.body->size() > kMaxPushBodyBytes) {
      problems.add("body", "must be at most " + std::to_string(kMaxPushBodyBytes) +
                               " bytes for push templates");
    }
  }
  if (channel == Channel::email) {
    content.subject = input.subject.value_or("");
    content.html_body = input.html_body;
  } else {
    content.title = input.title.value_or("");
  }
  content.body = input.body.value_or("");
}

std::optional<std::int32_t> positive_int32(std::string_view text) {
  std::int32_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end || value < 1) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::size_t count_code_points(std::string_view utf8) {
  return static_cast<std::size_t>(std::count_if(utf8.begin(), utf8.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
  }));
}

bool is_valid_code(std::string_view code) {
  return !code.empty() && code.size() <= kMaxCodeBytes &&
         std::all_of(code.begin(), code.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || is_ascii_digit(c) || c == '_' || c == '.' || c == '-';
         });
}

std::optional<std::string> canonical_locale(std::string_view text) {
  // language[-Script][-REGION]: 2-3 letters, then 4 letters, then 2 letters or 3 digits.
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto sep = text.find_first_of("-_", start);
    parts.emplace_back(text.substr(start, sep == std::string_view::npos ? sep : sep - start));
    if (sep == std::string_view::npos) {
      break;
    }
    start = sep + 1;
  }
  auto all = [](const std::string& s, bool (*pred)(char)) {
    return std::all_of(s.begin(), s.end(), pred);
  };
  if (parts.size() > 3 || parts[0].size() < 2 || parts[0].size() > 3 ||
      !all(parts[0], is_ascii_alpha)) {
    return std::nullopt;
  }
  std::string out;
  for (char c : parts[0]) {
    out += ascii_lower(c);
  }
  std::size_t next = 1;
  if (next < parts.size() && parts[next].size() == 4 && all(parts[next], is_ascii_alpha)) {
    out += '-';
    out += ascii_upper(parts[next][0]);
    for (std::size_t i = 1; i < 4; ++i) {
      out += ascii_lower(parts[next][i]);
    }
    ++next;
  }
  if (next < parts.size()) {
    const auto& region = parts[next];
    if (region.size() == 2 && all(region, is_ascii_alpha)) {
      out += '-';
      out += ascii_upper(region[0]);
      out += ascii_upper(region[1]);
    } else if (region.size() == 3 && all(region, is_ascii_digit)) {
      out += '-';
      out += region;
    } else {
      return std::nullopt;
    }
    ++next;
  }
  if (next != parts.size()) {
    return std::nullopt;
  }
  return out;
}

std::optional<std::string> requested_locale(std::string_view text) {
  if (auto canonical = canonical_locale(text)) {
    return canonical;
  }
  const bool tag_like = !text.empty() && text.size() <= kMaxLocaleBytes &&
                        std::all_of(text.begin(), text.end(), [](char c) {
                          return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '_';
                        });
  if (!tag_like) {
    return std::nullopt;
  }
  return std::string(text);
}

NewTemplate parse_new_template(const nlohmann::json& body) {
  Problems problems;
  refuse_unknown_fields(
      body, {"code", "channel", "locale", "subject", "body", "html_body", "title"}, problems);
  NewTemplate result;
  if (auto code = string_field(body, "code", problems)) {
    if (is_valid_code(*code)) {
      result.code = std::move(*code);
    } else {
      problems.add("code", "must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'");
    }
  } else if (!problems.has("code")) {
    problems.add("code", "is required");
  }
  const auto channel = channel_field(body, problems, true);
  result.locale = locale_field(body, problems, canonical_locale);
  const ContentInput input = parse_content(body, problems);
  if (channel) {
    result.channel = *channel;
    check_channel_fields(*channel, input, problems, result.content);
  }
  problems.throw_if_any();
  return result;
}

NewVersion parse_new_version(const nlohmann::json& body, std::string_view code) {
  Problems problems;
  refuse_unknown_fields(
      body, {"code", "channel", "locale", "subject", "body", "html_body", "title"}, problems);
  NewVersion result;
  // Tolerated so that a client can PUT the body it POSTed, but it cannot rename.
  if (auto named = string_field(body, "code", problems); named && *named != code) {
    problems.add("code", "must be the code in the path (or be left out)");
  }
  result.channel = channel_field(body, problems, false);
  result.locale = locale_field(body, problems, canonical_locale);
  result.content = parse_content(body, problems);
  problems.throw_if_any();
  return result;
}

TemplateContent content_for_channel(Channel channel, const ContentInput& input) {
  Problems problems;
  TemplateContent content;
  check_channel_fields(channel, input, problems, content);
  problems.throw_if_any();
  return content;
}

RenderRequest parse_render_request(const nlohmann::json& body) {
  Problems problems;
  refuse_unknown_fields(body, {"locale", "version", "variables"}, problems);
  RenderRequest result;
  result.locale = locale_field(body, problems, requested_locale);
  if (const auto it = body.find("version"); it != body.end() && !it->is_null()) {
    if (it->is_number_integer() && it->get<std::int64_t>() >= 1 &&
        it->get<std::int64_t>() <= std::numeric_limits<std::int32_t>::max()) {
      result.version = static_cast<std::int32_t>(it->get<std::int64_t>());
    } else {
      problems.add("version", std::string(kVersionProblem));
    }
  }
  if (const auto it = body.find("variables"); it != body.end() && !it->is_null()) {
    if (it->is_object()) {
      result.variables = *it;
    } else {
      problems.add("variables", std::string("must be a JSON object, got ") + it->type_name());
    }
  }
  problems.throw_if_any();
  return result;
}

std::string parse_code_param(std::string_view text) {
  if (!is_valid_code(text)) {
    throw http::HttpError(400, "validation_failed", "the template code in the path is invalid",
                          {{"code", "must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'"}});
  }
  return std::string(text);
}

std::optional<std::string> parse_optional_locale_query(const http::Request& request) {
  const auto text = request.query_param("locale");
  if (!text) {
    return std::nullopt;
  }
  auto locale = requested_locale(*text);
  if (!locale) {
    throw http::HttpError(400, "validation_failed", "the locale parameter is invalid",
                          {{"locale", std::string(kLocaleProblem)}});
  }
  return locale;
}

std::string parse_locale_query(const http::Request& request) {
  return parse_optional_locale_query(request).value_or(std::string(kDefaultLocale));
}

std::optional<std::int32_t> parse_version_query(const http::Request& request) {
  const auto text = request.query_param("version");
  if (!text) {
    return std::nullopt;
  }
  auto version = positive_int32(*text);
  if (!version) {
    throw http::HttpError(400, "validation_failed", "the version parameter is invalid",
                          {{"version", std::string(kVersionProblem)}});
  }
  return version;
}

std::optional<Channel> parse_channel_query(const http::Request& request) {
  const auto text = request.query_param("channel");
  if (!text) {
    return std::nullopt;
  }
  auto channel = channel_from_string(*text);
  if (!channel) {
    throw http::HttpError(400, "validation_failed", "the channel parameter is invalid",
                          {{"channel", "must be \"email\" or \"push\""}});
  }
  return channel;
}

}  // namespace notifs::template_service
