// The worker's send ledger against the real PostgreSQL: lookups before and after a record,
// double records, batching of concurrent deliveries, input the table cannot hold, and
// PostgreSQL down (a port that refuses connections) and coming back.
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/notification_worker/tcp_gate.hpp"
#include "integration/pg_test_support.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"
#include "send_ledger.hpp"
#include "worker_migrations.hpp"

namespace {

using namespace std::chrono_literals;
namespace pg_test = notifs::pg_test;
using notifs::storage::PgPool;
using notifs::storage::PgPoolSettings;
using notifs::test_support::TcpGate;
using notifs::worker::SendLedger;
using notifs::worker::SendLedgerSettings;
using notifs::worker::SentLookup;
using notifs::worker::SentRecord;
using SteadyClock = std::chrono::steady_clock;

constexpr auto kWait = 30s;

std::string uuid(unsigned n) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "5e1d0000-0000-4000-8000-%012x", n);
  return buffer;
}

SentRecord sent_record(unsigned n, const std::string& provider = "smtp://127.0.0.1:2525") {
  return SentRecord{uuid(n), "email", provider, "250 2.0.0 Ok: queued as Q" + std::to_string(n), 1};
}

SentLookup lookup(SendLedger& ledger, const std::string& id) {
  auto promise = std::make_shared<std::promise<SentLookup>>();
  auto future = promise->get_future();
  ledger.lookup(id, [promise](SentLookup result) { promise->set_value(result); });
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  return future.get();
}

bool record(SendLedger& ledger, SentRecord row) {
  auto promise = std::make_shared<std::promise<bool>>();
  auto future = promise->get_future();
  ledger.record(std::move(row), [promise](bool recorded) { promise->set_value(recorded); });
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  return future.get();
}

// A schema with the worker's migrations applied, a pool on it and a ledger on the pool.
struct Fixture {
  pg_test::TestSchema schema;
  std::unique_ptr<PgPool> pool;
  std::unique_ptr<SendLedger> ledger;

  explicit Fixture(SendLedgerSettings settings = {}) {
    PgPoolSettings pool_settings;
    pool_settings.url = schema.url();
    pool_settings.size = 4;
    pool = std::make_unique<PgPool>(pool_settings, nullptr);
    notifs::storage::apply_migrations(*pool, notifs::worker::migrations(), "notification_worker");
    ledger = std::make_unique<SendLedger>(*pool, settings);
  }
  ~Fixture() { ledger.reset(); }

  std::string count() const { return schema.query_value("SELECT count(*) FROM sent_notifications"); }
};

// The test cluster's URL for `schema`, through `port` instead of the cluster's own.
std::string url_through(std::uint16_t port, const std::string& schema) {
  const std::regex pattern(R"(^(postgres(?:ql)?://[^/?]*:)(\d+)(.*)$)");
  std::smatch match;
  const std::string base = pg_test::database_url();
  REQUIRE(std::regex_match(base, match, pattern));
  return pg_test::url_with_search_path(match[1].str() + std::to_string(port) + match[3].str(), schema);
}

std::uint16_t cluster_port() {
  const std::regex pattern(R"(^postgres(?:ql)?://[^/?]*:(\d+).*$)");
  std::smatch match;
  const std::string base = pg_test::database_url();
  REQUIRE(std::regex_match(base, match, pattern));
  return static_cast<std::uint16_t>(std::stoi(match[1].str()));
}

PgPoolSettings pool_through(std::uint16_t port, const std::string& schema) {
  PgPoolSettings settings;
  settings.url = url_through(port, schema);
  settings.size = 2;
  settings.connect_timeout = 1000ms;
  settings.acquire_timeout = 1000ms;
  return settings;
}

}  // namespace

TEST_CASE("worker send ledger answers not sent before a record and sent after it") {
  Fixture f;
  CHECK(lookup(*f.ledger, uuid(1)) == SentLookup::not_sent);
  CHECK(record(*f.ledger, SentRecord{uuid(1), "push", "fcm-a", "projects/p/messages/42", 3}));
  CHECK(lookup(*f.ledger, uuid(1)) == SentLookup::sent);
  // Ids are UUIDs, whatever their case.
  std::string upper = uuid(1);
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(lookup(*f.ledger, upper) == SentLookup::sent);
  CHECK(lookup(*f.ledger, uuid(2)) == SentLookup::not_sent);

  CHECK(f.schema.query_value("SELECT notification_id || '|' || channel || '|' || provider || '|' || "
                             "detail || '|' || attempt FROM sent_notifications") ==
        uuid(1) + "|push|fcm-a|projects/p/messages/42|3");
  CHECK(f.schema.query_value("SELECT sent_at > now() - interval '1 minute' FROM sent_notifications") ==
        "t");
}

