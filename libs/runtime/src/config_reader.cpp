#include "notifs/runtime/config_reader.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <utility>

namespace notifs::runtime {

namespace {

constexpr std::size_t kMaxEchoedValue = 80;

char ascii_upper(char c) {
  return static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
}
char ascii_lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

// "database-url", "Database_URL" and "DATABASE_URL" all name DATABASE_URL.
std::string variable_name(std::string_view name) {
  std::string out(name);
  for (auto& c : out) {
    c = c == '-' ? '_' : ascii_upper(c);
  }
  return out;
}

bool valid_flag_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
  });
}

// A value echoed in a problem stays on one line and short: the problem becomes a single
// stderr line, and a pasted multi-kilobyte value would bury the other problems.
std::string quoted(std::string_view value, std::size_t limit = kMaxEchoedValue) {
  std::string out = "\"";
  std::size_t shown = 0;
  for (char c : value) {
    if (shown == limit) {
      out += "...";
      break;
    }
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\x%02x", byte);
      out += escape;
    } else {
      out += c;
    }
    ++shown;
  }
  out += '"';
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) {
      out.append(separator);
    }
    out += item;
  }
  return out;
}

// Decimal only: std::from_chars already refuses "+1", " 1", "0x10" and "1e3", and
// reports overflow instead of wrapping; the end check refuses trailing text.
std::optional<std::int64_t> parse_integer(std::string_view text) {
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value, 10);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

bool valid_percent_escapes(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size() || !is_hex(text[i + 1]) || !is_hex(text[i + 2])) {
        return false;
      }
      i += 2;
    }
  }
  return true;
}

bool valid_port_text(std::string_view text) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  const auto value = parse_integer(text);
  return value && *value >= 1 && *value <= 65535;
}

// One "host[:port]" or "[v6]:port" of an authority (libpq accepts a comma-separated list).
std::optional<std::string> host_problem(std::string_view entry) {
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!entry.empty() && entry.front() == '[') {
    const auto close = entry.find(']');
    if (close == std::string_view::npos) {
      return "has an unterminated IPv6 address";
    }
    host = entry.substr(1, close - 1);
    const auto after = entry.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return "has text after its IPv6 address";
      }
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const auto colon = entry.find(':');
    host = entry.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = entry.substr(colon + 1);
    }
  }
  if (host.empty()) {
    return "has no host";
  }
  if (!valid_percent_escapes(host)) {
    return "has a malformed percent escape in its host";
  }
  if (has_port && !valid_port_text(port)) {
    return "has an invalid port (must be 1..65535)";
  }
  return std::nullopt;
}

// Checks the shape scheme://[user[:password]@]host[:port][/path][?query][#fragment] by
// hand, in one linear pass per part: no regex (std::regex backtracks exponentially on
// some inputs and this text comes from outside).
std::optional<std::string> url_problem(std::string_view url,
                                       const std::vector<std::string>& schemes) {
  const std::string scheme_list = join(schemes, ", ");
  if (std::any_of(url.begin(), url.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte <= 0x20 || byte == 0x7f;
      })) {
    return "must not contain spaces or control characters";
  }
  const auto separator = url.find("://");
  if (separator == std::string_view::npos || separator == 0) {
    return "must be a URL (" + scheme_list + "://host...)";
  }
  const auto scheme = url.substr(0, separator);
  if (std::none_of(schemes.begin(), schemes.end(),
                   [&](const std::string& known) { return iequals_ascii(scheme, known); })) {
    return "scheme must be one of " + scheme_list + " (got " + quoted(scheme) + ")";
  }
  const auto rest = url.substr(separator + 3);
  const auto authority = rest.substr(0, rest.find_first_of("/?#"));
  // The last '@' ends the userinfo: a password may hold a raw '@' that its author forgot
  // to escape, while a host never contains one.
  const auto at = authority.rfind('@');
  std::string_view hosts = authority;
  if (at != std::string_view::npos) {
    if (!valid_percent_escapes(authority.substr(0, at))) {
      return "has a malformed percent escape in its user or password";
    }
    hosts = authority.substr(at + 1);
  }
  if (hosts.empty()) {
    return "has no host";
  }
  std::size_t start = 0;
  while (true) {
    const auto comma = hosts.find(',', start);
    if (auto problem = host_problem(hosts.substr(start, comma - start))) {
      return problem;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  return std::nullopt;
}

bool parse_boolean(std::string_view text, bool& out) {
  for (std::string_view yes : {"true", "1", "yes", "on"}) {
    if (iequals_ascii(text, yes)) {
      out = true;
      return true;
    }
  }
  for (std::string_view no : {"false", "0", "no", "off"}) {
    if (iequals_ascii(text, no)) {
      out = false;
      return true;
    }
  }
  return false;
}

std::string_view trim(std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) {
    return {};
  }
  const auto last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

}  // namespace

