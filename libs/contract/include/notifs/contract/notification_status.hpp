#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

// The life cycle of a notification as the gateway's ledger records it and as workers report
// it on notifications.status (CONTRACT.md): the status names, the `status.queue` message
// body, and the rule that keeps a notification from moving backwards when events arrive
// out of order or twice (at-least-once delivery). Pure functions, no I/O, thread-safe.
namespace notifs::contract {

enum class Status { queued, processing, retrying, delivered, failed, skipped };

// The contract's lower-case names: "queued", "processing", ... (also the ledger's text).
std::string_view to_string(Status status);
// Exact, case-sensitive match of a contract name; anything else is nullopt.
std::optional<Status> status_from_string(std::string_view text);
// delivered, failed and skipped end a notification: nothing moves it afterwards.
bool is_terminal(Status status);

// The largest attempt an event may carry: the ledger's `attempts` column is a PostgreSQL
// integer, and a larger value would make the UPDATE fail on every redelivery.
inline constexpr std::uint32_t kMaxAttempt = 2'147'483'647;
// A worker's error text (an SMTP reply, a provider's body) is cut to this many bytes, at a
// UTF-8 character boundary, when an event is decoded: a long error is no reason to lose the
// event, and the ledger keeps only a summary.
inline constexpr std::size_t kMaxErrorBytes = 2048;

// One state change of one notification. `attempt` counts delivery attempts (the message's
// x-attempt: 1 for the first); 0 is allowed for events that precede any attempt (queued,
// skipped). `error` is empty when there is none.
struct StatusEvent {
  std::string notification_id;  // canonical UUID, lower case
  Status status = Status::queued;
  std::uint32_t attempt = 0;
  std::string error;
  std::chrono::system_clock::time_point at;

  bool operator==(const StatusEvent&) const = default;
};

// A decoded body was not a status event. `field()` names the offending member
// ("notification_id", "status", "attempt", "error", "timestamp"), or is empty when the body
// as a whole is unusable (not JSON, not an object, nested too deep). A consumer
// dead-letters such a message: redelivering it can never succeed.
class StatusEventError : public std::invalid_argument {
 public:
  StatusEventError(std::string field, const std::string& problem);
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

// The body of a notifications.status message:
// {"notification_id", "status", "attempt", "error" (null when empty),
//  "timestamp" (RFC 3339 UTC, milliseconds, truncated)}.
// Throws std::invalid_argument when decode_status_event would refuse the result
// (notification_id not a UUID, attempt above kMaxAttempt), so a producer finds its bug
// instead of a consumer's dead-letter queue.
nlohmann::json status_event_to_json(const StatusEvent& event);
std::string encode_status_event(const StatusEvent& event);

// Parses and validates a message body. Unknown members are ignored (producers may add
// some). Throws StatusEventError only; never crashes on hostile input (deep nesting,
// huge numbers, invalid UTF-8). Decisions where the contract is silent:
// - notification_id: 8-4-4-4-12 hex digits in any case, returned lower case.
// - status: one of the six names, exactly.
// - attempt: an integral JSON number 0..kMaxAttempt; 1.0, "1", true are refused.
// - error: null, absent or a string; "" means none. NUL characters (which PostgreSQL text
//   cannot hold) become U+FFFD; longer than kMaxErrorBytes is cut (see above).
// - timestamp: RFC 3339 date-time: `T` or `t`, fraction of 1..9 digits optional, `Z`, `z`
//   or a numeric offset (converted to UTC); a leap second (:60) and instants outside
//   system_clock's range (libstdc++: nanoseconds, about years 1678..2261) are refused.
StatusEvent decode_status_event(std::string_view body);
// The same checks on a document parsed elsewhere.
StatusEvent status_event_from_json(const nlohmann::json& body);

// What the ledger holds for a notification now.
struct StoredStatus {
  Status status = Status::queued;
  std::uint32_t attempt = 0;
};

// Whether `event` may replace `current`, so that late and duplicate events never move a
// notification backwards:
// - a terminal current status never changes (the first terminal event wins);
// - otherwise a terminal event always applies: nothing can follow it;
// - between non-terminal statuses the later one is the greater (attempt, rank), rank
//   queued < processing < retrying: a retrying of attempt N is followed by the processing
//   of attempt N + 1, and a late processing of attempt N never overwrites retrying of N;
// - an event equal to the current state (a duplicate delivery) is not applied.
bool should_apply(const StoredStatus& current, const StatusEvent& event);

// The same rule as a SQL boolean expression for
//   UPDATE notifications SET status = $2, attempts = $3, ... WHERE id = $1 AND <this>
// over the target row's columns `status` (text) and `attempts` (integer, NOT NULL), with
// $2 the event's status name and $3 its attempt. It lets the ledger apply an event in one
// statement without reading the row first; a row it does not match is a stale or duplicate
// event, and the UPDATE reports zero rows. A constant: nothing from input is spliced in.
// Equivalence with should_apply (for the six names in `status`): see the test. Beyond it,
// a `status` text that is none of the six (e.g. a claim not yet recorded as queued: the
// worker can report before the publisher's confirm is written) takes any valid event,
// whatever its attempt; a $2 that is none of the six never applies. Columns are
// unqualified: in an UPDATE ... FROM, no other table may have a `status` or `attempts`.
// The row comparison is lexicographic in PostgreSQL, like the (attempt, rank) pair here.
inline constexpr std::string_view kShouldApplySql =
    "status NOT IN ('delivered', 'failed', 'skipped') AND ("
    "$2::text IN ('delivered', 'failed', 'skipped') OR ("
    "$2::text IN ('queued', 'processing', 'retrying') AND ("
    "status NOT IN ('queued', 'processing', 'retrying') OR "
    "($3::integer, CASE $2::text WHEN 'queued' THEN 0 WHEN 'processing' THEN 1 "
    "WHEN 'retrying' THEN 2 END) > "
    "(attempts, CASE status WHEN 'queued' THEN 0 WHEN 'processing' THEN 1 "
    "WHEN 'retrying' THEN 2 END))))";

}  // namespace notifs::contract
