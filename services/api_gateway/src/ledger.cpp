#include "ledger.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <pqxx/pqxx>

#include <spdlog/spdlog.h>

#include "notifs/storage/sql_time.hpp"

namespace notifs::api_gateway {

using contract::kMaxAttempt;
using contract::kShouldApplySql;

namespace {

// The columns parse_record reads, in its order, from the relation called `alias`.
std::string record_columns(const std::string& alias) {
  const std::string a = alias + ".";
  return a + "notification_id::text, " + a + "request_id, " + a + "user_id::text, " + a +
         "notification_type, " + a + "template_code, " + a + "status, " + a + "attempts, " + a +
         "last_error, " + storage::rfc3339_ms_sql(a + "created_at") + ", " + storage::rfc3339_ms_sql(a + "updated_at") +
         ", " + a + "fingerprint, " + a + "reason";
}

const std::string& claim_insert_sql() {
  // Duplicates inside one batch are fine: DO NOTHING skips the second like any conflict.
  static const std::string sql =
      "INSERT INTO notifications (notification_id, api_key_id, request_id, fingerprint, "
      "user_id, notification_type, template_code, priority, metadata, status) "
      "SELECT x.notification_id, x.api_key_id, x.request_id, x.fingerprint, x.user_id, "
      "x.notification_type, x.template_code, x.priority, coalesce(x.metadata, '{}'), 'pending' "
      "FROM jsonb_to_recordset($1::jsonb) AS x(notification_id uuid, api_key_id text, "
      "request_id text, fingerprint text, user_id uuid, notification_type text, "
      "template_code text, priority smallint, metadata jsonb) "
      "ON CONFLICT (api_key_id, request_id) DO NOTHING RETURNING notification_id::text";
  return sql;
}

// Every multi-row write locks its rows in notification_id order before changing them.
// Without it a status batch and a confirm batch over the same rows, on two connections,
// could each hold a row the other needs: a deadlock PostgreSQL breaks after
// deadlock_timeout by failing one of them.
// The plan is spelled out, because the planner's own choice goes wrong: it takes the
// batch (a recordset it guesses at 100 rows) as too big for index probes on a table of
// some thousands of rows, and then scanned the whole table, twice, for every batch. Here
// the batch, sorted, drives a LATERAL probe of the primary key per row (its locking clause
// keeps the planner from flattening it into a join of its own choosing), which locks the
// rows in that order. Follows a CTE `x` of the batch; `locked` is x's rows whose
// notification exists.
constexpr std::string_view kLockInOrder =
    "locked AS MATERIALIZED (SELECT b.* "
    "FROM (SELECT * FROM x ORDER BY notification_id) b CROSS JOIN LATERAL "
    "(SELECT 1 FROM notifications t "
    "WHERE t.notification_id = b.notification_id FOR UPDATE) l) ";

// The write then finds its rows by key as an array (an index scan whatever the table's
// size: the planner guesses an array parameter at 10 elements), so that it sees them in
// its snapshot and rechecks each against the newest version it locked. (Finding them by
// the locked version's ctid instead loses every row a concurrent writer changed while
// this one waited for its lock: that version is newer than the snapshot.)
std::string in_locked(const std::string& alias) {
  return alias + ".notification_id = ANY(ARRAY(SELECT notification_id FROM locked))";
}

const std::string& claim_lookup_sql() {
  static const std::string sql =
      "SELECT n.api_key_id, n.request_id, "
      "clock_timestamp() - n.created_at < $2::bigint * interval '1 millisecond', " +
      record_columns("n") +
      " FROM (SELECT DISTINCT * FROM jsonb_to_recordset($1::jsonb) "
      "AS k(api_key_id text, request_id text)) k CROSS JOIN LATERAL "
      // One probe of the idempotency key per request; LIMIT keeps the planner from turning
      // it into a scan of the table (see kLockInOrder). The key is unique anyway.
      "(SELECT * FROM notifications n "
      "WHERE n.api_key_id = k.api_key_id AND n.request_id = k.request_id LIMIT 1) n";
  return sql;
}

const std::string& takeover_sql() {
  // The age is checked again under the row lock: of two gateways taking over at once, the
  // second finds a fresh created_at and takes nothing.
  static const std::string sql =
      "WITH x AS MATERIALIZED (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r("
      "notification_id uuid, fingerprint text, user_id uuid, notification_type text, "
      "template_code text, priority smallint, metadata jsonb)), " +
      std::string(kLockInOrder) +
      "UPDATE notifications AS n SET fingerprint = x.fingerprint, user_id = x.user_id, "
      "notification_type = x.notification_type, template_code = x.template_code, "
      "priority = x.priority, metadata = coalesce(x.metadata, '{}'), "
      "created_at = clock_timestamp(), updated_at = clock_timestamp() "
      "FROM locked x WHERE " + in_locked("n") + " AND n.notification_id = x.notification_id "
      "AND n.status = 'pending' "
      "AND clock_timestamp() - n.created_at >= $2::bigint * interval '1 millisecond' "
      "RETURNING n.notification_id::text";
  return sql;
}

const std::string& confirm_sql() {
  // A worker's event may have moved the row out of pending before the confirm is written
  // (kShouldApplySql lets events apply to pending rows): then nothing is left to confirm.
  static const std::string sql =
      "WITH x AS MATERIALIZED (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r("
      "notification_id uuid, status text, reason text)), " +
      std::string(kLockInOrder) +
      "UPDATE notifications AS n SET status = x.status, reason = nullif(x.reason, ''), "
      "updated_at = clock_timestamp() "
      "FROM locked x WHERE " + in_locked("n") + " AND n.notification_id = x.notification_id "
      "AND n.status = 'pending' RETURNING n.notification_id::text";
  return sql;
}

const std::string& release_sql() {
  static const std::string sql =
      "WITH x AS MATERIALIZED (SELECT value::uuid AS notification_id "
      "FROM jsonb_array_elements_text($1::jsonb)), " +
      std::string(kLockInOrder) +
      "DELETE FROM notifications AS n WHERE " + in_locked("n") + " AND n.status = 'pending' "
      "RETURNING n.notification_id::text";
  return sql;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

const std::string& status_sql() {
  // kShouldApplySql over the recordset's columns instead of $2/$3. The recordset's columns
  // are named ev_* because the predicate's unqualified `status` and `attempts` must resolve
  // to the target row alone.
  static const std::string sql = [] {
    std::string predicate = replace_all(std::string(kShouldApplySql), "$2::text", "x.ev_status");
    predicate = replace_all(std::move(predicate), "$3::integer", "x.ev_attempt");
    return "WITH x AS MATERIALIZED (SELECT * FROM jsonb_to_recordset($1::jsonb) AS r("
           "notification_id uuid, ev_status text, ev_attempt integer, ev_error text)), " +
           std::string(kLockInOrder) +
           "UPDATE notifications SET status = x.ev_status, attempts = x.ev_attempt, "
           "last_error = coalesce(nullif(x.ev_error, ''), notifications.last_error), "
           "updated_at = clock_timestamp() "
           "FROM locked x WHERE " + in_locked("notifications") +
           " AND notifications.notification_id = x.notification_id AND (" +
           predicate + ") RETURNING notifications.notification_id::text";
  }();
  return sql;
}

const std::string& find_sql() {
  static const std::string sql = "SELECT " + record_columns("n") +
                                 " FROM notifications n WHERE n.notification_id = $1::uuid";
  return sql;
}

const std::string& list_sql() {
  // The total rides along with the page (a LEFT JOIN keeps it when the page is empty), so
  // a list is one statement and one snapshot. created_at DESC, notification_id matches the
  // indexes and keeps pages stable when timestamps tie.
  static const std::string sql =
      "WITH filtered AS (SELECT * FROM notifications WHERE "
      "($1::uuid IS NULL OR user_id = $1::uuid) AND ($2::text IS NULL OR status = $2 "
      "OR ($2 = 'queued' AND status = 'pending'))), "
      "total AS (SELECT count(*) AS n FROM filtered), "
      "page AS (SELECT * FROM filtered ORDER BY created_at DESC, notification_id "
      "LIMIT $3 OFFSET $4) "
      "SELECT total.n, " +
      record_columns("page") +
      " FROM total LEFT JOIN page ON true ORDER BY page.created_at DESC, page.notification_id";
  return sql;
}

std::string text(const pqxx::field& field) { return std::string(field.c_str(), field.size()); }

std::optional<std::string> optional_text(const pqxx::field& field) {
  if (field.is_null()) {
    return std::nullopt;
  }
  return text(field);
}

NotificationRecord parse_record(const pqxx::row& row, int first) {
  NotificationRecord record;
  record.notification_id = text(row[first]);
  record.request_id = text(row[first + 1]);
  record.user_id = text(row[first + 2]);
  const auto channel = channel_from_string(row[first + 3].c_str());
  const std::string status = text(row[first + 5]);
  const auto known = status_from_string(status);
  // The table's CHECK constraints make these impossible; say what was found if not.
  if (!channel || (!known && status != "pending")) {
    throw std::runtime_error("notifications row " + record.notification_id +
                             " holds an unknown channel or status: " + text(row[first + 3]) +
                             "/" + status);
  }
  record.notification_type = *channel;
  record.template_code = text(row[first + 4]);
  record.pending = !known;
  record.status = known.value_or(Status::queued);
  record.attempts = row[first + 6].as<std::uint32_t>();
  record.last_error = optional_text(row[first + 7]);
  record.created_at = text(row[first + 8]);
  record.updated_at = text(row[first + 9]);
  record.fingerprint = text(row[first + 10]);
  record.reason = optional_text(row[first + 11]);
  return record;
}

std::unordered_set<std::string> returned_ids(const pqxx::result& result) {
  std::unordered_set<std::string> ids;
  for (const auto& row : result) {
    ids.insert(text(row[0]));
  }
  return ids;
}

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string claim_key(const std::string& api_key_id, const std::string& request_id) {
  // A NUL cannot occur in either (PostgreSQL text cannot hold it), so the pair is unambiguous.
  return api_key_id + '\0' + request_id;
}

template <typename Callback, typename Result>
void deliver(Callback& callback, Result result) noexcept {
  if (!callback) {
    return;
  }
  try {
    callback(std::move(result));
  } catch (const std::exception& error) {
    spdlog::error("ledger callback threw err={}", error.what());
  } catch (...) {
    spdlog::error("ledger callback threw a non-exception");
  }
}

std::exception_ptr invalid(const std::string& what) {
  return std::make_exception_ptr(std::invalid_argument(what));
}

}  // namespace

std::string describe_error(const std::exception_ptr& error) {
  if (!error) {
    return {};
  }
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& thrown) {
    return thrown.what();
  } catch (...) {
    return "unknown error";
  }
}

Ledger::Ledger(storage::PgPool& pool, LedgerSettings settings)
    : pool_(pool), settings_(settings) {
  settings_.writers = std::max<std::size_t>(settings_.writers, 1);
  settings_.max_batch = std::max<std::size_t>(settings_.max_batch, 1);
  threads_.reserve(settings_.writers);
  for (std::size_t i = 0; i < settings_.writers; ++i) {
    threads_.emplace_back([this] { writer_loop(); });
  }
}

Ledger::~Ledger() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& thread : threads_) {
    thread.join();
  }
}