TEST_CASE("worker send ledger keeps the first record of an id recorded twice") {
  Fixture f;
  CHECK(record(*f.ledger, sent_record(7, "smtp-first")));
  CHECK(record(*f.ledger, sent_record(7, "smtp-second")));
  CHECK(f.count() == "1");
  CHECK(f.schema.query_value("SELECT provider FROM sent_notifications") == "smtp-first");

  // Two records of one id in flight at once (likely one batch, one statement): both true.
  std::promise<bool> first;
  std::promise<bool> second;
  f.ledger->record(sent_record(8, "a"), [&first](bool ok) { first.set_value(ok); });
  f.ledger->record(sent_record(8, "b"), [&second](bool ok) { second.set_value(ok); });
  auto first_done = first.get_future();
  auto second_done = second.get_future();
  REQUIRE(first_done.wait_for(kWait) == std::future_status::ready);
  REQUIRE(second_done.wait_for(kWait) == std::future_status::ready);
  CHECK(first_done.get());
  CHECK(second_done.get());
  CHECK(f.count() == "2");
  CHECK(f.schema.query_value("SELECT count(*) FROM sent_notifications WHERE notification_id = '" +
                             uuid(8) + "'") == "1");
}

TEST_CASE("worker send ledger batches 1,000 concurrent lookups and records into far fewer statements") {
  Fixture f;
  // Half of the looked-up ids are recorded beforehand, so the answers can be checked.
  constexpr unsigned kIds = 1000;
  for (unsigned n = 0; n < kIds / 2; n += 50) {
    std::vector<std::future<bool>> done;
    for (unsigned k = n; k < n + 50; ++k) {
      auto promise = std::make_shared<std::promise<bool>>();
      done.push_back(promise->get_future());
      f.ledger->record(sent_record(k), [promise](bool ok) { promise->set_value(ok); });
    }
    for (auto& future : done) {
      REQUIRE(future.wait_for(kWait) == std::future_status::ready);
      REQUIRE(future.get());
    }
  }
  const auto before = f.ledger->stats();

  constexpr unsigned kThreads = 8;
  constexpr unsigned kPerThread = kIds / kThreads;
  std::atomic<unsigned> wrong_lookups{0};
  std::atomic<unsigned> failed_records{0};
  std::atomic<unsigned> completed{0};
  std::promise<void> all_done;
  auto finished = all_done.get_future();
  const auto complete = [&] {
    if (++completed == 2 * kIds) all_done.set_value();
  };
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (unsigned i = 0; i < kPerThread; ++i) {
        const unsigned n = t * kPerThread + i;
        const auto expected = n < kIds / 2 ? SentLookup::sent : SentLookup::not_sent;
        f.ledger->lookup(uuid(n), [&, expected](SentLookup found) {
          if (found != expected) ++wrong_lookups;
          complete();
        });
        f.ledger->record(sent_record(kIds + n), [&](bool ok) {
          if (!ok) ++failed_records;
          complete();
        });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  REQUIRE(finished.wait_for(60s) == std::future_status::ready);
  CHECK(wrong_lookups == 0);
  CHECK(failed_records == 0);
  CHECK(f.count() == std::to_string(kIds / 2 + kIds));

  const auto after = f.ledger->stats();
  const auto operations = after.operations - before.operations;
  const auto statements = after.statements - before.statements;
  CHECK(operations == 2 * kIds);
  INFO("statements=" << statements << " batches=" << (after.batches - before.batches));
  // One statement per batch, and batches of many: far below one round trip per message.
  CHECK(statements == after.batches - before.batches);
  CHECK(statements * 5 <= operations);
}

TEST_CASE("worker send ledger answers input the table cannot hold at once, without a statement") {
  Fixture f;
  // The callbacks run before the calls return: nothing is queued for them.
  std::optional<SentLookup> looked_up;
  f.ledger->lookup("not-a-uuid", [&](SentLookup result) { looked_up = result; });
  REQUIRE(looked_up);
  CHECK(*looked_up == SentLookup::unavailable);

  std::vector<SentRecord> refused = {
      SentRecord{"5e1d0000-0000-4000-8000-00000000000", "email", "smtp", "250 ok", 1},  // one digit short
      SentRecord{uuid(1) + "'; DROP TABLE sent_notifications; --", "email", "smtp", "250", 1},
      SentRecord{uuid(1), "sms", "smtp", "250 ok", 1},
      SentRecord{uuid(1), "email", "smtp", "250 ok", 3'000'000'000u},
  };
  for (auto& row : refused) {
    std::optional<bool> recorded;
    f.ledger->record(row, [&](bool ok) { recorded = ok; });
    REQUIRE(recorded);
    CHECK_FALSE(*recorded);
  }
  CHECK(f.ledger->stats().statements == 0);
  CHECK(f.ledger->stats().operations == 0);
  CHECK(f.count() == "0");
}

TEST_CASE("worker send ledger stores any provider answer as valid text") {
  Fixture f;
  // Quotes, backslashes, braces and commas are array-literal syntax; \xff is not UTF-8 and
  // a NUL cannot be stored at all.
  std::string detail = "250 \"ok\" \\ {queued}, NULL as é";
  detail += '\xff';
  detail += std::string("\0tail", 5);
  CHECK(record(*f.ledger, SentRecord{uuid(3), "email", "smtp://mail,{x}", detail, 2}));
  CHECK(f.schema.query_value("SELECT detail FROM sent_notifications") ==
        "250 \"ok\" \\ {queued}, NULL as é?tail");
  CHECK(f.schema.query_value("SELECT provider FROM sent_notifications") == "smtp://mail,{x}");

  CHECK(record(*f.ledger, SentRecord{uuid(4), "email", "smtp", std::string(5000, 'x'), 1}));
  CHECK(f.schema.query_value("SELECT length(detail) FROM sent_notifications WHERE notification_id = '" +
                             uuid(4) + "'") == "1000");
}

TEST_CASE("worker send ledger with PostgreSQL unreachable: lookups unavailable at once, records false after their patience") {
  pg_test::TestSchema schema;
  TcpGate closed(cluster_port());  // never opened: refuses every connection
  PgPool pool(pool_through(closed.port(), schema.name()), nullptr);
  SendLedgerSettings settings;
  settings.record_patience = 600ms;
  settings.retry_interval = 100ms;
  SendLedger ledger(pool, settings);

  auto started = SteadyClock::now();
  CHECK(lookup(ledger, uuid(1)) == SentLookup::unavailable);
  CHECK(SteadyClock::now() - started < 5s);  // a refused connect: expected in milliseconds

  started = SteadyClock::now();
  CHECK_FALSE(record(ledger, sent_record(1)));
  const auto waited = SteadyClock::now() - started;
  CHECK(waited >= 600ms);  // it kept trying for the whole patience
  CHECK(waited < 10s);
  CHECK(ledger.stats().batches >= 3);  // the first try and retries every 100 ms
}

TEST_CASE("worker send ledger records once PostgreSQL comes back within the patience") {
  Fixture f;  // the schema and its table, through the cluster's own port
  TcpGate gate(cluster_port());
  PgPool pool(pool_through(gate.port(), f.schema.name()), nullptr);
  SendLedgerSettings settings;
  settings.record_patience = 20s;
  settings.retry_interval = 100ms;
  SendLedger ledger(pool, settings);

  CHECK(lookup(ledger, uuid(5)) == SentLookup::unavailable);  // down
  std::promise<bool> recorded;
  auto done = recorded.get_future();
  ledger.record(sent_record(5), [&recorded](bool ok) { recorded.set_value(ok); });
  // Still down: the record waits instead of failing.
  CHECK(done.wait_for(500ms) == std::future_status::timeout);
  CHECK(f.count() == "0");

  gate.open();
  REQUIRE(done.wait_for(kWait) == std::future_status::ready);
  CHECK(done.get());
  CHECK(gate.connections() >= 1);
  CHECK(f.count() == "1");
  CHECK(lookup(ledger, uuid(5)) == SentLookup::sent);
}

TEST_CASE("worker send ledger destruction answers a waiting record without waiting out its patience") {
  pg_test::TestSchema schema;
  TcpGate closed(cluster_port());
  PgPool pool(pool_through(closed.port(), schema.name()), nullptr);
  SendLedgerSettings settings;
  settings.record_patience = 60s;
  settings.retry_interval = 100ms;
  auto ledger = std::make_unique<SendLedger>(pool, settings);
  std::promise<bool> recorded;
  auto done = recorded.get_future();
  ledger->record(sent_record(6), [&recorded](bool ok) { recorded.set_value(ok); });
  REQUIRE(pg_test::wait_until([&] { return ledger->stats().batches >= 2; }, 10s));  // retrying
  const auto started = SteadyClock::now();
  ledger.reset();
  CHECK(SteadyClock::now() - started < 10s);
  REQUIRE(done.wait_for(0s) == std::future_status::ready);
  CHECK_FALSE(done.get());
}
