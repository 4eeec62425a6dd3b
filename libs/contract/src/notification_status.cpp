#include "notifs/contract/notification_status.hpp"

#include <array>
#include <cstddef>
#include <limits>
#include <utility>

#include "notifs/contract/timestamp.hpp"
#include "notifs/messaging/common/json_depth.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::contract {

using messaging::common::is_uuid;
using nlohmann::json;

namespace {

constexpr std::array<std::pair<Status, std::string_view>, 6> kStatusNames{{
    {Status::queued, "queued"},
    {Status::processing, "processing"},
    {Status::retrying, "retrying"},
    {Status::delivered, "delivered"},
    {Status::failed, "failed"},
    {Status::skipped, "skipped"},
}};

// A status event is a flat object; anything deeper is refused before nlohmann builds it
// (its parser is iterative, but a deep document costs memory and recursive walks later).
constexpr std::size_t kMaxBodyDepth = 8;

// Order of the non-terminal statuses within one attempt.
int rank(Status status) {
  switch (status) {
    case Status::queued:
      return 0;
    case Status::processing:
      return 1;
    case Status::retrying:
      return 2;
    case Status::delivered:
    case Status::failed:
    case Status::skipped:
      break;
  }
  return 3;  // terminal statuses never reach the comparison
}

std::string lower_ascii(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return text;
}

// Parsed strings are valid UTF-8 (nlohmann's lexer checks), so the only things to repair
// are NUL, which PostgreSQL text refuses, and the length, cut before a continuation byte.
std::string sanitize_error(const std::string& text) {
  std::string out;
  out.reserve(text.size() < kMaxErrorBytes ? text.size() : kMaxErrorBytes);
  for (const char c : text) {
    if (c == '\0') {
      out += "\xEF\xBF\xBD";
    } else {
      out += c;
    }
  }
  if (out.size() > kMaxErrorBytes) {
    std::size_t cut = kMaxErrorBytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0U) == 0x80U) {
      --cut;
    }
    out.resize(cut);
  }
  return out;
}

// Reads `count` decimal digits at `pos`; false if any is not a digit or the text is short.
bool read_digits(std::string_view text, std::size_t pos, std::size_t count, int& value) {
  if (pos + count > text.size()) {
    return false;
  }
  value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    if (text[i] < '0' || text[i] > '9') {
      return false;
    }
    value = value * 10 + (text[i] - '0');
  }
  return true;
}

bool expect(std::string_view text, std::size_t pos, char c) {
  return pos < text.size() && text[pos] == c;
}

// RFC 3339 section 5.6 date-time. Returns nullopt on anything else.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text) {
  using namespace std::chrono;
  int y = 0;
  int mo = 0;
  int d = 0;
  int h = 0;
  int mi = 0;
  int s = 0;
  if (!read_digits(text, 0, 4, y) || !expect(text, 4, '-') || !read_digits(text, 5, 2, mo) ||
      !expect(text, 7, '-') || !read_digits(text, 8, 2, d) ||
      !(expect(text, 10, 'T') || expect(text, 10, 't')) || !read_digits(text, 11, 2, h) ||
      !expect(text, 13, ':') || !read_digits(text, 14, 2, mi) || !expect(text, 16, ':') ||
      !read_digits(text, 17, 2, s)) {
    return std::nullopt;
  }
  const year_month_day date{year{y}, month{static_cast<unsigned>(mo)},
                            day{static_cast<unsigned>(d)}};
  if (!date.ok() || h > 23 || mi > 59 || s > 59) {
    return std::nullopt;
  }
  std::size_t pos = 19;
  nanoseconds fraction{0};
  if (expect(text, pos, '.')) {
    ++pos;
    std::size_t digits = 0;
    std::int64_t value = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (digits == 9) {
        return std::nullopt;  // finer than system_clock can hold; no producer sends it
      }
      value = value * 10 + (text[pos] - '0');
      ++digits;
      ++pos;
    }
    if (digits == 0) {
      return std::nullopt;
    }
    for (std::size_t i = digits; i < 9; ++i) {
      value *= 10;
    }
    fraction = nanoseconds{value};
  }
  minutes offset{0};
  if (expect(text, pos, 'Z') || expect(text, pos, 'z')) {
    ++pos;
  } else if (expect(text, pos, '+') || expect(text, pos, '-')) {
    const bool east = text[pos] == '+';
    int oh = 0;
    int om = 0;
    if (!read_digits(text, pos + 1, 2, oh) || !expect(text, pos + 3, ':') ||
        !read_digits(text, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = hours{oh} + minutes{om};
    if (!east) {
      offset = -offset;
    }
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != text.size()) {
    return std::nullopt;
  }
  // Local time minus its offset is UTC.
  const auto local = sys_days{date} + hours{h} + minutes{mi} + seconds{s};
  const auto utc_seconds = local - offset;
  // libstdc++'s system_clock counts nanoseconds in 64 bits: about +-292 years around 1970.
  constexpr auto kLimit = duration_cast<seconds>(system_clock::duration::max()) - seconds{1};
  if (utc_seconds.time_since_epoch() > kLimit || utc_seconds.time_since_epoch() < -kLimit) {
    return std::nullopt;
  }
  return system_clock::time_point{
      duration_cast<system_clock::duration>(utc_seconds.time_since_epoch() + fraction)};
}

[[noreturn]] void refuse(std::string field, const std::string& problem) {
  throw StatusEventError(std::move(field), problem);
}

}  // namespace