void Ledger::claim(NewNotification notification, ClaimCallback callback) {
  if (!is_uuid(notification.notification_id) || !is_uuid(notification.user_id)) {
    deliver(callback, LedgerResult<ClaimResult>{invalid("claim: notification_id and user_id "
                                                        "must be UUIDs"),
                                                {}});
    return;
  }
  notification.notification_id = lower(std::move(notification.notification_id));
  notification.user_id = lower(std::move(notification.user_id));
  enqueue(ClaimOp{std::move(notification), std::move(callback)});
}

void Ledger::confirm(std::string notification_id, Status status, std::string reason,
                     DoneCallback callback) {
  if (status != Status::queued && status != Status::skipped) {
    deliver(callback, LedgerResult<bool>{invalid("confirm: status must be queued or skipped, not " +
                                                 std::string(to_string(status))),
                                         false});
    return;
  }
  if (!is_uuid(notification_id)) {
    deliver(callback, LedgerResult<bool>{invalid("confirm: not a UUID: " + notification_id), false});
    return;
  }
  enqueue(ConfirmOp{lower(std::move(notification_id)), status, std::move(reason),
                    std::move(callback)});
}

void Ledger::release(std::string notification_id, DoneCallback callback) {
  if (!is_uuid(notification_id)) {
    deliver(callback, LedgerResult<bool>{invalid("release: not a UUID: " + notification_id), false});
    return;
  }
  enqueue(ReleaseOp{lower(std::move(notification_id)), std::move(callback)});
}

