#include "notifs/runtime/database_service.hpp"

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <prometheus/registry.h>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/resilience/backoff.hpp"
#include "notifs/runtime/service_auth.hpp"
#include "notifs/runtime/storage_errors.hpp"

namespace notifs::runtime {

namespace http = messaging::http;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// The first waits are short (a database started together with us is usually up within a
// second), the later ones capped so a long outage is still noticed promptly when it ends.
constexpr messaging::resilience::BackoffSettings kStartupBackoff{milliseconds(100),
                                                                 milliseconds(5000), 2.0};
// One line per failed attempt would be one line every few seconds for a minute; the
// first few and then one every kLogEvery are enough to see what is going on.
constexpr int kAttemptsAlwaysLogged = 3;
constexpr auto kLogEvery = std::chrono::seconds(10);
constexpr milliseconds kReadyPingTimeout(1000);

// Two connections (and so two worker threads and two PostgreSQL backends) per core. More
// buys no throughput on a short-query workload and costs tail latency: on 2 cores, a pool
// of 8 gave user_service's GET a p99 of 146 ms, a pool of 4 a p99 of 5-9 ms at the same
// throughput, because runnable threads get preempted while holding locks.
std::int64_t default_pool_size() {
  const auto cores = static_cast<std::int64_t>(std::thread::hardware_concurrency());
  return std::clamp<std::int64_t>(2 * cores, 2, 32);
}

}  // namespace

DatabaseServiceSettings read_database_service_settings(ConfigReader& config,
                                                       std::string service_name,
                                                       std::uint16_t default_port) {
  DatabaseServiceSettings settings;
  settings.server.service_name = service_name;
  settings.server.port = config.port("PORT", default_port);
  settings.database.url = config.url("DATABASE_URL", "", {"postgresql", "postgres"});
  settings.database.name = "postgres";
  settings.database.application_name = service_name;
  settings.database.size = static_cast<std::size_t>(
      config.integer("DATABASE_POOL_SIZE", default_pool_size(), 1, 1000));
  settings.database.acquire_timeout = config.milliseconds(
      "DATABASE_POOL_TIMEOUT_MS", milliseconds(2000), milliseconds(1), milliseconds(600000));
  settings.database.statement_timeout =
      config.milliseconds("DATABASE_STATEMENT_TIMEOUT_MS", milliseconds(5000), milliseconds(1),
                          milliseconds(3600000));
  settings.startup_timeout = config.milliseconds("DATABASE_STARTUP_TIMEOUT_MS",
                                                 milliseconds(60000), milliseconds(0),
                                                 milliseconds(3600000));
  settings.service_token = config.secret("SERVICE_TOKEN");
  settings.server.io_threads =
      static_cast<std::size_t>(config.integer("HTTP_IO_THREADS", 2, 1, 256));
  // Every worker can then hold a connection at once: more workers than connections
  // would only queue on the pool, fewer would leave connections idle under load.
  settings.server.blocking_threads = static_cast<std::size_t>(config.integer(
      "HTTP_WORKER_THREADS", static_cast<std::int64_t>(settings.database.size), 1, 1024));
  return settings;
}

struct DatabaseService::Impl {
  Impl(DatabaseServiceSettings settings_in, std::shared_ptr<prometheus::Registry> registry_in,
       std::span<const storage::Migration> migrations_in, std::string migration_lock_in)
      : settings(std::move(settings_in)),
        registry(registry_in ? std::move(registry_in)
                             : std::make_shared<prometheus::Registry>()),
        migrations(migrations_in.begin(), migrations_in.end()),
        migration_lock(std::move(migration_lock_in)),
        pool(settings.database, registry),
        log(messaging::common::logger(settings.server.service_name)) {}

