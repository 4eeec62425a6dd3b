#include "notifs/storage/pg_pool.hpp"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "conninfo.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "pool_metrics.hpp"

namespace notifs::storage {

namespace common = messaging::common;
using Clock = std::chrono::steady_clock;

namespace detail {

// The SQLSTATE of a statement cancelled by statement_timeout (or pg_cancel_backend):
// libpqxx 6.4 has no exception class of its own for it.
constexpr const char* kQueryCanceled = "57014";

// Routes the server's notices ("relation ... already exists, skipping") and libpq's
// warnings to the pg logger; libpqxx's default handler writes them to stderr.
class NoticeLogger final : public pqxx::errorhandler {
 public:
  NoticeLogger(pqxx::connection_base& connection, const std::string& pool)
      : pqxx::errorhandler(connection), pool_(pool) {}

  bool operator()(const char message[]) noexcept override {
    try {
      common::logger("pg")->debug("server notice pool={} msg={}", pool_, one_line(message));
    } catch (...) {
      // A notice is not worth an exception escaping into libpq's callback.
    }
    return false;  // older handlers (libpqxx's stderr one) stay silent
  }

 private:
  std::string pool_;
};

// Logs the first failure of a run of failures at once and then at most one line per
// interval with the number of similar ones suppressed, so a database that is down for a
// minute does not write thousands of identical lines.
class FailureLog {
 public:
  static constexpr auto kInterval = std::chrono::seconds{10};

  void failed(const std::string& line) {
    const std::lock_guard lock(mutex_);
    const auto now = Clock::now();
    ++failures_;
    if (failures_ == 1 || now - last_logged_ >= kInterval) {
      common::logger("pg")->warn("{} suppressed_errors={}", line, suppressed_);
      last_logged_ = now;
      suppressed_ = 0;
    } else {
      ++suppressed_;
      common::logger("pg")->debug("{}", line);
    }
  }

  // Returns how many failures the success ends (0: there were none).
  std::size_t succeeded() {
    const std::lock_guard lock(mutex_);
    return std::exchange(failures_, 0);
  }

 private:
  std::mutex mutex_;
  std::size_t failures_ = 0;
  std::size_t suppressed_ = 0;
  Clock::time_point last_logged_{};
};

}  // namespace detail

StorageUnavailable::StorageUnavailable(Reason reason, const std::string& what)
    : std::runtime_error(what), reason_(reason) {}

struct PgPool::Lease::Slot {
  std::unique_ptr<pqxx::connection> connection;
  // Declared after the connection so that it unregisters before the connection goes.
  std::unique_ptr<detail::NoticeLogger> notices;
  // The pool's generation when this connection was last known good (see Impl).
  std::uint64_t generation = 0;
};

struct PgPool::Impl {
  Impl(PgPoolSettings pool_settings, std::shared_ptr<prometheus::Registry> metrics_registry)
      : settings(std::move(pool_settings)),
        conninfo(settings.url),
        masked_url(mask_database_url(settings.url)),
        registry(std::move(metrics_registry)),
        metrics(registry.get(), settings.name) {
    if (settings.size == 0) {
      throw std::invalid_argument("pg pool " + settings.name + ": size must be at least 1");
    }
    // give_back() runs in destructors: with the room reserved, its push_back cannot throw.
    idle.reserve(settings.size);
    metrics.set_state(0, 0, 0);
  }

  void publish_locked() { metrics.set_state(open, idle.size(), waiting); }

  PgPoolSettings settings;
  detail::ConnInfo conninfo;
  std::string masked_url;
  std::shared_ptr<prometheus::Registry> registry;
  detail::PoolMetrics metrics;
  detail::FailureLog connect_log;
  detail::FailureLog lost_log;

  mutable std::mutex mutex;
  std::condition_variable available;
  std::vector<std::unique_ptr<Lease::Slot>> idle;  // back: the most recently returned
  std::size_t open = 0;                            // connections that exist or are being opened
  std::size_t waiting = 0;                         // borrowers blocked in acquire
  // Bumped whenever a connection is found broken. A server restart breaks every
  // connection at once, so an idle connection last known good in an older generation is
  // checked with a round trip before it is lent; one from the current generation is not
  // (that would cost a round trip per borrow).
  std::uint64_t generation = 0;
};

PgPool::PgPool(PgPoolSettings settings, std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(registry))) {}