std::string mask_url_password(std::string_view url) {
  std::string out(url);
  const auto separator = out.find("://");
  if (separator == std::string::npos) {
    return out;
  }
  const auto authority_start = separator + 3;
  auto authority_end = out.find_first_of("/?#", authority_start);
  if (authority_end == std::string::npos) {
    authority_end = out.size();
  }
  const auto authority = std::string_view(out).substr(authority_start,
                                                      authority_end - authority_start);
  auto at = authority.rfind('@');
  if (at == std::string_view::npos) {
    // No '@' before the first '/', '?' or '#': either there is no user info, or its
    // password holds one of those characters unescaped. "host:5432" is the first; any
    // other text after a colon is taken for a password and masked up to the last '@'.
    // Masking too much is harmless in a printed URL, too little leaks the password.
    const auto last_at = std::string_view(out).substr(authority_start).rfind('@');
    const auto colon = authority.find(':');
    if (last_at != std::string_view::npos && colon != std::string_view::npos) {
      const auto after_colon = authority.substr(colon + 1);
      const bool is_port = !after_colon.empty() &&
                           after_colon.find_first_not_of("0123456789") == std::string_view::npos;
      if (!is_port) {
        at = last_at;
      }
    }
  }
  if (at != std::string_view::npos) {
    const auto colon = std::string_view(out).substr(authority_start, at).find(':');
    if (colon != std::string_view::npos) {
      out.replace(authority_start + colon + 1, at - colon - 1, "***");
    }
  }

  // libpq also takes the password as a query parameter.
  const auto query_start = out.find('?', authority_start);
  if (query_start == std::string::npos) {
    return out;
  }
  std::size_t position = query_start + 1;
  while (position <= out.size()) {
    auto end = out.find_first_of("&#", position);
    if (end == std::string::npos) {
      end = out.size();
    }
    const auto pair = std::string_view(out).substr(position, end - position);
    const auto equals = pair.find('=');
    if (equals != std::string_view::npos && iequals_ascii(pair.substr(0, equals), "password")) {
      out.replace(position + equals + 1, pair.size() - equals - 1, "***");
      end = position + equals + 1 + 3;
    }
    if (end >= out.size() || out[end] == '#') {
      break;
    }
    position = end + 1;
  }
  return out;
}

ConfigReader::Lookup ConfigReader::environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    // getenv needs a NUL-terminated name; environment reads happen once, at start, before
    // any thread could call setenv.
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) {
      return std::nullopt;
    }
    return std::string(value);
  };
}

ConfigReader::ConfigReader(int argc, const char* const* argv, Lookup lookup)
    : lookup_(std::move(lookup)) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view argument = argv[i] == nullptr ? std::string_view() : argv[i];
    if (argument.size() < 3 || argument.substr(0, 2) != "--") {
      problems_.push_back("unexpected argument " + quoted(argument) +
                          " (flags are --name=value or --name value)");
      continue;
    }
    const auto body = argument.substr(2);
    const auto equals = body.find('=');
    const auto spelling = body.substr(0, equals);
    if (!valid_flag_name(spelling)) {
      problems_.push_back("malformed flag " + quoted(argument));
      continue;
    }
    std::string value;
    if (equals != std::string_view::npos) {
      value = std::string(body.substr(equals + 1));
    } else if (i + 1 < argc && argv[i + 1] != nullptr &&
               std::string_view(argv[i + 1]).substr(0, 2) != "--") {
      value = argv[++i];
    } else {
      problems_.push_back("flag --" + std::string(spelling) + " needs a value");
      continue;
    }
    flags_.push_back(Flag{variable_name(spelling), std::string(spelling), std::move(value)});
  }
}