std::string_view to_string(Status status) {
  for (const auto& [value, name] : kStatusNames) {
    if (value == status) {
      return name;
    }
  }
  return "unknown";  // only reachable through a cast of an out-of-range integer
}

std::optional<Status> status_from_string(std::string_view text) {
  for (const auto& [value, name] : kStatusNames) {
    if (name == text) {
      return value;
    }
  }
  return std::nullopt;
}

bool is_terminal(Status status) {
  return status == Status::delivered || status == Status::failed || status == Status::skipped;
}

StatusEventError::StatusEventError(std::string field, const std::string& problem)
    : std::invalid_argument(field.empty() ? "status event: " + problem
                                          : "status event: " + field + " " + problem),
      field_(std::move(field)) {}

json status_event_to_json(const StatusEvent& event) {
  if (!is_uuid(event.notification_id)) {
    throw std::invalid_argument("status event: notification_id '" + event.notification_id +
                                "' is not a UUID");
  }
  if (event.attempt > kMaxAttempt) {
    throw std::invalid_argument("status event: attempt " + std::to_string(event.attempt) +
                                " is above " + std::to_string(kMaxAttempt));
  }
  return json{{"notification_id", lower_ascii(event.notification_id)},
              {"status", std::string(to_string(event.status))},
              {"attempt", event.attempt},
              {"error", event.error.empty() ? json(nullptr) : json(event.error)},
              {"timestamp", format_rfc3339_ms(event.at)}};
}

std::string encode_status_event(const StatusEvent& event) {
  // replace: an error text copied from a provider may hold invalid UTF-8, which must not
  // turn a state change into an exception.
  return status_event_to_json(event).dump(-1, ' ', false, json::error_handler_t::replace);
}

StatusEvent decode_status_event(std::string_view body) {
  if (messaging::common::json_nesting_depth(body, kMaxBodyDepth) > kMaxBodyDepth) {
    refuse("", "is nested deeper than " + std::to_string(kMaxBodyDepth) + " levels");
  }
  json document = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    refuse("", "is not valid JSON");
  }
  return status_event_from_json(document);
}

StatusEvent status_event_from_json(const json& body) {
  if (!body.is_object()) {
    refuse("", std::string("must be a JSON object, not ") + body.type_name());
  }
  StatusEvent event;

  const auto id = body.find("notification_id");
  if (id == body.end() || id->is_null()) {
    refuse("notification_id", "is missing");
  }
  if (!id->is_string() || !is_uuid(id->get_ref<const std::string&>())) {
    refuse("notification_id", "must be a UUID");
  }
  event.notification_id = lower_ascii(id->get<std::string>());

  const auto status = body.find("status");
  if (status == body.end() || status->is_null()) {
    refuse("status", "is missing");
  }
  if (!status->is_string()) {
    refuse("status", "must be a string");
  }
  const auto parsed_status = status_from_string(status->get_ref<const std::string&>());
  if (!parsed_status) {
    refuse("status",
           "must be one of queued, processing, retrying, delivered, failed, skipped");
  }
  event.status = *parsed_status;

  const auto attempt = body.find("attempt");
  if (attempt == body.end() || attempt->is_null()) {
    refuse("attempt", "is missing");
  }
  // Parsed non-negative integers are unsigned, negative ones signed, and anything beyond
  // 64 bits or written with a fraction or exponent a float; a json built in C++ from an
  // int is signed even when it is not negative.
  std::uint64_t attempt_value = 0;
  if (attempt->is_number_unsigned()) {
    attempt_value = attempt->get<std::uint64_t>();
  } else if (attempt->is_number_integer()) {
    const auto signed_value = attempt->get<std::int64_t>();
    if (signed_value < 0) {
      refuse("attempt", "must not be negative");
    }
    attempt_value = static_cast<std::uint64_t>(signed_value);
  } else if (attempt->is_number_float() && attempt->get<double>() < 0) {
    refuse("attempt", "must not be negative");
  } else if (attempt->is_number_float() && attempt->get<double>() > kMaxAttempt) {
    refuse("attempt", "must be at most " + std::to_string(kMaxAttempt));
  } else {
    refuse("attempt", "must be an integer");
  }
  if (attempt_value > kMaxAttempt) {
    refuse("attempt", "must be at most " + std::to_string(kMaxAttempt));
  }
  event.attempt = static_cast<std::uint32_t>(attempt_value);

  const auto error = body.find("error");
  if (error != body.end() && !error->is_null()) {
    if (!error->is_string()) {
      refuse("error", "must be a string or null");
    }
    event.error = sanitize_error(error->get_ref<const std::string&>());
  }

  const auto timestamp = body.find("timestamp");
  if (timestamp == body.end() || timestamp->is_null()) {
    refuse("timestamp", "is missing");
  }
  if (!timestamp->is_string()) {
    refuse("timestamp", "must be an RFC 3339 string");
  }
  const auto at = parse_rfc3339(timestamp->get_ref<const std::string&>());
  if (!at) {
    refuse("timestamp", "must be an RFC 3339 date-time such as 2024-05-01T12:34:56.789Z");
  }
  event.at = *at;
  return event;
}

bool should_apply(const StoredStatus& current, const StatusEvent& event) {
  if (is_terminal(current.status)) {
    return false;
  }
  if (is_terminal(event.status)) {
    return true;
  }
  if (event.attempt != current.attempt) {
    return event.attempt > current.attempt;
  }
  return rank(event.status) > rank(current.status);
}

}  // namespace notifs::contract
