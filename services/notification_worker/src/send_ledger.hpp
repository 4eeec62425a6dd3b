#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "notifs/storage/pg_pool.hpp"

namespace notifs::worker {

// A completed send, recorded before the message is acked (issue 6: no double sends).
struct SentRecord {
  std::string notification_id;  // UUID; the primary key
  std::string channel;          // "email" | "push"
  std::string provider;         // which provider took it ("smtp-1", the push host)
  std::string detail;           // the provider's answer ("250 2.0.0 Ok: queued as ...")
  std::uint32_t attempt = 1;
};

enum class SentLookup { sent, not_sent, unavailable };

struct SendLedgerSettings {
  std::size_t writers = 2;       // connections that run batches concurrently
  std::size_t max_batch = 256;   // operations per statement
  // A record that fails (PostgreSQL down) is retried this long before the callback is told
  // it failed: a send that went out must not be forgotten because of a short outage.
  std::chrono::milliseconds record_patience{30000};
  std::chrono::milliseconds retry_interval{250};
};

// What the writers have done so far (for tests and metrics).
struct SendLedgerStats {
  std::uint64_t batches = 0;     // batches taken by writers, retries of records included
  std::uint64_t statements = 0;  // statements sent to PostgreSQL (one per batch run)
  std::uint64_t operations = 0;  // lookups and records they carried
};

// The worker's durable memory of completed sends: table sent_notifications in the worker's
// own database (migrations in services/notification_worker/migrations, embedded: see
// worker_migrations.hpp). Lookups and records from concurrent deliveries are batched into
// one statement per batch (`= ANY($1::uuid[])` reads, an INSERT from unnest() of typed
// arrays with ON CONFLICT DO NOTHING), so the cost per message stays far below one round
// trip.
//
// Failures come back as values, never as exceptions:
// - lookup: `unavailable` when PostgreSQL cannot answer now (no connection, a lost one, a
//   statement timeout); never retried, the caller decides (the worker waits in a retry tier
//   rather than risk a double send).
// - record: PostgreSQL being unavailable is retried every retry_interval for up to
//   record_patience from the call; only then is the callback told `false`. An error that
//   waiting cannot fix (the server rejects the statement) is `false` at once.
// - Input the table cannot hold, checked before anything is queued: a notification_id that
//   is not a UUID (either case is accepted; stored lower case), a channel other than
//   "email" or "push", an attempt above 2^31-1. Answered at once, on the caller's thread:
//   lookup `unavailable` (the ledger cannot vouch for that id, so nothing should be sent
//   on its word), record `false`; logged as an error. Text fields are stored as valid
//   UTF-8 (invalid bytes replaced) and detail is cut to 1000 bytes.
//
// Thread-safe. Callbacks run on a writer thread (after the INSERT committed, for records),
// except the immediate answers above; they must not block: they hold up the writer's next
// batch. The destructor runs what is queued once more without waiting for retry intervals
// (failing what fails then), so every callback is called exactly once, and joins. The pool
// must outlive the ledger.
class SendLedger {
 public:
  using LookupCallback = std::function<void(SentLookup result)>;
  using RecordCallback = std::function<void(bool recorded)>;

  SendLedger(storage::PgPool& pool, SendLedgerSettings settings = {});
  ~SendLedger();
  SendLedger(const SendLedger&) = delete;
  SendLedger& operator=(const SendLedger&) = delete;

  void lookup(std::string notification_id, LookupCallback callback);
  // Recording the same id twice is not an error: the first record stays, both callbacks
  // are told `true`.
  void record(SentRecord record, RecordCallback callback);

  SendLedgerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::worker
