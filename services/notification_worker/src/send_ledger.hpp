#pragma once

#include <chrono>
#include <cstddef>
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

// The worker's durable memory of completed sends: table sent_notifications in the worker's
// own database (migrations in services/notification_worker/migrations, embedded). Lookups
// and records from concurrent deliveries are batched into one statement per batch
// (`= ANY($1)` reads, multi-row INSERT .. ON CONFLICT DO NOTHING), so the cost per message
// stays far below one round trip.
//
// Thread-safe. Callbacks run on a writer thread, after commit for records; they must not
// block. The destructor finishes queued work (or fails it when PostgreSQL is gone) and joins.
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::worker
