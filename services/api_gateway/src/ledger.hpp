#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "notification_request.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/runtime/pagination.hpp"
#include "notifs/storage/pg_pool.hpp"

// The gateway's notifications ledger (migrations/0001_create_notifications.sql): the
// idempotency claim written before a publish, its confirmation or release afterwards, the
// status events of workers, and the reads of GET and list.
//
// Writes are asynchronous and batched across concurrent requests: `writers` threads share
// one queue; each takes up to `max_batch` queued operations of one kind and runs them as
// one transaction of one or two statements (the rows travel as a single jsonb parameter),
// so the ledger costs a round trip per batch, not per request. Every callback runs on a
// writer thread after COMMIT, or with the error as a value (storage::StorageUnavailable,
// storage::StorageInDoubt, a pqxx error); every operation of a failed batch gets the
// batch's error. Callbacks must not block for long: they hold up the writer's next batch.
//
// Reads (find, list) block the calling thread on a pooled connection: call them from a
// worker thread (Router Execution::blocking), never from an io thread.
//
// Thread-safety: all members are thread-safe. The pool must outlive the ledger. The
// destructor runs what is queued (so every callback is called exactly once) and joins.
namespace notifs::api_gateway {

// The ledger records the contract's status vocabulary as it is.
using contract::should_apply;
using contract::Status;
using contract::status_from_string;
using contract::StatusEvent;
using contract::StoredStatus;

struct LedgerSettings {
  // Threads, each on one pool lease at a time. One is the default: with every statement an
  // index probe per row, one writer keeps up (bench/gateway.sh: 7,057 accepted/s with one,
  // 6,925 with two) and its batches never wait on each other's row locks (p99 at 2,000/s:
  // 13 ms with one, 32 ms with two).
  std::size_t writers = 1;
  std::size_t max_batch = 256;                        // operations per statement at most
  std::chrono::milliseconds pending_takeover{30000};  // a pending row older than this is abandoned
};

// What claim() writes: a `pending` row that reserves (api_key_id, request_id).
struct NewNotification {
  std::string notification_id;  // canonical UUID, lower case, chosen by the gateway
  std::string api_key_id;       // digest of the API key, never the key
  std::string request_id;
  std::string fingerprint;  // request_fingerprint()
  std::string user_id;      // canonical UUID
  Channel notification_type = Channel::email;
  std::string template_code;
  int priority = kDefaultPriority;
  nlohmann::json metadata = nlohmann::json::object();
};

// A row as GET shows it (CONTRACT.md), plus what a replay needs.
struct NotificationRecord {
  std::string notification_id;
  std::string request_id;
  std::string user_id;
  Channel notification_type = Channel::email;
  std::string template_code;
  // Meaningless while `pending` is true (a claim not yet confirmed or released).
  Status status = Status::queued;
  bool pending = false;
  std::uint32_t attempts = 0;
  std::optional<std::string> last_error;
  std::string created_at;  // RFC 3339 UTC, milliseconds
  std::string updated_at;
  std::string fingerprint;
  std::optional<std::string> reason;  // why it was skipped
};

struct ClaimResult {
  enum class Outcome {
    claimed,      // the row is ours, pending: publish, then confirm or release
    replay,       // same request answered before: `existing` is its record
    conflict,     // same request_id (per key) with another fingerprint: 409
    in_progress,  // same request, still pending in another request: not answered yet
  };
  Outcome outcome = Outcome::claimed;
  // The row now holding (api_key_id, request_id); for `claimed`, only notification_id
  // and request_id are filled, and notification_id is the one to publish under: the
  // claim's own, or that of a pending row older than pending_takeover (left by a gateway
  // that died mid-request: no answer was given for it) which this claim took over,
  // whatever that row's fingerprint, rewriting it with this request.
  NotificationRecord existing;
};

// The what() of an exception held by pointer; "unknown error" for a non-std exception.
std::string describe_error(const std::exception_ptr& error);

// A completed write: `error` set means the write did not happen (or, for StorageInDoubt,
// may have); `value` is then default.
template <typename T>
struct LedgerResult {
  std::exception_ptr error;
  T value{};
  bool ok() const { return !error; }
  // The error's what() (for logs and reasons); empty when ok().
  std::string describe() const { return describe_error(error); }
};

struct LedgerStats {
  std::uint64_t batches = 0;     // transactions run by writers
  std::uint64_t statements = 0;  // statements inside them
  std::uint64_t operations = 0;  // claims, confirms, releases and events they carried
};

struct NotificationFilter {
  std::optional<std::string> user_id;  // canonical UUID
  std::optional<Status> status;
};

struct NotificationPage {
  std::vector<NotificationRecord> items;  // newest first
  std::int64_t total = 0;                 // matching rows on all pages
};

class Ledger {
 public:
  using ClaimCallback = std::function<void(LedgerResult<ClaimResult>)>;
  // true: the row changed (confirmed, released, event applied); false: it was not in the
  // state the operation needs (already confirmed or moved by a worker, gone, stale event).
  using DoneCallback = std::function<void(LedgerResult<bool>)>;

