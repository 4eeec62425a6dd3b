#include "http/client_policy.hpp"

#include <array>
#include <charconv>
#include <limits>

namespace notifs::messaging::http::detail {
namespace {

using std::chrono::milliseconds;

// One day: nobody waits longer inside a call, and it keeps the arithmetic far from overflow.
constexpr milliseconds kRetryAfterCap{24LL * 3600 * 1000};

bool parse_fixed_digits(std::string_view text, std::size_t pos, std::size_t count, int& out) {
  if (pos + count > text.size()) return false;
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) {
    const char c = text[i];
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

// "Sun, 06 Nov 1994 08:49:37 GMT": the only date form senders may generate (RFC 9110 5.6.7).
std::optional<std::chrono::system_clock::time_point> parse_imf_fixdate(std::string_view s) {
  static constexpr std::array<std::string_view, 7> kDays{"Mon", "Tue", "Wed", "Thu",
                                                         "Fri", "Sat", "Sun"};
  static constexpr std::array<std::string_view, 12> kMonths{"Jan", "Feb", "Mar", "Apr",
                                                            "May", "Jun", "Jul", "Aug",
                                                            "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29) return std::nullopt;
  bool day_ok = false;
  for (auto d : kDays) day_ok = day_ok || s.substr(0, 3) == d;
  if (!day_ok || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  int day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!parse_fixed_digits(s, 5, 2, day) || !parse_fixed_digits(s, 12, 4, year) ||
      !parse_fixed_digits(s, 17, 2, hour) || !parse_fixed_digits(s, 20, 2, minute) ||
      !parse_fixed_digits(s, 23, 2, second)) {
    return std::nullopt;
  }
  unsigned month = 0;
  for (unsigned i = 0; i < kMonths.size(); ++i) {
    if (s.substr(8, 3) == kMonths[i]) month = i + 1;
  }
  if (month == 0 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{month},
                                         std::chrono::day{static_cast<unsigned>(day)}};
  if (!date.ok()) return std::nullopt;
  return std::chrono::sys_days{date} + std::chrono::hours{hour} + std::chrono::minutes{minute} +
         std::chrono::seconds{second};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool request_is_retryable(Method method, std::optional<bool> explicit_choice) {
  if (explicit_choice) return *explicit_choice;
  switch (method) {
    case Method::get:
    case Method::head:
    case Method::put:
    case Method::delete_:
    case Method::options:
    case Method::post:
      return true;
    case Method::patch:
    case Method::other:
      return false;
  }
  return false;
}

bool status_is_retryable(unsigned status) {
  if (status == 429) return true;
  return status >= 500 && status <= 599 && status != 501 && status != 505;
}

bool error_is_retryable(std::error_code error) {
  if (error.category() != client_category()) return false;
  switch (static_cast<ClientErrc>(error.value())) {
    case ClientErrc::connect_failed:
    case ClientErrc::connection_lost:
    case ClientErrc::deadline_exceeded:
      return true;
    case ClientErrc::circuit_open:
    case ClientErrc::protocol_error:
    case ClientErrc::shutting_down:
      return false;
  }
  return false;
}

resilience::CallOutcome breaker_outcome(unsigned status) {
  return status >= 500 ? resilience::CallOutcome::failure : resilience::CallOutcome::success;
}

std::optional<milliseconds> parse_retry_after(std::string_view value,
                                              std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (value.find_first_not_of("0123456789") == std::string_view::npos) {
    std::uint64_t seconds = 0;
    const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range) return kRetryAfterCap;
    if (ec != std::errc{} || ptr != value.data() + value.size()) return std::nullopt;
    const auto cap_seconds = static_cast<std::uint64_t>(kRetryAfterCap.count() / 1000);
    if (seconds >= cap_seconds) return kRetryAfterCap;
    return milliseconds{static_cast<milliseconds::rep>(seconds) * 1000};
  }
  const auto when = parse_imf_fixdate(value);
  if (!when) return std::nullopt;
  if (*when <= now) return milliseconds{0};
  const auto wait = std::chrono::ceil<milliseconds>(*when - now);
  return wait > kRetryAfterCap ? kRetryAfterCap : wait;
}

std::string_view to_string(RetryVerdict verdict) {
  switch (verdict) {
    case RetryVerdict::retry: return "retry";
    case RetryVerdict::final_outcome: return "final outcome";
    case RetryVerdict::not_retryable: return "request not retryable";
    case RetryVerdict::attempts_exhausted: return "attempts exhausted";
    case RetryVerdict::budget_exhausted: return "retry budget exhausted";
    case RetryVerdict::retry_after_too_long: return "Retry-After beyond the deadline";
    case RetryVerdict::no_time_left: return "no time left before the deadline";
  }
  return "unknown";
}

RetryDecision decide_retry(const RetryInputs& in) {
  if (!in.outcome_retryable) return {RetryVerdict::final_outcome, {}};
  if (!in.request_retryable) return {RetryVerdict::not_retryable, {}};
  if (in.attempts_made >= in.max_attempts) return {RetryVerdict::attempts_exhausted, {}};
  if (!in.budget_allows) return {RetryVerdict::budget_exhausted, {}};
  if (in.retry_after) {
    // Equal to the deadline still leaves no time for the attempt itself.
    if (*in.retry_after >= in.remaining) return {RetryVerdict::retry_after_too_long, {}};
    return {RetryVerdict::retry, *in.retry_after};
  }
  if (in.backoff >= in.remaining) return {RetryVerdict::no_time_left, {}};
  return {RetryVerdict::retry, in.backoff};
}

}  // namespace notifs::messaging::http::detail