void Ledger::apply_status(StatusEvent event, DoneCallback callback) {
  if (!is_uuid(event.notification_id) || event.attempt > kMaxAttempt) {
    deliver(callback, LedgerResult<bool>{invalid("apply_status: bad notification_id or attempt"),
                                         false});
    return;
  }
  event.notification_id = lower(std::move(event.notification_id));
  enqueue(StatusOp{std::move(event), std::move(callback)});
}

void Ledger::enqueue(Op op) {
  {
    const std::lock_guard lock(mutex_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      wake_.notify_one();
      return;
    }
  }
  // Only reachable while the ledger is being destroyed: a use-after-stop by the owner.
  std::visit(
      [](auto& o) {
        o.callback({std::make_exception_ptr(std::runtime_error("ledger is shutting down")), {}});
      },
      op);
}

void Ledger::writer_loop() {
  for (;;) {
    std::vector<Op> batch;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;  // stopping, and everything queued has been run
      }
      // One kind per batch (one statement shape); the others keep their order.
      const auto kind = queue_.front().index();
      std::deque<Op> rest;
      while (!queue_.empty()) {
        if (queue_.front().index() == kind && batch.size() < settings_.max_batch) {
          batch.push_back(std::move(queue_.front()));
        } else {
          rest.push_back(std::move(queue_.front()));
        }
        queue_.pop_front();
      }
      queue_.swap(rest);
      if (!queue_.empty()) {
        wake_.notify_one();  // another writer can take the next batch meanwhile
      }
    }
    auto unpack = [&batch]<typename T>(std::vector<T>& out) {
      out.reserve(batch.size());
      for (auto& op : batch) {
        out.push_back(std::move(std::get<T>(op)));
      }
    };
    batches_.fetch_add(1, std::memory_order_relaxed);
    operations_.fetch_add(batch.size(), std::memory_order_relaxed);
    switch (batch.front().index()) {
      case 0: {
        std::vector<ClaimOp> ops;
        unpack(ops);
        run_claims(ops);
        break;
      }
      case 1: {
        std::vector<ConfirmOp> ops;
        unpack(ops);
        run_confirms(ops);
        break;
      }
      case 2: {
        std::vector<ReleaseOp> ops;
        unpack(ops);
        run_releases(ops);
        break;
      }
      default: {
        std::vector<StatusOp> ops;
        unpack(ops);
        run_statuses(ops);
        break;
      }
    }
  }
}

