// A PostgreSQL restart under a pool that keeps idle connections: the pool must notice
// every stale connection and replace it, so that the very first call after the server
// is back succeeds, without a new pool. Tagged [recovery]: it runs alone (RUN_SERIAL).

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <set>
#include <vector>

#include "integration/pg_test_support.hpp"
#include "notifs/storage/pg_pool.hpp"

using namespace std::chrono_literals;
using notifs::storage::PgPool;
using notifs::storage::PgPoolSettings;
namespace pg_test = notifs::pg_test;

TEST_CASE("storage: after a PostgreSQL restart the next calls succeed on the same pool",
          "[storage][pg][recovery]") {
  const pg_test::TestSchema schema;
  schema.exec("CREATE TABLE counters (id int PRIMARY KEY, value int NOT NULL)");
  schema.exec("INSERT INTO counters VALUES (1, 0)");

  PgPoolSettings settings;
  settings.url = schema.url();
  settings.name = "storage-recovery-test";
  settings.size = 4;
  int set_up = 0;  // on_connect runs on the borrowing thread: this test's only thread
  settings.on_connect = [&](pqxx::connection_base& connection) {
    connection.prepare("bump",
                       "UPDATE counters SET value = value + 1 WHERE id = 1 RETURNING value");
    ++set_up;
  };
  PgPool pool(settings, nullptr);
  PgPoolSettings ping_settings = settings;
  ping_settings.name = "storage-recovery-ping";
  ping_settings.on_connect = nullptr;
  PgPool ping_pool(ping_settings, nullptr);

  // Four idle connections, each with its own server process.
  std::set<int> old_pids;
  {
    std::vector<PgPool::Lease> leases;
    for (int i = 0; i < 4; ++i) {
      leases.push_back(pool.acquire());
      old_pids.insert(leases.back().connection().backendpid());
    }
  }
  REQUIRE(old_pids.size() == 4);
  REQUIRE(pool.stats().idle == 4);
  REQUIRE(set_up == 4);
  REQUIRE(ping_pool.ping(2000ms));

  const auto bump = [](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    const int value = tx.exec_prepared("bump")[0][0].as<int>();
    tx.commit();
    return std::make_pair(value, connection.backendpid());
  };

  pg_test::restart_postgres();

  // Every call succeeds, the first one included, each bump exactly once.
  for (int i = 1; i <= 10; ++i) {
    const auto [value, pid] = pool.run(bump);
    CHECK(value == i);
    CHECK(old_pids.count(pid) == 0);
  }
  CHECK(ping_pool.ping(2000ms));
  const auto stats = pool.stats();
  CHECK(stats.open >= 1);
  CHECK(stats.open <= 4);
  // Every replacement was set up again (its prepared statement is per connection).
  CHECK(set_up == 4 + static_cast<int>(stats.open));
  CHECK(schema.query_value("SELECT value FROM counters WHERE id = 1") == "10");
}
