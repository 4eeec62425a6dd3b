// PgPool against the PostgreSQL scripts/test started: bounded borrowing, timeouts, error
// translation and replacement of connections that broke, all checked from the server's
// side (pg_stat_activity, pg_backend_pid) as well as through the pool.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "integration/pg_test_support.hpp"
#include "notifs/storage/pg_pool.hpp"

using namespace std::chrono_literals;
using notifs::storage::PgPool;
using notifs::storage::PgPoolSettings;
using notifs::storage::StorageUnavailable;
using Reason = notifs::storage::StorageUnavailable::Reason;
namespace pg_test = notifs::pg_test;

namespace {

std::string unique_name(const char* prefix) {
  std::random_device device;
  std::ostringstream out;
  out << prefix << std::hex << std::uniform_int_distribution<std::uint32_t>()(device);
  return out.str();
}

PgPoolSettings pool_settings(std::string url, std::size_t size = 2) {
  PgPoolSettings settings;
  settings.url = std::move(url);
  settings.name = unique_name("storage-test-");
  settings.application_name = settings.name;
  settings.size = size;
  settings.acquire_timeout = 2000ms;
  settings.connect_timeout = 3000ms;
  settings.statement_timeout = 5000ms;
  return settings;
}

// A loopback port that refuses connections: bound (so nobody else takes it while the test
// runs) but never listening.
class ClosedPort {
 public:
  ClosedPort() : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~ClosedPort() { ::close(fd_); }
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_;
  std::uint16_t port_ = 0;
};

int backend_pid(PgPool& pool) {
  return pool.run([](pqxx::connection_base& connection) { return connection.backendpid(); });
}

std::string show(PgPool& pool, const std::string& variable) {
  return pool.run([&](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    return tx.exec("SHOW " + variable)[0][0].as<std::string>();
  });
}

double metric_value(prometheus::Registry& registry, const std::string& family_name,
                    const std::string& pool) {
  for (const auto& family : registry.Collect()) {
    if (family.name != family_name) continue;
    for (const auto& metric : family.metric) {
      const bool ours = std::any_of(metric.label.begin(), metric.label.end(), [&](const auto& l) {
        return l.name == "pool" && l.value == pool;
      });
      if (!ours) continue;
      if (family.type == prometheus::MetricType::Counter) return metric.counter.value;
      if (family.type == prometheus::MetricType::Gauge) return metric.gauge.value;
      if (family.type == prometheus::MetricType::Histogram) {
        return static_cast<double>(metric.histogram.sample_count);
      }
    }
  }
  FAIL("no series " << family_name << "{pool=" << pool << "}");
  return -1;
}

}  // namespace

TEST_CASE("storage: a pool of one makes the next borrower wait, then reports pool_exhausted",
          "[storage][pg]") {
  auto registry = std::make_shared<prometheus::Registry>();
  PgPoolSettings settings = pool_settings(pg_test::database_url(), 1);
  settings.acquire_timeout = 300ms;
  PgPool pool(settings, registry);

  PgPool::Lease first = pool.acquire();
  const auto started = std::chrono::steady_clock::now();
  try {
    pool.acquire();
    FAIL("a second lease from a pool of one");
  } catch (const StorageUnavailable& error) {
    const auto waited = std::chrono::steady_clock::now() - started;
    CHECK(error.reason() == Reason::pool_exhausted);
    CHECK_THAT(error.what(), Catch::Contains(settings.name) && Catch::Contains("1"));
    CHECK(waited >= 280ms);
    CHECK(waited < 5s);
  }
  CHECK(metric_value(*registry, "notifs_db_acquire_timeouts_total", settings.name) == 1);

  // A borrower waiting when the lease comes back gets that very connection.
  const int first_pid = first.connection().backendpid();
  auto waiter = std::async(std::launch::async, [&] {
    PgPool::Lease lease = pool.acquire();
    return lease.connection().backendpid();
  });
  REQUIRE(pg_test::wait_until([&] { return pool.stats().waiting == 1; }, 2000ms));
  CHECK(metric_value(*registry, "notifs_db_waiting_borrowers", settings.name) == 1);
  { PgPool::Lease returned = std::move(first); }
  CHECK(waiter.get() == first_pid);
  const auto stats = pool.stats();
  CHECK(stats.open == 1);
  CHECK(stats.idle == 1);
  CHECK(stats.waiting == 0);
  CHECK(metric_value(*registry, "notifs_db_connections_open", settings.name) == 1);
  CHECK(metric_value(*registry, "notifs_db_acquire_wait_seconds", settings.name) == 2);
}

