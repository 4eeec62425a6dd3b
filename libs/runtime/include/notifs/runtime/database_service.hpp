#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/http/router.hpp"
#include "notifs/messaging/http/server.hpp"
#include "notifs/runtime/config_reader.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::runtime {

struct DatabaseServiceSettings {
  messaging::http::ServerSettings server;
  storage::PgPoolSettings database;
  std::string service_token;                       // SERVICE_TOKEN; empty: no auth
  std::chrono::milliseconds startup_timeout{60000};  // how long start() waits for PostgreSQL
};

// Reads PORT (default `default_port`), DATABASE_URL (required, postgresql://),
// DATABASE_POOL_SIZE (default 2 per core, 2..32), DATABASE_POOL_TIMEOUT_MS (default 2000),
// DATABASE_STATEMENT_TIMEOUT_MS (default 5000), DATABASE_STARTUP_TIMEOUT_MS (default
// 60000), SERVICE_TOKEN, HTTP_IO_THREADS (default 2) and HTTP_WORKER_THREADS (default:
// the pool size, so every worker can hold a connection).
DatabaseServiceSettings read_database_service_settings(ConfigReader& config,
                                                       std::string service_name,
                                                       std::uint16_t default_port);

// What a service adds to the shell when it starts.
struct ServiceExtras {
  // false: the service guards its routes itself (the gateway checks its clients' API
  // keys); SERVICE_TOKEN is then only what it presents to the services it calls.
  bool require_service_token = true;
  // Reported by /ready beside the database.
  std::vector<std::pair<std::string, messaging::http::ReadinessCheck>> readiness_checks;
  // See HttpServer::add_scrape_hook.
  std::vector<std::function<void()>> scrape_hooks;
};

// The shell of a service that keeps its data in PostgreSQL: a PgPool, migrations applied
// at start, an HttpServer whose /ready checks the database, SERVICE_TOKEN auth on every
// route, and StorageUnavailable answered as 503. The service adds its own routes.
//
// Thread-safety: construct, start, stop from one control thread. Blocking.
class DatabaseService {
 public:
  DatabaseService(DatabaseServiceSettings settings, std::shared_ptr<prometheus::Registry> registry,
                  std::span<const storage::Migration> migrations, std::string migration_lock);
  ~DatabaseService();
  DatabaseService(const DatabaseService&) = delete;
  DatabaseService& operator=(const DatabaseService&) = delete;

  // Usable at once; connections open on first use.
  storage::PgPool& pool();
  const DatabaseServiceSettings& settings() const;
  const std::shared_ptr<prometheus::Registry>& registry() const;

  // Applies the migrations, retrying with backoff while PostgreSQL is unreachable (for
  // up to startup_timeout: containers start in any order), then installs the guard and
  // error translator on `router` and starts serving it. Throws StorageUnavailable when
  // the database never came, MigrationError, or std::system_error when the port is taken.
  void start(messaging::http::Router router, ServiceExtras extras = {});
  // The bound port; 0 before start().
  std::uint16_t port() const;
  void stop();
  // After start(): serve until SIGINT/SIGTERM, then stop. Returns the exit code (see
  // HttpServer::run_until_signal).
  int run_until_signal(const std::function<void()>& on_started = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::runtime