namespace {

// A claim that holds the row `notification_id` (pending) for `request_id`.
ClaimResult claimed_result(const std::string& notification_id, const std::string& request_id) {
  ClaimResult claimed;
  claimed.outcome = ClaimResult::Outcome::claimed;
  claimed.existing.notification_id = notification_id;
  claimed.existing.request_id = request_id;
  claimed.existing.pending = true;
  return claimed;
}

}  // namespace

void Ledger::run_claims(std::vector<ClaimOp>& ops) {
  std::vector<std::optional<ClaimResult>> results;
  try {
    pool_.run([&](pqxx::connection_base& connection) {
      results.assign(ops.size(), std::nullopt);
      // Each statement is its own transaction: nothing here needs two of them to commit
      // together (every decision rests on the unique key), and one round trip per
      // statement instead of BEGIN ... COMMIT is a third of the claim's cost. A row this
      // claim inserted is visible to concurrent duplicates at once instead of making their
      // INSERT wait for our COMMIT.
      pqxx::nontransaction tx(connection);
      std::vector<std::size_t> open(ops.size());
      for (std::size_t i = 0; i < open.size(); ++i) {
        open[i] = i;
      }
      // A row found by the INSERT's conflict can be released before the lookup reads it;
      // then the claim is tried again (a new statement sees the DELETE), a bounded number
      // of times.
      for (int round = 0; round < 3 && !open.empty(); ++round) {
        auto rows = nlohmann::json::array();
        for (const auto i : open) {
          const auto& n = ops[i].row;
          rows.push_back({{"notification_id", n.notification_id},
                          {"api_key_id", n.api_key_id},
                          {"request_id", n.request_id},
                          {"fingerprint", n.fingerprint},
                          {"user_id", n.user_id},
                          {"notification_type", to_string(n.notification_type)},
                          {"template_code", n.template_code},
                          {"priority", n.priority},
                          {"metadata", n.metadata}});
        }
        statements_.fetch_add(1, std::memory_order_relaxed);
        const auto inserted = returned_ids(tx.exec_params(claim_insert_sql(), rows.dump()));
        std::vector<std::size_t> lost;
        auto keys = nlohmann::json::array();
        for (const auto i : open) {
          const auto& n = ops[i].row;
          if (inserted.count(n.notification_id) != 0) {
            results[i] = claimed_result(n.notification_id, n.request_id);
          } else {
            lost.push_back(i);
            keys.push_back({{"api_key_id", n.api_key_id}, {"request_id", n.request_id}});
          }
        }
        open.clear();
        if (lost.empty()) {
          break;
        }
        statements_.fetch_add(1, std::memory_order_relaxed);
        const auto found = tx.exec_params(
            claim_lookup_sql(), keys.dump(),
            static_cast<std::int64_t>(settings_.pending_takeover.count()));
        std::unordered_map<std::string, std::pair<bool, NotificationRecord>> existing;
        for (const auto& row : found) {
          existing.emplace(claim_key(text(row[0]), text(row[1])),
                           std::make_pair(row[2].as<bool>(), parse_record(row, 3)));
        }
        std::vector<std::size_t> takeovers;
        std::unordered_set<std::string> taken;
        for (const auto i : lost) {
          const auto& n = ops[i].row;
          const auto it = existing.find(claim_key(n.api_key_id, n.request_id));
          if (it == existing.end()) {
            open.push_back(i);
            continue;
          }
          const auto& [young, record] = it->second;
          ClaimResult result;
          result.existing = record;
          if (record.notification_id == n.notification_id) {
            // Our own row: the pool ran this work again after the connection broke
            // behind an INSERT that had already committed. The claim is ours.
            result = claimed_result(n.notification_id, n.request_id);
          } else if (record.pending && !young) {
            // Left by a gateway that died between claim and confirm: almost always before
            // any answer was given for it (the other case, a death in the milliseconds
            // between the broker's ack and recording it, is the duplicate the README
            // admits), so this request takes the row over, whatever its body (one op per
            // row; the batch's other duplicates see it as in progress).
            if (taken.insert(record.notification_id).second) {
              takeovers.push_back(i);
              continue;
            }
            result.outcome = ClaimResult::Outcome::in_progress;
          } else if (record.fingerprint != n.fingerprint) {
            result.outcome = ClaimResult::Outcome::conflict;
          } else if (!record.pending) {
            result.outcome = ClaimResult::Outcome::replay;
          } else {
            result.outcome = ClaimResult::Outcome::in_progress;
          }
          results[i] = std::move(result);
        }
        if (!takeovers.empty()) {
          auto stale = nlohmann::json::array();
          for (const auto i : takeovers) {
            const auto& n = ops[i].row;
            stale.push_back({{"notification_id",
                              existing.at(claim_key(n.api_key_id, n.request_id))
                                  .second.notification_id},
                             {"fingerprint", n.fingerprint},
                             {"user_id", n.user_id},
                             {"notification_type", to_string(n.notification_type)},
                             {"template_code", n.template_code},
                             {"priority", n.priority},
                             {"metadata", n.metadata}});
          }
          statements_.fetch_add(1, std::memory_order_relaxed);
          const auto won = returned_ids(
              tx.exec_params(takeover_sql(), stale.dump(),
                             static_cast<std::int64_t>(settings_.pending_takeover.count())));
          for (const auto i : takeovers) {
            const auto& n = ops[i].row;
            ClaimResult result;
            result.existing = existing.at(claim_key(n.api_key_id, n.request_id)).second;
            if (won.count(result.existing.notification_id) != 0) {
              result = claimed_result(result.existing.notification_id, n.request_id);
            } else {
              result.outcome = ClaimResult::Outcome::in_progress;
            }
            results[i] = std::move(result);
          }
          takeovers.clear();
        }
      }
      // Rows that kept vanishing between INSERT and lookup: someone is still working on
      // that request_id.
      for (const auto i : open) {
        ClaimResult busy;
        busy.outcome = ClaimResult::Outcome::in_progress;
        busy.existing.request_id = ops[i].row.request_id;
        results[i] = std::move(busy);
      }
    });
  } catch (...) {
    const auto error = std::current_exception();
    for (auto& op : ops) {
      deliver(op.callback, LedgerResult<ClaimResult>{error, {}});
    }
    return;
  }
  for (std::size_t i = 0; i < ops.size(); ++i) {
    deliver(ops[i].callback, LedgerResult<ClaimResult>{nullptr, std::move(*results[i])});
  }
}

