#include "notifs/storage/migrations.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <map>

#include <fmt/format.h>
#include <pqxx/pqxx>

#include "conninfo.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace notifs::storage {

namespace common = messaging::common;

std::uint64_t migration_checksum(std::string_view sql) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
  for (const char c : sql) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
  return hash;
}

namespace {

constexpr const char* kQueryCanceled = "57014";

std::string label(int version, std::string_view name) {
  return fmt::format("{:04d}_{}", version, name);
}

std::string label(const Migration& migration) { return label(migration.version, migration.name); }

void check_input(std::span<const Migration> migrations) {
  const Migration* previous = nullptr;
  for (const Migration& migration : migrations) {
    if (migration.version <= 0) {
      throw MigrationError("migration " + label(migration) + ": versions must be positive");
    }
    if (migration.name.empty()) {
      throw MigrationError(fmt::format("migration {} has no name", migration.version));
    }
    if (previous != nullptr && migration.version <= previous->version) {
      throw MigrationError(
          fmt::format("migrations are not in strictly increasing version order: {} comes after {}",
                      label(migration), label(*previous)));
    }
    previous = &migration;
  }
}

struct Recorded {
  std::string name;
  std::uint64_t checksum = 0;
};

// Holds pg_advisory_lock(key) on the lease's session until destroyed. Unlocking can fail
// only when the session is gone, and then the server has released the lock with it; the
// connection is discarded so nobody inherits a session in an unknown state.
class AdvisoryLock {
 public:
  AdvisoryLock(PgPool::Lease& lease, std::int64_t key) : lease_(lease), key_(key) {
    pqxx::work tx(lease_.connection());
    // Waiting for another replica's migrations is expected to take longer than a request
    // may; a session lock taken inside a transaction outlives it, the SET LOCAL does not.
    tx.exec("SET LOCAL statement_timeout = 0");
    tx.exec_params("SELECT pg_advisory_lock($1)", key_);
    tx.commit();
  }
  ~AdvisoryLock() {
    try {
      pqxx::nontransaction tx(lease_.connection());
      tx.exec_params("SELECT pg_advisory_unlock($1)", key_);
    } catch (...) {
      lease_.discard();
    }
  }
  AdvisoryLock(const AdvisoryLock&) = delete;
  AdvisoryLock& operator=(const AdvisoryLock&) = delete;

 private:
  PgPool::Lease& lease_;
  std::int64_t key_;
};

std::string current_schema(pqxx::connection_base& connection) {
  pqxx::nontransaction tx(connection);
  const pqxx::result rows = tx.exec("SELECT current_schema()");
  if (rows.empty() || rows[0][0].is_null()) {
    throw MigrationError(
        "cannot apply migrations: the connection has no current schema (its search_path "
        "names no schema that exists)");
  }
  return rows[0][0].as<std::string>();
}

std::map<int, Recorded> recorded_migrations(pqxx::connection_base& connection) {
  pqxx::work tx(connection);
  tx.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations ("
      " version integer PRIMARY KEY,"
      " name text NOT NULL,"
      " checksum bigint NOT NULL,"
      " applied_at timestamptz NOT NULL DEFAULT now())");
  std::map<int, Recorded> recorded;
  for (const auto& row : tx.exec("SELECT version, name, checksum FROM schema_migrations")) {
    recorded.emplace(row[0].as<int>(),
                     Recorded{row[1].as<std::string>(),
                              std::bit_cast<std::uint64_t>(row[2].as<std::int64_t>())});
  }
  tx.commit();
  return recorded;
}

void apply_one(pqxx::connection_base& connection, const Migration& migration) {
  try {
    pqxx::work tx(connection);
    // A migration may build an index over a big table: statement_timeout bounds requests,
    // not schema changes.
    tx.exec("SET LOCAL statement_timeout = 0");
    tx.exec(migration.sql);
    tx.exec_params("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                   migration.version, migration.name,
                   std::bit_cast<std::int64_t>(migration_checksum(migration.sql)));
    tx.commit();
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::in_doubt_error&) {
    throw;
  } catch (const pqxx::sql_error& error) {
    throw MigrationError(fmt::format("migration {} failed and was rolled back: {} (sqlstate {})",
                                     label(migration), detail::one_line(error.what()),
                                     error.sqlstate()));
  }
}

MigrationReport apply_locked(PgPool::Lease& lease, std::span<const Migration> migrations,
                             std::string_view lock_name) {
  auto log = common::logger("pg");
  pqxx::connection_base& connection = lease.connection();
  const std::string schema = current_schema(connection);
  // The key names the schema too: services sharing one database in schemas of their own
  // do not wait for each other.
  std::string lock_text(lock_name);
  lock_text += '\0';
  lock_text += schema;
  const auto key = std::bit_cast<std::int64_t>(migration_checksum(lock_text));

  const auto wait_started = std::chrono::steady_clock::now();
  const AdvisoryLock lock(lease, key);
  log->debug("migration lock taken lock={} schema={} waited_ms={}", lock_name, schema,
             std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::steady_clock::now() - wait_started)
                 .count());