PgPool::~PgPool() {
  std::vector<std::unique_ptr<Lease::Slot>> idle;
  {
    const std::lock_guard lock(impl_->mutex);
    idle.swap(impl_->idle);
    impl_->open -= idle.size();
    impl_->publish_locked();
  }
  // Closing sends libpq's Terminate message: done outside the lock, one by one.
  idle.clear();
}

const PgPoolSettings& PgPool::settings() const { return impl_->settings; }

PoolStats PgPool::stats() const {
  const std::lock_guard lock(impl_->mutex);
  return PoolStats{impl_->open, impl_->idle.size(), impl_->waiting};
}

// --- Lease --------------------------------------------------------------------------------

PgPool::Lease::Lease(PgPool* pool, std::unique_ptr<Slot> slot)
    : pool_(pool), slot_(std::move(slot)) {}

PgPool::Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)), slot_(std::move(other.slot_)) {}

PgPool::Lease& PgPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (pool_ != nullptr && slot_) pool_->give_back(std::move(slot_), false);
    pool_ = std::exchange(other.pool_, nullptr);
    slot_ = std::move(other.slot_);
  }
  return *this;
}

PgPool::Lease::~Lease() {
  if (pool_ != nullptr && slot_) pool_->give_back(std::move(slot_), false);
}

pqxx::connection_base& PgPool::Lease::connection() {
  if (!slot_) throw std::logic_error("PgPool::Lease: no connection (moved from or discarded)");
  return *slot_->connection;
}

void PgPool::Lease::discard() {
  if (pool_ != nullptr && slot_) pool_->give_back(std::move(slot_), true);
  pool_ = nullptr;
}

// --- borrowing ----------------------------------------------------------------------------

namespace {

// A round trip on an idle connection from before a break. Any failure means: not usable.
bool still_works(pqxx::connection_base& connection) noexcept {
  try {
    if (!connection.is_open()) return false;
    pqxx::nontransaction probe(connection);
    probe.exec("SELECT 1");
    return connection.is_open();
  } catch (...) {
    return false;
  }
}

}  // namespace

std::unique_ptr<PgPool::Lease::Slot> PgPool::open_connection(
    std::chrono::milliseconds connect_timeout) {
  Impl& impl = *impl_;
  const PgPoolSettings& settings = impl.settings;
  auto slot = std::make_unique<Lease::Slot>();
  const std::string conninfo = impl.conninfo.connection_string(
      connect_timeout, settings.application_name, settings.statement_timeout);
  try {
    slot->connection = std::make_unique<pqxx::connection>(conninfo);
  } catch (const pqxx::failure& error) {
    impl.metrics.connect_failed();
    const std::string reason = detail::one_line(error.what());
    impl.connect_log.failed(fmt::format("connect failed pool={} url={} err={}", settings.name,
                                        impl.masked_url, reason));
    throw StorageUnavailable(StorageUnavailable::Reason::connect_failed,
                             fmt::format("pg pool {}: could not connect to {}: {}", settings.name,
                                         impl.masked_url, reason));
  }
  // libpqxx 6 would otherwise reconnect a broken connection behind our back on its next
  // use: a connection that broke must fail loudly and be replaced by the pool, so that
  // the replacement goes through on_connect and the pool's accounting.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  slot->connection->inhibit_reactivation(true);
#pragma GCC diagnostic pop
  slot->notices = std::make_unique<detail::NoticeLogger>(*slot->connection, settings.name);
  if (settings.on_connect) {
    try {
      settings.on_connect(*slot->connection);
    } catch (const pqxx::broken_connection& error) {
      impl.metrics.connect_failed();
      throw StorageUnavailable(
          StorageUnavailable::Reason::connect_failed,
          fmt::format("pg pool {}: connection to {} broke while it was set up: {}", settings.name,
                      impl.masked_url, detail::one_line(error.what())));
    } catch (const pqxx::sql_error& error) {
      if (error.sqlstate() != detail::kQueryCanceled) throw;
      throw StorageUnavailable(StorageUnavailable::Reason::timeout,
                               fmt::format("pg pool {}: setting up a connection took longer than "
                                           "statement_timeout={}ms: {}",
                                           settings.name, settings.statement_timeout.count(),
                                           detail::one_line(error.what())));
    }
  }
  if (const std::size_t failures = impl.connect_log.succeeded(); failures > 0) {
    common::logger("pg")->info("connected again pool={} url={} failed_attempts={}", settings.name,
                               impl.masked_url, failures);
  } else {
    common::logger("pg")->debug("connection opened pool={} url={}", settings.name, impl.masked_url);
  }
  return slot;
}

