#pragma once

// The pure decisions of ServiceClient: what may be retried, what the breaker and the retry
// budget count as a failure, how long to wait. No I/O and no clock of its own, so the
// whole table is unit-tested.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <system_error>

#include "notifs/messaging/http/message.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"

namespace notifs::messaging::http::detail {

// The header's default: GET, HEAD, PUT, DELETE, OPTIONS and POST (made safe by the shared
// X-Request-ID) may be sent again; PATCH and unknown methods may not. `explicit_choice`
// (ClientRequest::retryable) wins when set.
bool request_is_retryable(Method method, std::optional<bool> explicit_choice);

// 5xx and 429 may succeed later. 501 and 505 say the upstream cannot ever do this request,
// so sending it again only adds load.
bool status_is_retryable(unsigned status);

// Errors a later attempt can cure: the network and timeouts. A protocol error (garbage or
// an oversized body) would come back the same; circuit_open and shutting_down are final.
bool error_is_retryable(std::error_code error);

// What the breaker is told about one attempt that got a response. 5xx is a failure.
// 429 is a success: the upstream is alive and answering fast, it only asks this caller to
// slow down. Opening the breaker on it would turn one caller's quota into an outage for
// every request of this process; Retry-After and the retry budget do the slowing down.
// Other 4xx are the caller's mistakes, and say the upstream is healthy.
resilience::CallOutcome breaker_outcome(unsigned status);

// What the retry budget is told: every attempt that is worth retrying is a failed one
// (429 included: a throttled upstream is exactly when retries must not multiply).
inline bool counts_against_budget(unsigned status) { return status_is_retryable(status); }

// Retry-After (RFC 9110 10.2.3): delta-seconds, or an IMF-fixdate HTTP-date taken relative
// to `now` (a date in the past means 0). nullopt when malformed, so the caller falls back
// to its own backoff. Huge values saturate instead of overflowing.
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

// Everything the retry decision needs, gathered by the caller.
struct RetryInputs {
  bool request_retryable = false;  // request_is_retryable()
  bool outcome_retryable = false;  // status_is_retryable() / error_is_retryable()
  std::uint32_t attempts_made = 0;
  std::uint32_t max_attempts = 1;
  bool budget_allows = true;                         // RetryBudget::can_retry()
  std::chrono::milliseconds remaining{0};            // time left before the call's deadline
  std::optional<std::chrono::milliseconds> retry_after;  // from the response, when sent
  std::chrono::milliseconds backoff{0};              // jittered wait for the next retry
};

enum class RetryVerdict {
  retry,                // wait `wait`, then send again
  final_outcome,        // the outcome is not worth retrying (success, 4xx, protocol error)
  not_retryable,        // the request may not be repeated (PATCH, retryable = false)
  attempts_exhausted,   // max_attempts reached
  budget_exhausted,     // the retry budget is empty: an outage, do not add load
  retry_after_too_long, // the upstream asked for a wait beyond the deadline
  no_time_left,         // the backoff would end at or after the deadline
};
std::string_view to_string(RetryVerdict verdict);

struct RetryDecision {
  RetryVerdict verdict = RetryVerdict::final_outcome;
  std::chrono::milliseconds wait{0};
  bool retry() const { return verdict == RetryVerdict::retry; }
};

// Retry-After, when given and within the deadline, replaces the backoff: the upstream knows
// when it will be back better than our jitter does.
RetryDecision decide_retry(const RetryInputs& in);

}  // namespace notifs::messaging::http::detail