  void migrate_with_retry() {
    messaging::common::DefaultRandom random;
    const messaging::resilience::JitteredExponentialBackoff backoff(kStartupBackoff, random);
    const auto started = Clock::now();
    const auto deadline = started + settings.startup_timeout;
    auto last_logged = started;
    for (std::uint32_t attempt = 1;; ++attempt) {
      try {
        const auto report = storage::apply_migrations(pool, migrations, migration_lock);
        log->info("database ready schema_version={} applied={} attempts={}",
                  report.current_version, report.applied.size(), attempt);
        return;
      } catch (const storage::StorageUnavailable& error) {
        const auto now = Clock::now();
        const auto waited =
            std::chrono::duration_cast<milliseconds>(now - started).count();
        if (now >= deadline) {
          log->error("database unreachable, giving up attempts={} waited_ms={} err={}", attempt,
                     waited, error.what());
          throw storage::StorageUnavailable(
              error.reason(), "PostgreSQL unreachable for " + std::to_string(waited) +
                                  " ms (" + std::to_string(attempt) +
                                  " attempts): " + error.what());
        }
        const auto delay = std::min(
            backoff.next_delay(attempt),
            std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1));
        if (attempt <= kAttemptsAlwaysLogged || now - last_logged >= kLogEvery) {
          last_logged = now;
          log->warn("database unreachable, retrying attempt={} retry_in_ms={} err={}", attempt,
                    delay.count(), error.what());
        }
        // start() blocks by contract (it runs on the control thread, before serving).
        std::this_thread::sleep_for(delay);
      }
    }
  }

  DatabaseServiceSettings settings;
  std::shared_ptr<prometheus::Registry> registry;
  std::vector<storage::Migration> migrations;
  std::string migration_lock;
  // Declared before the server so it is destroyed after it: handlers borrow from it.
  storage::PgPool pool;
  std::unique_ptr<http::HttpServer> server;
  std::shared_ptr<spdlog::logger> log;
};

DatabaseService::DatabaseService(DatabaseServiceSettings settings,
                                 std::shared_ptr<prometheus::Registry> registry,
                                 std::span<const storage::Migration> migrations,
                                 std::string migration_lock)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(registry), migrations,
                                   std::move(migration_lock))) {}

DatabaseService::~DatabaseService() { stop(); }

storage::PgPool& DatabaseService::pool() { return impl_->pool; }

const DatabaseServiceSettings& DatabaseService::settings() const { return impl_->settings; }

const std::shared_ptr<prometheus::Registry>& DatabaseService::registry() const {
  return impl_->registry;
}

void DatabaseService::start(http::Router router, ServiceExtras extras) {
  if (impl_->server) {
    throw std::logic_error("DatabaseService::start called twice");
  }
  impl_->migrate_with_retry();

  if (extras.require_service_token) {
    require_service_token(router, impl_->settings.service_token);
  }
  router.set_error_translator(translate_storage_error);
  auto server = std::make_unique<http::HttpServer>(impl_->settings.server, std::move(router),
                                                   impl_->registry);
  server->add_readiness_check(impl_->settings.database.name, [pool = &impl_->pool] {
    const bool up = pool->ping(kReadyPingTimeout);
    return http::DependencyStatus{up, up ? "up" : "down",
                                  up ? "" : "no answer to SELECT 1 within 1 s"};
  });
  for (auto& [name, check] : extras.readiness_checks) {
    server->add_readiness_check(std::move(name), std::move(check));
  }
  for (auto& hook : extras.scrape_hooks) {
    server->add_scrape_hook(std::move(hook));
  }
  server->start();
  impl_->server = std::move(server);
  impl_->log->info("listening port={} auth={}", impl_->server->port(),
                   !extras.require_service_token        ? "service's own"
                   : impl_->settings.service_token.empty() ? "off"
                                                           : "service_token");
}

std::uint16_t DatabaseService::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

void DatabaseService::stop() {
  if (impl_ && impl_->server) {
    impl_->server->stop();
  }
}

int DatabaseService::run_until_signal(const std::function<void()>& on_started) {
  if (!impl_->server) {
    throw std::logic_error("DatabaseService::run_until_signal before start()");
  }
  return impl_->server->run_until_signal(on_started);
}

}  // namespace notifs::runtime
