#include "send_ledger.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::worker {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kDetailLimit = 1000;
constexpr std::size_t kProviderLimit = 200;

// Each statement is its own transaction (no BEGIN/COMMIT round trips). Running one twice,
// as the pool does after a connection broke, changes nothing: the read reads, and the
// insert skips rows that are already there.
// One primary key probe per id: for `notification_id = ANY($1)` the planner scans the
// whole table whenever it guesses that cheaper (a batch of some dozens against a table of
// some thousands), and the LATERAL subquery's LIMIT keeps it from flattening this into a
// join it could plan the same way.
constexpr const char* kLookupSql =
    "SELECT s.notification_id::text FROM unnest($1::uuid[]) AS x(id) CROSS JOIN LATERAL "
    "(SELECT notification_id FROM sent_notifications WHERE notification_id = x.id LIMIT 1) s";
// Duplicate ids inside one batch are fine: DO NOTHING skips the second like any conflict.
constexpr const char* kRecordSql =
    "INSERT INTO sent_notifications (notification_id, channel, provider, detail, attempt) "
    "SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::integer[]) "
    "ON CONFLICT (notification_id) DO NOTHING";

std::shared_ptr<spdlog::logger> log() { return messaging::common::logger("worker"); }

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// The length of the valid UTF-8 sequence at text[at], 0 when it is not one. PostgreSQL
// refuses overlong forms, surrogates and code points above U+10FFFF, so they count as
// invalid too.
std::size_t utf8_sequence(std::string_view text, std::size_t at) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char c = byte(at);
  std::size_t length = 0;
  if (c < 0x80) {
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    length = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    length = 3;
  } else if (c >= 0xF0 && c <= 0xF4) {
    length = 4;
  } else {
    return 0;
  }
  if (at + length > text.size()) {
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(at + i) & 0xC0) != 0x80) {
      return 0;
    }
  }
  const unsigned char second = byte(at + 1);
  if ((c == 0xE0 && second < 0xA0) || (c == 0xED && second >= 0xA0) ||
      (c == 0xF0 && second < 0x90) || (c == 0xF4 && second >= 0x90)) {
    return 0;
  }
  return length;
}

// Provider answers are arbitrary bytes; one invalid byte would make PostgreSQL reject the
// whole batch. Invalid bytes become '?', NULs go, and the text is cut at `limit` bytes on
// a character boundary.
std::string storable_text(std::string_view text, std::size_t limit) {
  std::string out;
  out.reserve(std::min(text.size(), limit));
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t length = utf8_sequence(text, at);
    const std::string_view piece = length == 0 ? std::string_view("?") : text.substr(at, length);
    at += std::max<std::size_t>(length, 1);
    if (piece == std::string_view("\0", 1)) {
      continue;
    }
    if (out.size() + piece.size() > limit) {
      break;
    }
    out += piece;
  }
  return out;
}

// A PostgreSQL array literal ({"a","b"}) of the items: every element quoted, so commas,
// braces, spaces and the word NULL need nothing more than escaping quotes and backslashes.
template <typename Items, typename Text>
std::string array_literal(const Items& items, Text text_of) {
  std::string out = "{";
  for (const auto& item : items) {
    if (out.size() > 1) {
      out += ',';
    }
    out += '"';
    for (const char c : text_of(item)) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// Whether waiting can fix what went wrong: no connection, a lost one, a statement timeout.
// In doubt is retried too: the insert is idempotent.
bool worth_retrying(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const storage::StorageUnavailable&) {
    return true;
  } catch (const storage::StorageInDoubt&) {
    return true;
  } catch (...) {
    return false;
  }
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& thrown) {
    return thrown.what();
  } catch (...) {
    return "unknown error";
  }
}

template <typename Callback, typename Value>
void deliver(Callback& callback, Value value) noexcept {
  if (!callback) {
    return;
  }
  try {
    callback(value);
  } catch (const std::exception& error) {
    log()->error("send ledger callback threw err={}", error.what());
  } catch (...) {
    log()->error("send ledger callback threw a non-exception");
  }
}

// During an outage every batch fails; one line a second says so without flooding the log.
class FailureLog {
 public:
  void report(std::string_view what, const std::string& error) {
    const auto now = SteadyClock::now();
    const auto since_epoch = now.time_since_epoch().count();
    auto last = last_.load(std::memory_order_relaxed);
    ++failures_;
    if (last != 0 && now - SteadyClock::time_point(SteadyClock::duration(last)) < std::chrono::seconds{1}) {
      return;
    }
    if (!last_.compare_exchange_strong(last, since_epoch)) {
      return;  // another writer logs this second
    }
    log()->warn("send ledger {} failed batches={} err={}", what, failures_.exchange(0), error);
  }

 private:
  std::atomic<SteadyClock::rep> last_{0};  // when the last line was written; 0: never
  std::atomic<std::uint64_t> failures_{0};  // failed batches since then
};

}  // namespace