std::optional<std::string> ConfigReader::raw(std::string_view name) {
  const auto variable = variable_name(name);
  // The last flag of a name wins, like most command-line parsers; all of them count as
  // read so none is reported unknown.
  std::optional<std::string> from_flag;
  for (auto& flag : flags_) {
    if (flag.name == variable) {
      flag.used = true;
      from_flag = flag.value;
    }
  }
  // A flag overrides the environment even when empty: `--service-token=` turns auth off
  // for one run without editing the environment.
  std::optional<std::string> value = from_flag;
  if (!value && lookup_) {
    value = lookup_(variable);
  }
  if (value && value->empty()) {
    return std::nullopt;
  }
  return value;
}

void ConfigReader::record(std::string_view name, std::string printable) {
  auto variable = variable_name(name);
  for (auto& [known, value] : effective_) {
    if (known == variable) {
      value = std::move(printable);
      return;
    }
  }
  effective_.emplace_back(std::move(variable), std::move(printable));
}

void ConfigReader::problem(std::string_view name, std::string text) {
  problems_.push_back(variable_name(name) + ": " + std::move(text));
}

std::string ConfigReader::text(std::string_view name, std::string fallback) {
  auto value = raw(name).value_or(std::move(fallback));
  record(name, value);
  return value;
}

std::optional<std::string> ConfigReader::optional_text(std::string_view name) {
  auto value = raw(name);
  record(name, value ? *value : "(unset)");
  return value;
}

std::string ConfigReader::required_text(std::string_view name) {
  auto value = raw(name);
  if (!value) {
    problem(name, "is required");
    record(name, "(unset)");
    return {};
  }
  record(name, *value);
  return *value;
}

std::string ConfigReader::secret(std::string_view name, std::string fallback) {
  auto value = raw(name).value_or(std::move(fallback));
  record(name, value.empty() ? "(unset)" : "***");
  return value;
}

std::string ConfigReader::choice(std::string_view name, std::string fallback,
                                 const std::vector<std::string>& choices) {
  auto value = raw(name);
  if (!value) {
    record(name, fallback);
    return fallback;
  }
  if (std::find(choices.begin(), choices.end(), *value) == choices.end()) {
    problem(name, "must be one of " + join(choices, ", ") + " (got " + quoted(*value) + ")");
    record(name, fallback);
    return fallback;
  }
  record(name, *value);
  return *value;
}

std::uint16_t ConfigReader::port(std::string_view name, std::uint16_t fallback) {
  auto value = raw(name);
  if (!value) {
    record(name, std::to_string(fallback));
    return fallback;
  }
  const auto parsed = parse_integer(*value);
  if (!parsed || *parsed < 1 || *parsed > 65535) {
    problem(name, "must be an integer in 1..65535 (got " + quoted(*value) + ")");
    record(name, std::to_string(fallback));
    return fallback;
  }
  record(name, *value);
  return static_cast<std::uint16_t>(*parsed);
}

std::int64_t ConfigReader::integer(std::string_view name, std::int64_t fallback, std::int64_t min,
                                   std::int64_t max) {
  auto value = raw(name);
  if (!value) {
    record(name, std::to_string(fallback));
    return fallback;
  }
  const auto parsed = parse_integer(*value);
  if (!parsed || *parsed < min || *parsed > max) {
    problem(name, "must be an integer in " + std::to_string(min) + ".." + std::to_string(max) +
                      " (got " + quoted(*value) + ")");
    record(name, std::to_string(fallback));
    return fallback;
  }
  record(name, std::to_string(*parsed));
  return *parsed;
}

