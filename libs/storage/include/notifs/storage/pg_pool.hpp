#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

// Forward declarations only: pqxx::connection_base and friends. Code that runs queries
// includes <pqxx/pqxx> itself, in its .cpp.
#include <pqxx/types.hxx>

namespace prometheus {
class Registry;
}

namespace notifs::storage {

struct PgPoolSettings {
  std::string url;                                   // postgresql://user:pass@host:port/db?...
  std::string name = "postgres";                     // label of metrics, logs and /ready
  std::size_t size = 8;                              // connections at most, opened on demand
  std::chrono::milliseconds acquire_timeout{2000};   // a borrower waits this long, then pool_exhausted
  std::chrono::milliseconds connect_timeout{3000};   // to open one (libpq: whole seconds)
  std::chrono::milliseconds statement_timeout{5000}; // server-side bound on every statement
  std::string application_name = "notifs";          // pg_stat_activity (unless the URL sets one)
  // Runs on every new connection before it is lent, e.g. to prepare the statements the
  // service uses (prepared statements live per connection, so a replacement connection
  // after a server restart gets them again). An exception here fails that connection
  // (closed, not lent) and reaches the borrower. Called on the borrowing thread, possibly
  // on several threads at once for different connections.
  std::function<void(pqxx::connection_base&)> on_connect;
};

// PostgreSQL cannot be used right now: no connection could be opened, the pool had no
// free connection within acquire_timeout, the connection broke, or a statement hit
// statement_timeout. A service answers 503 with Retry-After; trying again later can work.
class StorageUnavailable : public std::runtime_error {
 public:
  enum class Reason { pool_exhausted, connect_failed, connection_lost, timeout };
  StorageUnavailable(Reason reason, const std::string& what);
  Reason reason() const { return reason_; }

 private:
  Reason reason_;
};

// The connection broke while a COMMIT was in flight: the write may or may not have
// happened. Never retried automatically; a service answers 503 and the caller's retry
// must be idempotent (e.g. a create that answers 409 to a duplicate).
class StorageInDoubt : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PoolStats {
  std::size_t open = 0;     // connections that exist
  std::size_t idle = 0;     // of which lent to nobody
  std::size_t waiting = 0;  // borrowers waiting for one
};

// A bounded pool of libpqxx connections.
//
// Blocking: every call here blocks its thread (connecting, waiting for a free connection,
// running queries), so callers run on a worker thread (Router Execution::blocking), never
// on an Asio io thread.
//
// Recovery: a connection found broken is destroyed, not repaired; and because a server
// restart breaks every connection at once, the pool then also re-checks each idle
// connection before lending it again. run() retries its work once on a fresh connection
// when the connection was lost before the work committed, so the first request after a
// PostgreSQL restart succeeds instead of failing on a stale socket.
//
// Thread-safety: all members are thread-safe. The pool must outlive its leases.
class PgPool {
 public:
  PgPool(PgPoolSettings settings, std::shared_ptr<prometheus::Registry> registry);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // One borrowed connection; returns it to the pool on destruction.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    pqxx::connection_base& connection();
    // The connection is unusable (e.g. it threw pqxx::broken_connection): destroy it
    // instead of returning it.
    void discard();

   private:
    friend class PgPool;
    struct Slot;
    Lease(PgPool* pool, std::unique_ptr<Slot> slot);
    PgPool* pool_ = nullptr;
    std::unique_ptr<Slot> slot_;
  };

  // Waits up to acquire_timeout for a connection (opening one if fewer than `size`
  // exist). Throws StorageUnavailable.
  Lease acquire();

  // Runs `work(connection)` on a borrowed connection and returns what it returns. The
  // work opens and commits its own transaction. pqxx errors are translated:
  // broken_connection -> one retry on a fresh connection, then StorageUnavailable;
  // in_doubt_error -> StorageInDoubt; query_canceled (statement_timeout) ->
  // StorageUnavailable(timeout). Other pqxx errors (constraint violations, ...) pass
  // through unchanged for the caller to map. Because of the retry, `work` must be safe
  // to run twice when its first run did not commit (a rolled-back transaction is).
  template <typename Work>
  auto run(Work&& work) -> std::invoke_result_t<Work&, pqxx::connection_base&> {
    using Result = std::invoke_result_t<Work&, pqxx::connection_base&>;
    if constexpr (std::is_void_v<Result>) {
      run_erased([&](pqxx::connection_base& connection) { work(connection); });
    } else {
      std::optional<Result> result;
      run_erased([&](pqxx::connection_base& connection) { result.emplace(work(connection)); });
      return std::move(*result);
    }
  }

  // A cheap round trip (SELECT 1), for /ready: false when no connection frees up within
  // `timeout`, none can be opened within min(timeout, connect_timeout) (libpq rounds up to
  // whole seconds), or the server does not answer. Like run(), one stale connection found
  // broken is replaced and retried, so a restart that is over reads as ready. Never throws.
  bool ping(std::chrono::milliseconds timeout) noexcept;

  PoolStats stats() const;
  const PgPoolSettings& settings() const;

 private:
  void run_erased(const std::function<void(pqxx::connection_base&)>& work);
  // Runs `work` on leases from `borrow`, translating pqxx errors as run() documents.
  void run_leased(const std::function<Lease()>& borrow,
                  const std::function<void(pqxx::connection_base&)>& work);
  // acquire() with an explicit deadline and connect timeout (ping uses its own).
  Lease acquire_until(std::chrono::steady_clock::time_point deadline,
                      std::chrono::milliseconds connect_timeout);
  std::unique_ptr<Lease::Slot> open_connection(std::chrono::milliseconds connect_timeout);
  void give_back(std::unique_ptr<Lease::Slot> slot, bool broken) noexcept;

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The URL with its password replaced by "***", for logs and printed configuration.
std::string mask_database_url(const std::string& url);

}  // namespace notifs::storage