void Ledger::run_confirms(std::vector<ConfirmOp>& ops) {
  auto rows = nlohmann::json::array();
  for (const auto& op : ops) {
    rows.push_back({{"notification_id", op.notification_id},
                    {"status", to_string(op.status)},
                    {"reason", op.reason}});
  }
  answer_by_changed_ids(ops, confirm_sql(), rows.dump());
}

void Ledger::run_releases(std::vector<ReleaseOp>& ops) {
  auto ids = nlohmann::json::array();
  for (const auto& op : ops) {
    ids.push_back(op.notification_id);
  }
  answer_by_changed_ids(ops, release_sql(), ids.dump());
}

template <typename WriteOp>
void Ledger::answer_by_changed_ids(std::vector<WriteOp>& ops, const std::string& sql,
                                   const std::string& parameter) {
  std::unordered_set<std::string> changed;
  try {
    // One statement is its own transaction: without BEGIN and COMMIT the batch costs one
    // round trip instead of three. Running it twice (the pool retries a statement whose
    // connection broke) changes nothing the first run did not: each write only acts on
    // rows still in the state it expects.
    changed = pool_.run([&](pqxx::connection_base& connection) {
      pqxx::nontransaction tx(connection);
      statements_.fetch_add(1, std::memory_order_relaxed);
      return returned_ids(tx.exec_params(sql, parameter));
    });
  } catch (...) {
    const auto error = std::current_exception();
    for (auto& op : ops) {
      deliver(op.callback, LedgerResult<bool>{error, false});
    }
    return;
  }
  for (auto& op : ops) {
    deliver(op.callback, LedgerResult<bool>{nullptr, changed.count(op.notification_id) != 0});
  }
}