  Ledger(storage::PgPool& pool, LedgerSettings settings);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Reserves (api_key_id, request_id) as a pending row, or says who holds it.
  void claim(NewNotification notification, ClaimCallback callback);
  // pending -> queued | skipped (with `reason`). Another status is std::invalid_argument.
  void confirm(std::string notification_id, Status status, std::string reason,
               DoneCallback callback);
  // Deletes a pending row, so the client's retry with the same request_id is not blocked.
  void release(std::string notification_id, DoneCallback callback);
  // Applies a worker's event unless it would move the row backwards (should_apply).
  // Events for one notification in one batch are folded first; the event that is not the
  // fold's result reports false.
  void apply_status(StatusEvent event, DoneCallback callback);

  // Blocking reads. Throw storage errors. Pending rows are returned too (`pending` set;
  // a status filter of `queued` matches them): the intake answers 202 on the broker's ack
  // and records `queued` just after, so a client may read before that write lands. The
  // price: a request still waiting for the broker shows for those milliseconds, and goes
  // if it ends 503.
  std::optional<NotificationRecord> find(const std::string& notification_id);
  NotificationPage list(const NotificationFilter& filter, const runtime::PageRequest& page);

  LedgerStats stats() const;

 private:
  struct ClaimOp {
    NewNotification row;
    ClaimCallback callback;
  };
  struct ConfirmOp {
    std::string notification_id;
    Status status;
    std::string reason;
    DoneCallback callback;
  };
  struct ReleaseOp {
    std::string notification_id;
    DoneCallback callback;
  };
  struct StatusOp {
    StatusEvent event;
    DoneCallback callback;
  };
  using Op = std::variant<ClaimOp, ConfirmOp, ReleaseOp, StatusOp>;

  void enqueue(Op op);
  void writer_loop();
  void run_claims(std::vector<ClaimOp>& ops);
  void run_confirms(std::vector<ConfirmOp>& ops);
  void run_releases(std::vector<ReleaseOp>& ops);
  // Runs one write whose RETURNING lists the ids it changed, then answers each op whether
  // its id was among them (or with the error, for every op of the batch).
  template <typename WriteOp>
  void answer_by_changed_ids(std::vector<WriteOp>& ops, const std::string& sql,
                             const std::string& parameter);
  void run_statuses(std::vector<StatusOp>& ops);

  storage::PgPool& pool_;
  LedgerSettings settings_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Op> queue_;
  bool stopping_ = false;
  std::atomic<std::uint64_t> batches_{0};
  std::atomic<std::uint64_t> statements_{0};
  std::atomic<std::uint64_t> operations_{0};
  std::vector<std::thread> threads_;
};

}  // namespace notifs::api_gateway