  std::map<int, Recorded> recorded = recorded_migrations(connection);
  const int newest_known = migrations.empty() ? 0 : migrations.back().version;
  for (const auto& [version, entry] : recorded) {
    // Captured by copy under its own name: clang before 16 cannot capture a structured
    // binding, and the ASan services are built with clang (tests/battery).
    const auto known =
        std::find_if(migrations.begin(), migrations.end(),
                     [wanted = version](const Migration& m) { return m.version == wanted; });
    if (known == migrations.end()) {
      // A newer replica got here first (rolling upgrade): its schema is a superset.
      log->warn(
          "schema has a migration this binary does not know version={} name={} "
          "schema={} newest_known={}",
          version, entry.name, schema, newest_known);
      continue;
    }
    const std::uint64_t checksum = migration_checksum(known->sql);
    if (checksum != entry.checksum) {
      throw MigrationError(fmt::format(
          "migration {} was changed after it was applied (recorded checksum {:016x}, now "
          "{:016x}): add a new migration instead of editing an applied one",
          label(*known), entry.checksum, checksum));
    }
  }

  const int newest_recorded = recorded.empty() ? 0 : recorded.rbegin()->first;
  MigrationReport report;
  for (const Migration& migration : migrations) {
    if (recorded.contains(migration.version)) continue;
    if (migration.version < newest_recorded) {
      throw MigrationError(fmt::format(
          "migration {} is not applied but the newer {} is: migrations must be added after "
          "the newest applied one",
          label(migration), label(newest_recorded, recorded.rbegin()->second.name)));
    }
  }
  for (const Migration& migration : migrations) {
    if (recorded.contains(migration.version)) continue;
    const auto started = std::chrono::steady_clock::now();
    apply_one(connection, migration);
    recorded.emplace(migration.version,
                     Recorded{migration.name, migration_checksum(migration.sql)});
    report.applied.push_back(migration.version);
    log->info("migration applied migration={} schema={} ms={}", label(migration), schema,
              std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - started)
                  .count());
  }
  report.current_version = recorded.empty() ? 0 : recorded.rbegin()->first;
  return report;
}

}  // namespace

MigrationReport apply_migrations(PgPool& pool, std::span<const Migration> migrations,
                                 std::string_view lock_name) {
  check_input(migrations);
  PgPool::Lease lease = pool.acquire();
  const std::string& pool_name = pool.settings().name;
  try {
    return apply_locked(lease, migrations, lock_name);
  } catch (const pqxx::in_doubt_error& error) {
    lease.discard();
    throw StorageInDoubt(fmt::format(
        "pg pool {}: the connection broke while a migration committed; it may or may not be "
        "applied (the next start finds out): {}",
        pool_name, detail::one_line(error.what())));
  } catch (const pqxx::broken_connection& error) {
    lease.discard();
    throw StorageUnavailable(
        StorageUnavailable::Reason::connection_lost,
        fmt::format("pg pool {}: connection lost while applying migrations: {}", pool_name,
                    detail::one_line(error.what())));
  } catch (const pqxx::sql_error& error) {
    if (error.sqlstate() == kQueryCanceled) {
      throw StorageUnavailable(StorageUnavailable::Reason::timeout,
                               fmt::format("pg pool {}: migration bookkeeping timed out: {}",
                                           pool_name, detail::one_line(error.what())));
    }
    throw MigrationError(fmt::format("cannot apply migrations (lock {}): {} (sqlstate {})",
                                     lock_name, detail::one_line(error.what()), error.sqlstate()));
  } catch (const pqxx::failure& error) {
    throw MigrationError(fmt::format("cannot apply migrations (lock {}): {}", lock_name,
                                     detail::one_line(error.what())));
  }
}

}  // namespace notifs::storage