void Ledger::run_statuses(std::vector<StatusOp>& ops) {
  // UPDATE ... FROM with several recordset rows matching one target row applies an
  // arbitrary one, so each notification's events are folded here first: the winner is the
  // one no later event of the batch may replace.
  // The error travels separately: retrying(1, "421 later") folded with processing(2)
  // must still leave "421 later" as last_error, as applying them one by one would.
  std::unordered_map<std::string, std::size_t> winner;
  std::unordered_map<std::string, std::size_t> latest_error;
  const auto outranks = [&ops](std::size_t candidate, std::size_t current) {
    const auto& best = ops[current].event;
    return should_apply(StoredStatus{best.status, best.attempt}, ops[candidate].event);
  };
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& event = ops[i].event;
    const auto [it, fresh] = winner.emplace(event.notification_id, i);
    if (!fresh && outranks(i, it->second)) {
      it->second = i;
    }
    if (!event.error.empty()) {
      const auto [error_it, first] = latest_error.emplace(event.notification_id, i);
      if (!first && outranks(i, error_it->second)) {
        error_it->second = i;
      }
    }
  }
  std::unordered_set<std::string> applied;
  try {
    auto rows = nlohmann::json::array();
    for (const auto& [id, index] : winner) {
      const auto& event = ops[index].event;
      const auto error = latest_error.find(id);
      rows.push_back({{"notification_id", id},
                      {"ev_status", to_string(event.status)},
                      {"ev_attempt", event.attempt},
                      {"ev_error", !event.error.empty() || error == latest_error.end()
                                       ? event.error
                                       : ops[error->second].event.error}});
    }
    const auto parameter = rows.dump();
    // One statement, its own transaction (see answer_by_changed_ids); a second run finds
    // the events applied and changes nothing.
    applied = pool_.run([&](pqxx::connection_base& connection) {
      pqxx::nontransaction tx(connection);
      statements_.fetch_add(1, std::memory_order_relaxed);
      return returned_ids(tx.exec_params(status_sql(), parameter));
    });
  } catch (...) {
    const auto error = std::current_exception();
    for (auto& op : ops) {
      deliver(op.callback, LedgerResult<bool>{error, false});
    }
    return;
  }
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const auto& id = ops[i].event.notification_id;
    const bool won = winner.at(id) == i && applied.count(id) != 0;
    deliver(ops[i].callback, LedgerResult<bool>{nullptr, won});
  }
}