PgPool::Lease PgPool::acquire() {
  return acquire_until(Clock::now() + impl_->settings.acquire_timeout,
                       impl_->settings.connect_timeout);
}

PgPool::Lease PgPool::acquire_until(Clock::time_point deadline,
                                    std::chrono::milliseconds connect_timeout) {
  Impl& impl = *impl_;
  const auto started = Clock::now();
  std::unique_lock lock(impl.mutex);
  while (true) {
    if (impl.idle.empty() && impl.open >= impl.settings.size) {
      ++impl.waiting;
      impl.publish_locked();
      const bool got_one = impl.available.wait_until(
          lock, deadline, [&] { return !impl.idle.empty() || impl.open < impl.settings.size; });
      --impl.waiting;
      impl.publish_locked();
      if (!got_one) {
        lock.unlock();
        impl.metrics.acquire_timed_out();
        throw StorageUnavailable(
            StorageUnavailable::Reason::pool_exhausted,
            fmt::format(
                "pg pool {}: no free connection within {} ms (all {} in use)", impl.settings.name,
                std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started)
                    .count(),
                impl.settings.size));
      }
    }

    const std::uint64_t generation = impl.generation;
    if (!impl.idle.empty()) {
      std::unique_ptr<Lease::Slot> slot = std::move(impl.idle.back());
      impl.idle.pop_back();
      impl.publish_locked();
      lock.unlock();
      // Every connection breaks at once when the server restarts: the cheap is_open()
      // catches what libpq already noticed, the round trip the rest.
      if (slot->connection->is_open() &&
          (slot->generation == generation || still_works(*slot->connection))) {
        slot->generation = generation;
        impl.metrics.acquired(Clock::now() - started);
        return Lease(this, std::move(slot));
      }
      common::logger("pg")->debug("dropping broken idle connection pool={}", impl.settings.name);
      slot.reset();
      lock.lock();
      --impl.open;
      impl.publish_locked();
      continue;  // its place is free now: take another idle one or open a new one
    }

    ++impl.open;  // reserved while connecting, so concurrent borrowers never exceed size
    impl.publish_locked();
    lock.unlock();
    try {
      std::unique_ptr<Lease::Slot> slot = open_connection(connect_timeout);
      slot->generation = generation;
      impl.metrics.acquired(Clock::now() - started);
      return Lease(this, std::move(slot));
    } catch (...) {
      lock.lock();
      --impl.open;
      impl.publish_locked();
      lock.unlock();
      impl.available.notify_one();  // a waiter may try to open it instead
      throw;
    }
  }
}

void PgPool::give_back(std::unique_ptr<Lease::Slot> slot, bool broken) noexcept {
  Impl& impl = *impl_;
  const bool lost = !slot->connection->is_open();
  if (broken || lost) {
    slot.reset();  // closing can write to the socket: not under the lock
    const std::lock_guard lock(impl.mutex);
    --impl.open;
    if (lost) ++impl.generation;
    impl.publish_locked();
  } else {
    const std::lock_guard lock(impl.mutex);
    impl.idle.push_back(std::move(slot));
    impl.publish_locked();
  }
  impl.available.notify_one();
}

// --- running work -------------------------------------------------------------------------

void PgPool::run_erased(const std::function<void(pqxx::connection_base&)>& work) {
  run_leased([this] { return acquire(); }, work);
}