std::chrono::milliseconds ConfigReader::milliseconds(std::string_view name,
                                                     std::chrono::milliseconds fallback,
                                                     std::chrono::milliseconds min,
                                                     std::chrono::milliseconds max) {
  auto value = raw(name);
  if (!value) {
    record(name, std::to_string(fallback.count()));
    return fallback;
  }
  const auto parsed = parse_integer(*value);
  if (!parsed || *parsed < min.count() || *parsed > max.count()) {
    problem(name, "must be a whole number of milliseconds in " + std::to_string(min.count()) +
                      ".." + std::to_string(max.count()) + " (got " + quoted(*value) + ")");
    record(name, std::to_string(fallback.count()));
    return fallback;
  }
  record(name, std::to_string(*parsed));
  return std::chrono::milliseconds(*parsed);
}

bool ConfigReader::boolean(std::string_view name, bool fallback) {
  auto value = raw(name);
  bool result = fallback;
  if (value && !parse_boolean(*value, result)) {
    problem(name, "must be one of true, false, 1, 0, yes, no, on, off (got " + quoted(*value) +
                      ")");
    result = fallback;
  }
  record(name, result ? "true" : "false");
  return result;
}

std::string ConfigReader::url(std::string_view name, std::string fallback,
                              const std::vector<std::string>& schemes) {
  auto value = raw(name);
  if (!value) {
    if (fallback.empty()) {
      problem(name, "is required");
      record(name, "(unset)");
      return {};
    }
    value = std::move(fallback);
  }
  if (auto trouble = url_problem(*value, schemes)) {
    // The echoed URL is masked too: a problem line goes to stderr and into logs.
    problem(name, *trouble + " (got " + quoted(mask_url_password(*value)) + ")");
    record(name, mask_url_password(*value));
    return {};
  }
  record(name, mask_url_password(*value));
  return *value;
}

std::vector<std::string> ConfigReader::list(std::string_view name, bool secret) {
  std::vector<std::string> items;
  if (auto value = raw(name)) {
    std::string_view rest = *value;
    while (true) {
      const auto comma = rest.find(',');
      const auto item = trim(rest.substr(0, comma));
      if (!item.empty()) {
        items.emplace_back(item);
      }
      if (comma == std::string_view::npos) {
        break;
      }
      rest.remove_prefix(comma + 1);
    }
  }
  if (items.empty()) {
    record(name, "(unset)");
  } else if (secret) {
    // How many keys are configured is worth seeing; what they are is not.
    record(name, join(std::vector<std::string>(items.size(), "***"), ","));
  } else {
    record(name, join(items, ","));
  }
  return items;
}

messaging::common::LoggingSettings ConfigReader::logging(std::string service) {
  messaging::common::LoggingSettings settings;
  settings.service = std::move(service);
  if (auto level = raw("LOG_LEVEL")) {
    if (messaging::common::parse_log_level(*level, settings.level)) {
      record("LOG_LEVEL", *level);
    } else {
      problem("LOG_LEVEL", "must be one of trace, debug, info, warn, error (got " +
                               quoted(*level) + ")");
      record("LOG_LEVEL", "info");
    }
  } else {
    record("LOG_LEVEL", "info");
  }
  const auto format = choice("LOG_FORMAT", "text", {"json", "text"});
  settings.format = format == "json" ? messaging::common::LogFormat::json
                                     : messaging::common::LogFormat::text;
  return settings;
}

void ConfigReader::finish() const {
  auto all = problems_;
  for (const auto& flag : flags_) {
    if (!flag.used) {
      all.push_back("unknown flag --" + flag.spelling);
    }
  }
  if (!all.empty()) {
    throw ConfigError(join(all, "; "));
  }
}

std::string ConfigReader::effective_line() const {
  std::string out;
  for (const auto& [name, value] : effective_) {
    if (!out.empty()) {
      out += ' ';
    }
    out += name;
    out += '=';
    // Quoted only when needed, so the common line stays easy to read and still splits
    // unambiguously on spaces.
    const bool plain = !value.empty() && std::none_of(value.begin(), value.end(), [](char c) {
      const auto byte = static_cast<unsigned char>(c);
      return byte <= 0x20 || byte == 0x7f || c == '"' || c == '\\';
    });
    out += plain ? value : quoted(value, value.size());
  }
  return out;
}

}  // namespace notifs::runtime