struct SendLedger::Impl {
  struct LookupOp {
    std::string notification_id;
    LookupCallback callback;
  };
  struct RecordOp {
    SentRecord row;
    RecordCallback callback;
    SteadyClock::time_point deadline;    // patience ends: the callback is told false
    SteadyClock::time_point not_before;  // a retry waits until then
  };

  Impl(storage::PgPool& pg, SendLedgerSettings ledger_settings)
      : pool(pg), settings(ledger_settings) {
    settings.writers = std::max<std::size_t>(settings.writers, 1);
    settings.max_batch = std::max<std::size_t>(settings.max_batch, 1);
    settings.retry_interval = std::max(settings.retry_interval, std::chrono::milliseconds{1});
    threads.reserve(settings.writers);
    for (std::size_t i = 0; i < settings.writers; ++i) {
      threads.emplace_back([this] { writer_loop(); });
    }
  }

  ~Impl() {
    {
      const std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
    for (auto& thread : threads) {
      thread.join();
    }
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void lookup(std::string notification_id, LookupCallback callback) {
    if (!messaging::common::is_uuid(notification_id)) {
      log()->error("send ledger lookup refused: notification_id '{}' is not a UUID",
                   storable_text(notification_id, 64));
      deliver(callback, SentLookup::unavailable);
      return;
    }
    {
      const std::lock_guard lock(mutex);
      if (!stopping) {
        lookups.push_back(LookupOp{lower(std::move(notification_id)), std::move(callback)});
        wake.notify_one();
        return;
      }
    }
    deliver(callback, SentLookup::unavailable);  // a use during destruction
  }

  void record(SentRecord row, RecordCallback callback) {
    const char* refusal = nullptr;
    if (!messaging::common::is_uuid(row.notification_id)) {
      refusal = "notification_id is not a UUID";
    } else if (row.channel != "email" && row.channel != "push") {
      refusal = "channel must be email or push";
    } else if (row.attempt > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max())) {
      refusal = "attempt out of range";
    }
    if (refusal != nullptr) {
      log()->error("send ledger record refused notification_id={} channel={}: {}",
                   storable_text(row.notification_id, 64), storable_text(row.channel, 16), refusal);
      deliver(callback, false);
      return;
    }
    row.notification_id = lower(std::move(row.notification_id));
    row.provider = storable_text(row.provider, kProviderLimit);
    row.detail = storable_text(row.detail, kDetailLimit);
    const auto now = SteadyClock::now();
    {
      const std::lock_guard lock(mutex);
      if (!stopping) {
        records.push_back(RecordOp{std::move(row), std::move(callback), now + settings.record_patience, now});
        wake.notify_one();
        return;
      }
    }
    deliver(callback, false);
  }

  void writer_loop() {
    for (;;) {
      std::vector<LookupOp> lookup_batch;
      std::vector<RecordOp> record_batch;
      {
        std::unique_lock lock(mutex);
        for (;;) {
          const bool retry_due = !retries.empty() &&
                                 (stopping || retries.front().not_before <= SteadyClock::now());
          if (!lookups.empty() || !records.empty() || retry_due) {
            break;
          }
          if (stopping && retries.empty()) {
            return;  // everything queued has been answered
          }
          if (retries.empty()) {
            wake.wait(lock);
          } else {
            wake.wait_until(lock, retries.front().not_before);
          }
        }
        // Alternate kinds when both wait, so a stream of records cannot starve lookups
        // (each delivery starts with one) nor the other way round.
        const bool records_waiting = !records.empty() ||
                                     (!retries.empty() &&
                                      (stopping || retries.front().not_before <= SteadyClock::now()));
        const bool take_records = records_waiting && (lookups.empty() || records_turn);
        records_turn = !take_records;
        if (take_records) {
          const auto now = SteadyClock::now();
          while (record_batch.size() < settings.max_batch && !retries.empty() &&
                 (stopping || retries.front().not_before <= now)) {
            record_batch.push_back(std::move(retries.front()));
            retries.pop_front();
          }
          while (record_batch.size() < settings.max_batch && !records.empty()) {
            record_batch.push_back(std::move(records.front()));
            records.pop_front();
          }
        } else {
          while (lookup_batch.size() < settings.max_batch && !lookups.empty()) {
            lookup_batch.push_back(std::move(lookups.front()));
            lookups.pop_front();
          }
        }
        if (!lookups.empty() || !records.empty()) {
          wake.notify_one();  // another writer can run the next batch meanwhile
        }
      }
      batches.fetch_add(1, std::memory_order_relaxed);
      operations.fetch_add(lookup_batch.size() + record_batch.size(), std::memory_order_relaxed);
      if (!lookup_batch.empty()) {
        run_lookups(lookup_batch);
      } else {
        run_records(record_batch);
      }
    }
  }

  void run_lookups(std::vector<LookupOp>& ops) {
    const auto ids = array_literal(ops, [](const LookupOp& op) -> const std::string& {
      return op.notification_id;
    });
    std::unordered_set<std::string> found;
    try {
      found = pool.run([&](pqxx::connection_base& connection) {
        pqxx::nontransaction tx(connection);
        statements.fetch_add(1, std::memory_order_relaxed);
        std::unordered_set<std::string> sent;
        for (const auto& row : tx.exec_params(kLookupSql, ids)) {
          sent.emplace(row[0].c_str(), row[0].size());
        }
        return sent;
      });
    } catch (...) {
      lookup_failures.report("lookup", describe(std::current_exception()));
      for (auto& op : ops) {
        deliver(op.callback, SentLookup::unavailable);
      }
      return;
    }
    for (auto& op : ops) {
      deliver(op.callback,
              found.count(op.notification_id) != 0 ? SentLookup::sent : SentLookup::not_sent);
    }
  }

  void run_records(std::vector<RecordOp>& ops) {
    const auto ids = array_literal(ops, [](const RecordOp& op) -> const std::string& {
      return op.row.notification_id;
    });
    const auto channels = array_literal(ops, [](const RecordOp& op) -> const std::string& {
      return op.row.channel;
    });
    const auto providers = array_literal(ops, [](const RecordOp& op) -> const std::string& {
      return op.row.provider;
    });
    const auto details = array_literal(ops, [](const RecordOp& op) -> const std::string& {
      return op.row.detail;
    });
    const auto attempts = array_literal(ops, [](const RecordOp& op) {
      return std::to_string(op.row.attempt);
    });
    std::exception_ptr error;
    try {
      pool.run([&](pqxx::connection_base& connection) {
        pqxx::nontransaction tx(connection);
        statements.fetch_add(1, std::memory_order_relaxed);
        tx.exec_params(kRecordSql, ids, channels, providers, details, attempts);
      });
    } catch (...) {
      error = std::current_exception();
    }
    if (!error) {
      for (auto& op : ops) {
        deliver(op.callback, true);
      }
      return;
    }
    const auto what = describe(error);
    if (!worth_retrying(error)) {
      // The server refused the statement itself: waiting cannot change that.
      log()->error("send ledger record failed records={} err={}", ops.size(), what);
      for (auto& op : ops) {
        deliver(op.callback, false);
      }
      return;
    }
    record_failures.report("record", what);
    std::vector<RecordOp> expired;
    {
      const std::lock_guard lock(mutex);
      const auto now = SteadyClock::now();
      for (auto& op : ops) {
        if (stopping || now >= op.deadline) {
          expired.push_back(std::move(op));
          continue;
        }
        // One last try at the deadline itself when the interval would overshoot it.
        op.not_before = std::min(now + settings.retry_interval, op.deadline);
        const auto at = std::upper_bound(
            retries.begin(), retries.end(), op.not_before,
            [](SteadyClock::time_point when, const RecordOp& queued) { return when < queued.not_before; });
        retries.insert(at, std::move(op));
      }
    }
    wake.notify_all();  // writers waiting for a later retry recompute their wait
    if (!expired.empty()) {
      log()->error("send ledger gave up recording records={} err={}", expired.size(), what);
    }
    for (auto& op : expired) {
      deliver(op.callback, false);
    }
  }

  storage::PgPool& pool;
  SendLedgerSettings settings;

  std::mutex mutex;
  std::condition_variable wake;
  std::deque<LookupOp> lookups;  // guarded by mutex
  std::deque<RecordOp> records;  // guarded by mutex: new, due at once
  std::deque<RecordOp> retries;  // guarded by mutex: sorted by not_before
  bool records_turn = false;     // guarded by mutex
  bool stopping = false;         // guarded by mutex

  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> statements{0};
  std::atomic<std::uint64_t> operations{0};
  FailureLog lookup_failures;
  FailureLog record_failures;

  std::vector<std::thread> threads;  // last: the writers use every member above
};

SendLedger::SendLedger(storage::PgPool& pool, SendLedgerSettings settings)
    : impl_(std::make_unique<Impl>(pool, settings)) {}

SendLedger::~SendLedger() = default;

void SendLedger::lookup(std::string notification_id, LookupCallback callback) {
  impl_->lookup(std::move(notification_id), std::move(callback));
}

void SendLedger::record(SentRecord record, RecordCallback callback) {
  impl_->record(std::move(record), std::move(callback));
}

SendLedgerStats SendLedger::stats() const {
  SendLedgerStats out;
  out.batches = impl_->batches.load(std::memory_order_relaxed);
  out.statements = impl_->statements.load(std::memory_order_relaxed);
  out.operations = impl_->operations.load(std::memory_order_relaxed);
  return out;
}

}  // namespace notifs::worker