std::optional<NotificationRecord> Ledger::find(const std::string& notification_id) {
  if (!is_uuid(notification_id)) {
    return std::nullopt;  // no row can have it; the cast would fail the statement
  }
  return pool_.run([&](pqxx::connection_base& connection) -> std::optional<NotificationRecord> {
    pqxx::read_transaction tx(connection);
    const auto result = tx.exec_params(find_sql(), lower(notification_id));
    if (result.empty()) {
      return std::nullopt;
    }
    return parse_record(result[0], 0);
  });
}

NotificationPage Ledger::list(const NotificationFilter& filter, const runtime::PageRequest& page) {
  if (filter.user_id && !is_uuid(*filter.user_id)) {
    return {};
  }
  std::optional<std::string> user_id;
  if (filter.user_id) {
    user_id = lower(*filter.user_id);
  }
  std::optional<std::string> status;
  if (filter.status) {
    status = std::string(to_string(*filter.status));
  }
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::read_transaction tx(connection);
    const auto result = tx.exec_params(list_sql(), user_id, status, page.limit, page.offset());
    NotificationPage out;
    for (const auto& row : result) {
      out.total = row[0].as<std::int64_t>();
      if (!row[1].is_null()) {
        out.items.push_back(parse_record(row, 1));
      }
    }
    return out;
  });
}

LedgerStats Ledger::stats() const {
  LedgerStats out;
  out.batches = batches_.load(std::memory_order_relaxed);
  out.statements = statements_.load(std::memory_order_relaxed);
  out.operations = operations_.load(std::memory_order_relaxed);
  return out;
}

}  // namespace notifs::api_gateway