TEST_CASE("storage: concurrent borrowers never hold more connections than the pool size",
          "[storage][pg]") {
  PgPoolSettings settings = pool_settings(pg_test::database_url(), 3);
  settings.acquire_timeout = 10000ms;
  PgPool pool(settings, nullptr);

  std::atomic<long long> most_seen{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> borrowers;
  for (int t = 0; t < 8; ++t) {
    borrowers.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        try {
          // The server counts the sessions carrying this pool's application_name while
          // this one holds its connection.
          const long long seen = pool.run([&](pqxx::connection_base& connection) {
            pqxx::nontransaction tx(connection);
            tx.exec("SELECT pg_sleep(0.005)");
            return tx
                .exec_params("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                             settings.application_name)[0][0]
                .as<long long>();
          });
          long long previous = most_seen.load();
          while (seen > previous && !most_seen.compare_exchange_weak(previous, seen)) {
          }
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  }
  for (auto& borrower : borrowers) borrower.join();
  CHECK(failures == 0);
  CHECK(most_seen.load() <= 3);
  CHECK(most_seen.load() >= 1);
  const auto stats = pool.stats();
  CHECK(stats.open <= 3);
  CHECK(stats.idle == stats.open);
  CHECK(stats.waiting == 0);
}

TEST_CASE(
    "storage: new connections carry application_name, statement_timeout and the URL's options",
    "[storage][pg]") {
  const pg_test::TestSchema schema;
  PgPoolSettings settings = pool_settings(schema.url(), 1);
  settings.statement_timeout = 1234ms;
  PgPool pool(settings, nullptr);
  CHECK(show(pool, "application_name") == settings.application_name);
  CHECK(show(pool, "statement_timeout") == "1234ms");
  // The schema's search_path arrives in the URL's own `options`: the pool's
  // statement_timeout must be added to it, not replace it.
  CHECK(show(pool, "search_path") == schema.name());
}

TEST_CASE("storage: statement_timeout cancels a slow statement as StorageUnavailable(timeout)",
          "[storage][pg]") {
  PgPoolSettings settings = pool_settings(pg_test::database_url(), 1);
  settings.statement_timeout = 200ms;
  PgPool pool(settings, nullptr);
  const int pid = backend_pid(pool);
  const auto started = std::chrono::steady_clock::now();
  try {
    pool.run([](pqxx::connection_base& connection) {
      pqxx::work tx(connection);
      tx.exec("SELECT pg_sleep(10)");
      tx.commit();
    });
    FAIL("pg_sleep(10) finished under a 200 ms statement_timeout");
  } catch (const StorageUnavailable& error) {
    CHECK(error.reason() == Reason::timeout);
    CHECK_THAT(error.what(), Catch::Contains(settings.name));
  }
  CHECK(std::chrono::steady_clock::now() - started < 5s);
  // A cancelled statement leaves a healthy session: it is reused, not replaced.
  CHECK(backend_pid(pool) == pid);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("storage: constraint violations pass through run() unchanged", "[storage][pg]") {
  const pg_test::TestSchema schema;
  schema.exec("CREATE TABLE people (email text PRIMARY KEY)");
  PgPool pool(pool_settings(schema.url(), 1), nullptr);
  const auto insert = [](const std::string& email) {
    return [email](pqxx::connection_base& connection) {
      pqxx::work tx(connection);
      tx.exec_params("INSERT INTO people (email) VALUES ($1)", email);
      tx.commit();
    };
  };
  pool.run(insert("a@example.com"));
  CHECK_THROWS_AS(pool.run(insert("a@example.com")), pqxx::unique_violation);
  // Text that would break SQL assembled from input is just data to a parameter.
  const std::string nasty = "'; DROP TABLE people; --";
  pool.run(insert(nasty));
  CHECK(schema.query_value("SELECT count(*) FROM people") == "2");
  CHECK(schema.query_value(
            "SELECT count(*) FROM people WHERE email = '''; DROP TABLE people; --'") == "1");
  CHECK(pool.stats().open == 1);
}

TEST_CASE("storage: connecting to a closed port fails fast with connect_failed, password masked",
          "[storage][pg]") {
  const ClosedPort closed;
  PgPoolSettings settings = pool_settings(
      "postgresql://postgres:s3cret-pw@127.0.0.1:" + std::to_string(closed.port()) + "/notifs_test",
      2);
  PgPool pool(settings, nullptr);
  const auto started = std::chrono::steady_clock::now();
  try {
    pool.run([](pqxx::connection_base&) { FAIL("work ran without a connection"); });
    FAIL("a connection to a closed port");
  } catch (const StorageUnavailable& error) {
    CHECK(error.reason() == Reason::connect_failed);
    const std::string what = error.what();
    CHECK_THAT(what, Catch::Contains("127.0.0.1:" + std::to_string(closed.port())));
    CHECK_THAT(what, Catch::Contains("refused"));
    CHECK_THAT(what, !Catch::Contains("s3cret-pw"));
    CHECK_THAT(what, Catch::Contains("***"));
  }
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(pool.stats().open == 0);
  CHECK_FALSE(pool.ping(1000ms));
  CHECK(pool.stats().open == 0);
}

TEST_CASE("storage: statements prepared in on_connect work on every connection", "[storage][pg]") {
  std::atomic<int> set_up{0};
  PgPoolSettings settings = pool_settings(pg_test::database_url(), 2);
  settings.on_connect = [&](pqxx::connection_base& connection) {
    connection.prepare("add_one", "SELECT $1::int + 1");
    ++set_up;
  };
  PgPool pool(settings, nullptr);
  {
    // Two leases at once: two connections, each set up once.
    PgPool::Lease a = pool.acquire();
    PgPool::Lease b = pool.acquire();
    for (PgPool::Lease* lease : {&a, &b}) {
      pqxx::nontransaction tx(lease->connection());
      CHECK(tx.exec_prepared("add_one", 41)[0][0].as<int>() == 42);
    }
  }
  CHECK(set_up == 2);
  for (int i = 0; i < 5; ++i) {
    CHECK(pool.run([&](pqxx::connection_base& connection) {
      pqxx::nontransaction tx(connection);
      return tx.exec_prepared("add_one", i)[0][0].as<int>();
    }) == i + 1);
  }
  CHECK(set_up == 2);
}

TEST_CASE("storage: a connection whose on_connect throws is not lent", "[storage][pg]") {
  PgPoolSettings settings = pool_settings(pg_test::database_url(), 1);
  bool fail = true;
  settings.on_connect = [&](pqxx::connection_base&) {
    if (fail) throw std::runtime_error("setup refused");
  };
  PgPool pool(settings, nullptr);
  CHECK_THROWS_WITH(pool.acquire(), "setup refused");
  CHECK(pool.stats().open == 0);
  fail = false;
  CHECK(backend_pid(pool) > 0);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("storage: a connection terminated by the server is replaced and the work retried once",
          "[storage][pg]") {
  PgPool pool(pool_settings(pg_test::database_url(), 1), nullptr);
  const int first_pid = backend_pid(pool);
  REQUIRE(pg_test::query_value(pg_test::database_url(),
                               "SELECT pg_terminate_backend(" + std::to_string(first_pid) + ")") ==
          "t");
  REQUIRE(pg_test::wait_until(
      [&] {
        return pg_test::query_value(pg_test::database_url(),
                                    "SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                        std::to_string(first_pid)) == "0";
      },
      5000ms));

  int attempts = 0;
  const int second_pid = pool.run([&](pqxx::connection_base& connection) {
    ++attempts;
    pqxx::work tx(connection);
    const int pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<int>();
    tx.commit();
    return pid;
  });
  CHECK(attempts == 2);
  CHECK(second_pid != first_pid);
  CHECK(pool.stats().open == 1);
}

TEST_CASE("storage: a connection lost on the retry too is reported as connection_lost",
          "[storage][pg]") {
  PgPool pool(pool_settings(pg_test::database_url(), 1), nullptr);
  int attempts = 0;
  try {
    pool.run([&](pqxx::connection_base& connection) {
      ++attempts;
      pqxx::nontransaction tx(connection);
      tx.exec("SELECT pg_terminate_backend(pg_backend_pid())");
    });
    FAIL("work that kills its own session succeeded");
  } catch (const StorageUnavailable& error) {
    CHECK(error.reason() == Reason::connection_lost);
  }
  CHECK(attempts == 2);
  CHECK(pool.stats().open == 0);
  CHECK(pool.ping(2000ms));
}

TEST_CASE("storage: a discarded lease is closed, not returned", "[storage][pg]") {
  PgPool pool(pool_settings(pg_test::database_url(), 1), nullptr);
  int pid = 0;
  {
    PgPool::Lease lease = pool.acquire();
    pid = lease.connection().backendpid();
    lease.discard();
    CHECK_THROWS_AS(lease.connection(), std::logic_error);
    CHECK(pool.stats().open == 0);
  }
  CHECK(backend_pid(pool) != pid);
  CHECK(pg_test::wait_until(
      [&] {
        return pg_test::query_value(pg_test::database_url(),
                                    "SELECT count(*) FROM pg_stat_activity WHERE pid = " +
                                        std::to_string(pid)) == "0";
      },
      5000ms));
}