void PgPool::run_leased(const std::function<Lease()>& borrow,
                        const std::function<void(pqxx::connection_base&)>& work) {
  Impl& impl = *impl_;
  for (int attempt = 1;; ++attempt) {
    Lease lease = borrow();
    try {
      work(lease.connection());
      return;
    } catch (const pqxx::in_doubt_error& error) {
      lease.discard();
      throw StorageInDoubt(fmt::format(
          "pg pool {}: the connection broke during COMMIT; the transaction may or may not "
          "have been applied: {}",
          impl.settings.name, detail::one_line(error.what())));
    } catch (const pqxx::broken_connection& error) {
      lease.discard();
      {
        const std::lock_guard lock(impl.mutex);
        ++impl.generation;
      }
      impl.metrics.connection_lost();
      const std::string reason = detail::one_line(error.what());
      impl.lost_log.failed(fmt::format("connection lost pool={} attempt={} err={}",
                                       impl.settings.name, attempt, reason));
      // A transaction that had not reached COMMIT was rolled back by the server with
      // the session: running the work again on a fresh connection is safe, and it is
      // what makes the first request after a PostgreSQL restart succeed.
      if (attempt == 1) continue;
      throw StorageUnavailable(StorageUnavailable::Reason::connection_lost,
                               fmt::format("pg pool {}: connection lost (retried once): {}",
                                           impl.settings.name, reason));
    } catch (const pqxx::sql_error& error) {
      if (error.sqlstate() != detail::kQueryCanceled) throw;
      throw StorageUnavailable(
          StorageUnavailable::Reason::timeout,
          fmt::format("pg pool {}: statement cancelled (statement_timeout={}ms): {}",
                      impl.settings.name, impl.settings.statement_timeout.count(),
                      detail::one_line(error.what())));
    }
  }
}

bool PgPool::ping(std::chrono::milliseconds timeout) noexcept {
  try {
    const auto deadline = Clock::now() + timeout;
    const auto connect_timeout = std::min(timeout, impl_->settings.connect_timeout);
    run_leased([&] { return acquire_until(deadline, connect_timeout); },
               [](pqxx::connection_base& connection) {
                 pqxx::nontransaction tx(connection);
                 tx.exec("SELECT 1");
               });
    return true;
  } catch (...) {
    return false;
  }
}

// --- URL masking --------------------------------------------------------------------------

namespace {

// Replaces the value of every `password=` parameter (a URL's query string or libpq's
// keyword=value form, quoted or not) with ***.
void mask_password_parameters(std::string& text) {
  static constexpr std::string_view kKey = "password";
  std::size_t from = 0;
  while ((from = text.find(kKey, from)) != std::string::npos) {
    const bool starts_word = from == 0 || text[from - 1] == ' ' || text[from - 1] == '?' ||
                             text[from - 1] == '&' || text[from - 1] == '\t';
    std::size_t pos = from + kKey.size();
    from = pos;
    if (!starts_word) continue;
    while (pos < text.size() && text[pos] == ' ') ++pos;
    if (pos >= text.size() || text[pos] != '=') continue;
    ++pos;
    while (pos < text.size() && text[pos] == ' ') ++pos;
    std::size_t end = pos;
    if (end < text.size() && text[end] == '\'') {
      ++end;
      while (end < text.size() && text[end] != '\'') end += text[end] == '\\' ? 2 : 1;
      end = std::min(end + 1, text.size());
    } else {
      while (end < text.size() && text[end] != ' ' && text[end] != '&' && text[end] != '\t') {
        ++end;
      }
    }
    text.replace(pos, end - pos, "***");
    from = pos + 3;
  }
}

}  // namespace

std::string mask_database_url(const std::string& url) {
  std::string masked = url;
  const std::size_t scheme_end = masked.find("://");
  if (scheme_end != std::string::npos) {
    const std::size_t authority = scheme_end + 3;
    // The last '@' ends the user info even when an unencoded '@', '/' or '?' in the
    // password would confuse a stricter parse: masking too much beats leaking.
    const std::size_t at = masked.rfind('@');
    if (at != std::string::npos && at > authority) {
      const std::size_t colon = masked.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        masked.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  mask_password_parameters(masked);
  return masked;
}

}  // namespace notifs::storage
