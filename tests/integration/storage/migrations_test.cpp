// apply_migrations against the real server, each test in a schema of its own: ordered,
// once, safe with replicas starting together, and loud about migrations that changed,
// moved or failed.

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <atomic>
#include <future>
#include <latch>
#include <memory>
#include <set>
#include <span>
#include <thread>
#include <vector>

#include "integration/pg_test_support.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

using namespace std::chrono_literals;
using notifs::storage::apply_migrations;
using notifs::storage::Migration;
using notifs::storage::MigrationError;
using notifs::storage::PgPool;
using notifs::storage::PgPoolSettings;
namespace pg_test = notifs::pg_test;

// tests/integration/storage/migrations/*.sql, embedded by notifs_embed_migrations in
// tests/CMakeLists.txt.
namespace notifs::storage_test {
std::span<const notifs::storage::Migration> test_migrations();
}

namespace {

constexpr const char* kLock = "storage-test";

std::unique_ptr<PgPool> make_pool(const std::string& url, std::size_t size = 1) {
  PgPoolSettings settings;
  settings.url = url;
  settings.name = "storage-migrations-test";
  settings.size = size;
  return std::make_unique<PgPool>(settings, nullptr);
}

std::vector<Migration> embedded() {
  const auto migrations = notifs::storage_test::test_migrations();
  return {migrations.begin(), migrations.end()};
}

// The embedded two plus a third that takes a while and inserts one more row.
std::vector<Migration> three() {
  std::vector<Migration> migrations = embedded();
  migrations.push_back(
      {3, "slow_delta", "SELECT pg_sleep(0.2); INSERT INTO widgets (name) VALUES ('delta');"});
  return migrations;
}

// Advisory locks held by the session of a pool of one (so only this test's own).
long long advisory_locks_held(PgPool& pool) {
  return pool.run([](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    return tx
        .exec(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
            [0][0]
        .as<long long>();
  });
}

// The message of the MigrationError `step` throws; FAILs when it throws nothing or
// something else.
template <typename Step>
std::string refusal(Step&& step) {
  try {
    step();
  } catch (const MigrationError& error) {
    return error.what();
  }
  FAIL("no MigrationError");
  return {};
}

}  // namespace

TEST_CASE("storage: embedded migrations come out of their .sql files intact", "[storage]") {
  const auto migrations = notifs::storage_test::test_migrations();
  REQUIRE(migrations.size() == 2);
  CHECK(migrations[0].version == 1);
  CHECK(migrations[0].name == "create_widgets");
  CHECK(migrations[1].version == 2);
  CHECK(migrations[1].name == "seed_widgets");
  // Text that would end a raw string literal, a backslash and UTF-8, byte for byte.
  CHECK_THAT(migrations[0].sql, Catch::Contains(")\" or )sql\" and a backslash \\ and 'quotes'"));
  CHECK_THAT(migrations[0].sql, Catch::Contains("'h\xc3\xa9llo \xe2\x9c\x93 \"w\xc3\xb6rld\"'"));
  CHECK(migrations[0].sql.find('\0') == std::string::npos);
  CHECK(migrations[1].sql == "INSERT INTO widgets (name) VALUES ('alpha'), ('beta'), ('gamma');\n");
}

TEST_CASE("storage: migrations are applied in order and once, a second run applies nothing",
          "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());

  const auto first = apply_migrations(*pool, notifs::storage_test::test_migrations(), kLock);
  CHECK(first.applied == std::vector<int>{1, 2});
  CHECK(first.current_version == 2);
  CHECK(schema.query_column("SELECT name FROM widgets ORDER BY id") ==
        std::vector<std::string>{"alpha", "beta", "gamma"});
  CHECK(schema.query_value("SELECT label FROM widgets WHERE name = 'alpha'") ==
        "h\xc3\xa9llo \xe2\x9c\x93 \"w\xc3\xb6rld\"");
  CHECK(schema.query_column(
            "SELECT version || ':' || name FROM schema_migrations ORDER BY version") ==
        std::vector<std::string>{"1:create_widgets", "2:seed_widgets"});
  CHECK(schema.query_value("SELECT checksum FROM schema_migrations WHERE version = 2") ==
        std::to_string(static_cast<std::int64_t>(
            notifs::storage::migration_checksum(notifs::storage_test::test_migrations()[1].sql))));

  const auto second = apply_migrations(*pool, notifs::storage_test::test_migrations(), kLock);
  CHECK(second.applied.empty());
  CHECK(second.current_version == 2);
  CHECK(schema.query_value("SELECT count(*) FROM widgets") == "3");
  CHECK(advisory_locks_held(*pool) == 0);
}

TEST_CASE("storage: replicas migrating together apply each migration exactly once",
          "[storage][pg]") {
  const pg_test::TestSchema schema;
  const std::vector<Migration> migrations = three();
  constexpr int kReplicas = 4;
  std::vector<std::unique_ptr<PgPool>> pools;
  for (int i = 0; i < kReplicas; ++i) pools.push_back(make_pool(schema.url()));
  // Open every replica's connection first, so they really race for the lock.
  for (auto& pool : pools) pool->acquire();

  std::latch start(kReplicas);
  std::vector<notifs::storage::MigrationReport> reports(kReplicas);
  std::atomic<int> failures{0};
  std::vector<std::thread> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    replicas.emplace_back([&, i] {
      start.arrive_and_wait();
      try {
        reports[static_cast<std::size_t>(i)] =
            apply_migrations(*pools[static_cast<std::size_t>(i)], migrations, kLock);
      } catch (const std::exception& error) {
        ++failures;
        UNSCOPED_INFO("replica " << i << ": " << error.what());
      }
    });
  }
  for (auto& replica : replicas) replica.join();
  REQUIRE(failures == 0);

  std::multiset<int> applied;
  for (const auto& report : reports) {
    applied.insert(report.applied.begin(), report.applied.end());
    CHECK(report.current_version == 3);
  }
  CHECK(applied == std::multiset<int>{1, 2, 3});
  CHECK(schema.query_value("SELECT count(*) FROM widgets") == "4");
  CHECK(schema.query_value("SELECT count(*) FROM schema_migrations") == "3");
}

TEST_CASE("storage: an applied migration whose text changed is refused, naming it",
          "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());
  apply_migrations(*pool, notifs::storage_test::test_migrations(), kLock);

  std::vector<Migration> edited = three();
  edited[0].sql += "\n-- an innocent comment\n";
  CHECK_THAT(refusal([&] { apply_migrations(*pool, edited, kLock); }),
             Catch::Contains("0001_create_widgets"));
  // Refused before anything newer ran.
  CHECK(schema.query_value("SELECT max(version) FROM schema_migrations") == "2");
  CHECK(schema.query_value("SELECT count(*) FROM widgets") == "3");
  CHECK(advisory_locks_held(*pool) == 0);
}

TEST_CASE("storage: migrations out of order in the input are refused before anything runs",
          "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());
  std::vector<Migration> swapped = embedded();
  std::swap(swapped[0], swapped[1]);
  CHECK_THROWS_AS(apply_migrations(*pool, swapped, kLock), MigrationError);

  std::vector<Migration> duplicate = embedded();
  duplicate[1].version = 1;
  CHECK_THAT(refusal([&] { apply_migrations(*pool, duplicate, kLock); }),
             Catch::Contains("0001_seed_widgets"));

  std::vector<Migration> zero = embedded();
  zero[0].version = 0;
  CHECK_THROWS_AS(apply_migrations(*pool, zero, kLock), MigrationError);

  CHECK(schema.query_value("SELECT to_regclass('schema_migrations') IS NULL") == "t");
}

TEST_CASE("storage: a failing migration is rolled back whole and reported by version and name",
          "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());
  std::vector<Migration> migrations = embedded();
  migrations.push_back({3, "half_done",
                        "CREATE TABLE gadgets (id int); INSERT INTO widgets (name) VALUES "
                        "('delta'); SELECT * FROM no_such_table;"});

  try {
    apply_migrations(*pool, migrations, kLock);
    FAIL("a migration selecting from a missing table succeeded");
  } catch (const MigrationError& error) {
    CHECK_THAT(error.what(), Catch::Contains("0003_half_done") && Catch::Contains("no_such_table"));
  }
  // The two good ones stay applied; nothing of the third remains.
  CHECK(schema.query_column("SELECT version::text FROM schema_migrations ORDER BY version") ==
        std::vector<std::string>{"1", "2"});
  CHECK(schema.query_value("SELECT to_regclass('gadgets') IS NULL") == "t");
  CHECK(schema.query_value("SELECT count(*) FROM widgets") == "3");
  CHECK(advisory_locks_held(*pool) == 0);

  migrations[2].sql = "CREATE TABLE gadgets (id int);";
  const auto fixed = apply_migrations(*pool, migrations, kLock);
  CHECK(fixed.applied == std::vector<int>{3});
  CHECK(schema.query_value("SELECT to_regclass('gadgets') IS NOT NULL") == "t");
}

TEST_CASE("storage: a newer version recorded by another replica is tolerated", "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());
  apply_migrations(*pool, three(), kLock);
  // An older binary knows only the first two.
  const auto report = apply_migrations(*pool, notifs::storage_test::test_migrations(), kLock);
  CHECK(report.applied.empty());
  CHECK(report.current_version == 3);
}

TEST_CASE("storage: a new migration below an applied one is refused", "[storage][pg]") {
  const pg_test::TestSchema schema;
  auto pool = make_pool(schema.url());
  std::vector<Migration> all = three();
  apply_migrations(*pool, std::vector<Migration>{all[0], all[2]}, kLock);
  CHECK_THAT(refusal([&] { apply_migrations(*pool, all, kLock); }),
             Catch::Contains("0002_seed_widgets"));
  CHECK(schema.query_value("SELECT count(*) FROM widgets") == "1");
}

TEST_CASE("storage: migrations in different schemas do not wait for each other", "[storage][pg]") {
  const pg_test::TestSchema first;
  const pg_test::TestSchema second;
  auto holder = make_pool(first.url());
  auto other = make_pool(second.url());
  // The first schema's run holds its migration lock for 3 s in a migration of its own.
  const std::string marker = "hold_lock_" + first.name();
  std::vector<Migration> blocking = embedded();
  blocking.push_back({3, "hold_lock", "SELECT pg_sleep(3) /* " + marker + " */;"});
  auto slow =
      std::async(std::launch::async, [&] { return apply_migrations(*holder, blocking, kLock); });
  REQUIRE(pg_test::wait_until(
      [&] {
        return pg_test::query_value(pg_test::database_url(),
                                    "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%" +
                                        marker + " */;%' AND pid <> pg_backend_pid()") == "1";
      },
      10000ms));
  CHECK(apply_migrations(*other, notifs::storage_test::test_migrations(), kLock).applied.size() ==
        2);
  CHECK(slow.wait_for(0ms) == std::future_status::timeout);
  CHECK(slow.get().applied.size() == 3);
}
