// The gateway's notifications ledger against the real server: claims batched across
// concurrent requests, replay, conflict and in-progress answers, confirm and release of
// pending rows, status events that never move a notification backwards, and the reads.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gateway_migrations.hpp"
#include "integration/pg_test_support.hpp"
#include "ledger.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace {

namespace gw = notifs::api_gateway;
namespace pg_test = notifs::pg_test;
using Outcome = gw::ClaimResult::Outcome;

constexpr auto kWait = std::chrono::seconds{30};
const std::string kUserA = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";
const std::string kUserB = "0b7e6a52-91c4-4d3e-8f2a-5c6d7e8f9a0b";

std::string uuid(unsigned n) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "00000000-0000-4000-8000-%012x", n);
  return buffer;
}

gw::NewNotification notification(unsigned n, const std::string& request_id,
                                 const std::string& fingerprint = "fp-1",
                                 const std::string& user = kUserA) {
  gw::NewNotification row;
  row.notification_id = uuid(n);
  row.api_key_id = "key-a";
  row.request_id = request_id;
  row.fingerprint = fingerprint;
  row.user_id = user;
  row.notification_type = gw::Channel::email;
  row.template_code = "welcome_email";
  row.priority = 5;
  row.metadata = {{"campaign", "onboarding"}};
  return row;
}

// The schema, a pool and a ledger on them, torn down in the right order.
struct Fixture {
  pg_test::TestSchema schema;
  std::unique_ptr<notifs::storage::PgPool> pool;
  std::unique_ptr<gw::Ledger> ledger;

  explicit Fixture(gw::LedgerSettings settings = {}) {
    notifs::storage::PgPoolSettings pool_settings;
    pool_settings.url = schema.url();
    pool_settings.size = 4;
    pool = std::make_unique<notifs::storage::PgPool>(pool_settings, nullptr);
    notifs::storage::apply_migrations(*pool, gw::migrations(), "api_gateway");
    ledger = std::make_unique<gw::Ledger>(*pool, settings);
  }
  ~Fixture() { ledger.reset(); }

  gw::ClaimResult claim(gw::NewNotification row) {
    auto done = std::make_shared<std::promise<gw::LedgerResult<gw::ClaimResult>>>();
    auto future = done->get_future();
    ledger->claim(std::move(row), [done](auto result) { done->set_value(std::move(result)); });
    REQUIRE(future.wait_for(kWait) == std::future_status::ready);
    auto result = future.get();
    REQUIRE(result.ok());
    return result.value;
  }

  template <typename Submit>
  bool done(Submit submit) {
    auto promise = std::make_shared<std::promise<gw::LedgerResult<bool>>>();
    auto future = promise->get_future();
    submit([promise](gw::LedgerResult<bool> result) { promise->set_value(std::move(result)); });
    REQUIRE(future.wait_for(kWait) == std::future_status::ready);
    auto result = future.get();
    REQUIRE(result.ok());
    return result.value;
  }

  bool confirm(const std::string& id, gw::Status status, const std::string& reason = "") {
    return done([&](auto cb) { ledger->confirm(id, status, reason, cb); });
  }
  bool release(const std::string& id) {
    return done([&](auto cb) { ledger->release(id, cb); });
  }
  bool apply(const std::string& id, gw::Status status, std::uint32_t attempt,
             const std::string& error = "") {
    gw::StatusEvent event;
    event.notification_id = id;
    event.status = status;
    event.attempt = attempt;
    event.error = error;
    event.at = std::chrono::system_clock::now();
    return done([&](auto cb) { ledger->apply_status(event, cb); });
  }
};

}  // namespace

TEST_CASE("ledger: a claim answers claimed, then in progress, replay or conflict",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  const auto first = f.claim(notification(1, "order-1"));
  CHECK(first.outcome == Outcome::claimed);
  CHECK(first.existing.notification_id == uuid(1));

  // Pending and young: the first request is still publishing.
  const auto busy = f.claim(notification(2, "order-1"));
  CHECK(busy.outcome == Outcome::in_progress);
  CHECK(busy.existing.notification_id == uuid(1));
  CHECK(busy.existing.pending);

  // Another body under the same id is a conflict even while pending.
  CHECK(f.claim(notification(3, "order-1", "fp-other")).outcome == Outcome::conflict);

  REQUIRE(f.confirm(uuid(1), gw::Status::queued));
  const auto replay = f.claim(notification(4, "order-1"));
  CHECK(replay.outcome == Outcome::replay);
  CHECK(replay.existing.notification_id == uuid(1));
  CHECK(replay.existing.status == gw::Status::queued);
  CHECK_FALSE(replay.existing.pending);
  CHECK(replay.existing.fingerprint == "fp-1");
  const auto conflict = f.claim(notification(5, "order-1", "fp-other"));
  CHECK(conflict.outcome == Outcome::conflict);
  CHECK(conflict.existing.notification_id == uuid(1));

  // The same request_id under another API key is another notification.
  auto other_key = notification(6, "order-1");
  other_key.api_key_id = "key-b";
  CHECK(f.claim(other_key).outcome == Outcome::claimed);
  CHECK(f.schema.query_value("SELECT count(*) FROM notifications") == "2");
}

TEST_CASE("ledger: a pending row older than pending_takeover is taken over, once",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  REQUIRE(f.claim(notification(1, "crashed")).outcome == Outcome::claimed);
  REQUIRE(f.claim(notification(2, "alive")).outcome == Outcome::claimed);
  // The gateway that claimed "crashed" died an hour ago, before confirm or release.
  f.schema.exec("UPDATE notifications SET created_at = created_at - interval '1 hour' "
                "WHERE request_id = 'crashed'");

  // Two retries in one go, even with another body: one takes the row over, under its id.
  auto promise_a = std::make_shared<std::promise<gw::LedgerResult<gw::ClaimResult>>>();
  auto promise_b = std::make_shared<std::promise<gw::LedgerResult<gw::ClaimResult>>>();
  auto future_a = promise_a->get_future();
  auto future_b = promise_b->get_future();
  f.ledger->claim(notification(3, "crashed", "fp-new"),
                  [promise_a](auto r) { promise_a->set_value(std::move(r)); });
  f.ledger->claim(notification(4, "crashed", "fp-new"),
                  [promise_b](auto r) { promise_b->set_value(std::move(r)); });
  REQUIRE(future_a.wait_for(kWait) == std::future_status::ready);
  REQUIRE(future_b.wait_for(kWait) == std::future_status::ready);
  const auto a = future_a.get();
  const auto b = future_b.get();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  const int claimed = (a.value.outcome == Outcome::claimed ? 1 : 0) +
                      (b.value.outcome == Outcome::claimed ? 1 : 0);
  CHECK(claimed == 1);
  const auto& winner = a.value.outcome == Outcome::claimed ? a.value : b.value;
  const auto& loser = a.value.outcome == Outcome::claimed ? b.value : a.value;
  CHECK(winner.existing.notification_id == uuid(1));
  CHECK(loser.outcome == Outcome::in_progress);
  CHECK(f.schema.query_value("SELECT fingerprint FROM notifications WHERE request_id = "
                             "'crashed'") == "fp-new");
  CHECK(f.schema.query_value("SELECT count(*) FROM notifications "
                             "WHERE created_at > now() - interval '1 minute'") == "2");

  // Now young again: the next duplicate waits; the live request's row is never taken.
  CHECK(f.claim(notification(5, "crashed", "fp-new")).outcome == Outcome::in_progress);
  CHECK(f.claim(notification(6, "alive")).outcome == Outcome::in_progress);
  REQUIRE(f.confirm(uuid(1), gw::Status::queued));
  CHECK(f.claim(notification(7, "crashed", "fp-new")).outcome == Outcome::replay);
  CHECK(f.schema.query_value("SELECT count(*) FROM notifications") == "2");
}

TEST_CASE("ledger: 50 concurrent claims of one request_id give exactly one claimed",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  // Each thread submits its claim at the same moment; no Catch2 assertion runs off the
  // test thread (Catch2 v2 is not thread-safe).
  std::vector<std::future<gw::LedgerResult<gw::ClaimResult>>> futures(50);
  std::vector<std::thread> threads;
  std::promise<void> go;
  auto start = go.get_future().share();
  for (unsigned i = 0; i < 50; ++i) {
    threads.emplace_back([&, i, start] {
      auto promise = std::make_shared<std::promise<gw::LedgerResult<gw::ClaimResult>>>();
      futures[i] = promise->get_future();
      start.wait();
      f.ledger->claim(notification(100 + i, "same-request"),
                      [promise](auto result) { promise->set_value(std::move(result)); });
    });
  }
  go.set_value();
  for (auto& thread : threads) {
    thread.join();
  }
  int claimed = 0;
  int in_progress = 0;
  int other = 0;
  for (auto& future : futures) {
    REQUIRE(future.wait_for(kWait) == std::future_status::ready);
    const auto result = future.get();
    REQUIRE(result.ok());
    if (result.value.outcome == Outcome::claimed) {
      ++claimed;
    } else if (result.value.outcome == Outcome::in_progress) {
      ++in_progress;
    } else {
      ++other;
    }
  }
  CHECK(claimed == 1);
  CHECK(in_progress == 49);
  CHECK(other == 0);
  CHECK(f.schema.query_value("SELECT count(*) FROM notifications") == "1");
}

TEST_CASE("ledger: 1000 claims from 8 threads all land in fewer statements than claims",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  constexpr unsigned kThreads = 8;
  constexpr unsigned kPerThread = 125;
  std::atomic<unsigned> claimed{0};
  std::atomic<unsigned> failed{0};
  std::atomic<unsigned> completed{0};
  std::promise<void> all_done;
  auto finished = all_done.get_future();
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (unsigned i = 0; i < kPerThread; ++i) {
        const unsigned n = 1000 + t * kPerThread + i;
        f.ledger->claim(notification(n, "bulk-" + std::to_string(n)),
                        [&](gw::LedgerResult<gw::ClaimResult> result) {
                          if (result.ok() && result.value.outcome == Outcome::claimed) {
                            ++claimed;
                          } else {
                            ++failed;
                          }
                          if (++completed == kThreads * kPerThread) {
                            all_done.set_value();
                          }
                        });
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  REQUIRE(finished.wait_for(std::chrono::seconds{60}) == std::future_status::ready);
  CHECK(claimed == kThreads * kPerThread);
  CHECK(failed == 0);
  CHECK(f.schema.query_value("SELECT count(*) FROM notifications WHERE status = 'pending'") ==
        "1000");
  const auto stats = f.ledger->stats();
  CHECK(stats.operations == 1000);
  // Claims without conflicts cost one INSERT per batch: batching is what keeps the ledger
  // off the request path's critical round trips.
  CHECK(stats.statements == stats.batches);
  INFO("batches=" << stats.batches);
  CHECK(stats.batches < 1000);
}

TEST_CASE("ledger: confirm and release act on pending rows only, which lists never show",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  REQUIRE(f.claim(notification(1, "r-1")).outcome == Outcome::claimed);
  REQUIRE(f.claim(notification(2, "r-2")).outcome == Outcome::claimed);
  REQUIRE(f.claim(notification(3, "r-3")).outcome == Outcome::claimed);

  const auto pending = f.ledger->find(uuid(1));
  REQUIRE(pending.has_value());
  CHECK(pending->pending);
  CHECK(f.ledger->list({}, {}).total == 3);  // shown as queued: see Ledger::find

  // A publish that failed: the row goes, and the client's retry claims again.
  CHECK(f.release(uuid(1)));
  CHECK_FALSE(f.release(uuid(1)));
  CHECK(f.claim(notification(11, "r-1")).outcome == Outcome::claimed);

  CHECK(f.confirm(uuid(2), gw::Status::queued));
  CHECK_FALSE(f.confirm(uuid(2), gw::Status::skipped, "late"));  // no longer pending
  CHECK_FALSE(f.release(uuid(2)));                                // a 202 was given for it
  CHECK(f.confirm(uuid(3), gw::Status::skipped, "channel_disabled"));

  const auto queued = f.ledger->find(uuid(2));
  REQUIRE(queued.has_value());
  CHECK(queued->status == gw::Status::queued);
  CHECK(queued->request_id == "r-2");
  CHECK(queued->user_id == kUserA);
  CHECK(queued->notification_type == gw::Channel::email);
  CHECK(queued->template_code == "welcome_email");
  CHECK(queued->attempts == 0);
  CHECK_FALSE(queued->last_error.has_value());
  CHECK(queued->created_at.size() == 24);  // 2026-01-01T00:00:00.000Z
  CHECK(queued->created_at.back() == 'Z');
  const auto skipped = f.ledger->find(uuid(3));
  REQUIRE(skipped.has_value());
  CHECK(skipped->status == gw::Status::skipped);
  CHECK(skipped->reason == std::optional<std::string>("channel_disabled"));
  CHECK(f.claim(notification(12, "r-3")).outcome == Outcome::replay);

  CHECK(f.ledger->list({}, {}).total == 3);  // r-1's new claim, pending, is listed too
  CHECK_FALSE(f.ledger->find("not-a-uuid").has_value());
  CHECK_FALSE(f.ledger->find(uuid(999)).has_value());

  // Bad input fails as a value, without touching the database.
  auto bad = std::make_shared<std::promise<gw::LedgerResult<bool>>>();
  f.ledger->confirm(uuid(11), gw::Status::delivered, "", [bad](auto r) { bad->set_value(r); });
  CHECK_FALSE(bad->get_future().get().ok());
}

TEST_CASE("ledger: status events out of order never move a notification backwards",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  REQUIRE(f.claim(notification(1, "s-1")).outcome == Outcome::claimed);
  REQUIRE(f.confirm(uuid(1), gw::Status::queued));

  CHECK(f.apply(uuid(1), gw::Status::retrying, 1, "421 try later"));
  CHECK_FALSE(f.apply(uuid(1), gw::Status::processing, 1));  // late
  CHECK(f.apply(uuid(1), gw::Status::delivered, 2));
  CHECK_FALSE(f.apply(uuid(1), gw::Status::processing, 2));  // late
  CHECK_FALSE(f.apply(uuid(1), gw::Status::delivered, 2));   // duplicate
  CHECK_FALSE(f.apply(uuid(1), gw::Status::failed, 3));      // terminal stays
  auto record = f.ledger->find(uuid(1));
  REQUIRE(record.has_value());
  CHECK(record->status == gw::Status::delivered);
  CHECK(record->attempts == 2);
  CHECK(record->last_error == std::optional<std::string>("421 try later"));

  // An event may arrive before the publisher's confirm is written; the confirm then
  // finds nothing pending, and the event's status stands.
  REQUIRE(f.claim(notification(2, "s-2")).outcome == Outcome::claimed);
  CHECK(f.apply(uuid(2), gw::Status::processing, 1));
  CHECK_FALSE(f.confirm(uuid(2), gw::Status::queued));
  CHECK(f.ledger->find(uuid(2))->status == gw::Status::processing);

  // Many events for one row in one go, in the worst order: the fold keeps the greatest.
  REQUIRE(f.claim(notification(3, "s-3")).outcome == Outcome::claimed);
  REQUIRE(f.confirm(uuid(3), gw::Status::queued));
  std::vector<std::future<gw::LedgerResult<bool>>> results;
  const std::vector<std::pair<gw::Status, std::uint32_t>> events = {
      {gw::Status::processing, 3}, {gw::Status::retrying, 2}, {gw::Status::processing, 1},
      {gw::Status::retrying, 1},   {gw::Status::processing, 2}, {gw::Status::queued, 0}};
  for (const auto& [status, attempt] : events) {
    gw::StatusEvent event;
    event.notification_id = uuid(3);
    event.status = status;
    event.attempt = attempt;
    auto promise = std::make_shared<std::promise<gw::LedgerResult<bool>>>();
    results.push_back(promise->get_future());
    f.ledger->apply_status(event, [promise](auto r) { promise->set_value(r); });
  }
  int applied = 0;
  for (auto& result : results) {
    REQUIRE(result.wait_for(kWait) == std::future_status::ready);
    const auto value = result.get();
    REQUIRE(value.ok());
    applied += value.value ? 1 : 0;
  }
  // At least the first; more when two writers split the events and commit a lower one
  // first (the ledger orders nothing across batches). Whatever the order, the greatest
  // event ends up recorded.
  CHECK(applied >= 1);
  record = f.ledger->find(uuid(3));
  REQUIRE(record.has_value());
  CHECK(record->status == gw::Status::processing);
  CHECK(record->attempts == 3);
}

TEST_CASE("ledger: an error folded away with its event still becomes last_error",
          "[api_gateway][ledger][pg]") {
  // One writer: the two events share a batch, where processing(2) wins the fold, or are
  // applied in the order given, where processing's empty error keeps retrying's. With two
  // writers they could run at once, and processing could land first and make retrying
  // stale, error and all.
  gw::LedgerSettings one_writer;
  one_writer.writers = 1;
  Fixture f(one_writer);
  REQUIRE(f.claim(notification(1, "e-1")).outcome == Outcome::claimed);
  REQUIRE(f.confirm(uuid(1), gw::Status::queued));
  std::vector<std::future<gw::LedgerResult<bool>>> results;
  for (const auto& [status, attempt, error] :
       std::vector<std::tuple<gw::Status, std::uint32_t, std::string>>{
           {gw::Status::retrying, 1, "421 try later"}, {gw::Status::processing, 2, ""}}) {
    gw::StatusEvent event;
    event.notification_id = uuid(1);
    event.status = status;
    event.attempt = attempt;
    event.error = error;
    auto promise = std::make_shared<std::promise<gw::LedgerResult<bool>>>();
    results.push_back(promise->get_future());
    f.ledger->apply_status(event, [promise](auto r) { promise->set_value(r); });
  }
  for (auto& result : results) {
    REQUIRE(result.wait_for(kWait) == std::future_status::ready);
    REQUIRE(result.get().ok());
  }
  const auto record = f.ledger->find(uuid(1));
  REQUIRE(record.has_value());
  CHECK(record->status == gw::Status::processing);
  CHECK(record->attempts == 2);
  CHECK(record->last_error == std::optional<std::string>("421 try later"));
}

TEST_CASE("ledger: list filters by user and status, newest first, in pages",
          "[api_gateway][ledger][pg]") {
  Fixture f;
  for (unsigned i = 1; i <= 5; ++i) {
    REQUIRE(f.claim(notification(i, "a-" + std::to_string(i))).outcome == Outcome::claimed);
    REQUIRE(f.confirm(uuid(i), i <= 3 ? gw::Status::queued : gw::Status::skipped, "x"));
  }
  for (unsigned i = 6; i <= 7; ++i) {
    REQUIRE(f.claim(notification(i, "b-" + std::to_string(i), "fp-1", kUserB)).outcome ==
            Outcome::claimed);
    REQUIRE(f.confirm(uuid(i), gw::Status::queued));
  }
  REQUIRE(f.claim(notification(8, "b-pending", "fp-1", kUserB)).outcome == Outcome::claimed);
  // Distinct, known creation times so the order is checkable.
  f.schema.exec(
      "UPDATE notifications SET created_at = timestamptz '2026-01-01 00:00:00+00' + "
      "(right(notification_id::text, 2)::int * interval '1 minute')");

  CHECK(f.ledger->list({}, {}).total == 8);
  const auto b = f.ledger->list({kUserB, std::nullopt}, {1, 20});
  REQUIRE(b.items.size() == 3);
  CHECK(b.items.front().pending);  // newest
  CHECK(b.items.front().status == gw::Status::queued);
  const auto a = f.ledger->list({kUserA, std::nullopt}, {1, 20});
  CHECK(a.total == 5);
  REQUIRE(a.items.size() == 5);
  CHECK(a.items.front().notification_id == uuid(5));
  CHECK(a.items.back().notification_id == uuid(1));
  CHECK(a.items.front().created_at == "2026-01-01T00:05:00.000Z");

  const auto skipped = f.ledger->list({kUserA, gw::Status::skipped}, {1, 20});
  CHECK(skipped.total == 2);
  REQUIRE(skipped.items.size() == 2);
  CHECK(skipped.items[0].notification_id == uuid(5));
  CHECK(skipped.items[1].notification_id == uuid(4));

  // A pending row counts as queued.
  CHECK(f.ledger->list({std::nullopt, gw::Status::queued}, {1, 20}).total == 6);
  CHECK(f.ledger->list({kUserB, gw::Status::skipped}, {1, 20}).total == 0);

  const auto page2 = f.ledger->list({kUserA, std::nullopt}, {2, 2});
  CHECK(page2.total == 5);
  REQUIRE(page2.items.size() == 2);
  CHECK(page2.items[0].notification_id == uuid(3));
  CHECK(page2.items[1].notification_id == uuid(2));
  const auto page3 = f.ledger->list({kUserA, std::nullopt}, {3, 2});
  REQUIRE(page3.items.size() == 1);
  CHECK(page3.items[0].notification_id == uuid(1));
  const auto beyond = f.ledger->list({kUserA, std::nullopt}, {9, 2});
  CHECK(beyond.total == 5);
  CHECK(beyond.items.empty());
  CHECK(f.ledger->list({std::string("nope"), std::nullopt}, {1, 20}).total == 0);
}

TEST_CASE("ledger: PostgreSQL unreachable fails every queued write as a value",
          "[api_gateway][ledger][pg]") {
  notifs::storage::PgPoolSettings settings;
  settings.url = "postgresql://postgres@127.0.0.1:1/nothing";  // port 1: nothing listens
  settings.connect_timeout = std::chrono::milliseconds{1000};
  settings.acquire_timeout = std::chrono::milliseconds{1000};
  notifs::storage::PgPool pool(settings, nullptr);
  gw::Ledger ledger(pool, {});
  auto promise = std::make_shared<std::promise<gw::LedgerResult<gw::ClaimResult>>>();
  auto future = promise->get_future();
  ledger.claim(notification(1, "x"), [promise](auto r) { promise->set_value(std::move(r)); });
  REQUIRE(future.wait_for(kWait) == std::future_status::ready);
  const auto result = future.get();
  REQUIRE_FALSE(result.ok());
  CHECK_THROWS_AS(std::rethrow_exception(result.error), notifs::storage::StorageUnavailable);
}

TEST_CASE("ledger: confirm and status batches over the same rows in opposite orders never deadlock",
          "[api_gateway][ledger][pg]") {
  // Two writers run batches on two connections at once; the confirms go in ascending id
  // order and the worker events in descending order, the crossing that deadlocked before
  // every write took its row locks in notification_id order.
  gw::LedgerSettings settings;
  settings.writers = 2;
  settings.max_batch = 50;
  Fixture f(settings);
  constexpr unsigned kRows = 400;
  for (unsigned i = 1; i <= kRows; ++i) {
    REQUIRE(f.claim(notification(i, "order-" + std::to_string(i))).outcome == Outcome::claimed);
  }

  std::atomic<unsigned> answered{0};
  std::atomic<unsigned> failed{0};
  std::atomic<unsigned> events_applied{0};
  std::promise<void> all_answered;
  const auto count = [&](const gw::LedgerResult<bool>& result) {
    if (!result.ok()) {
      failed.fetch_add(1);
    }
    if (answered.fetch_add(1) + 1 == 2 * kRows) {
      all_answered.set_value();
    }
  };
  const auto count_event = [&](const gw::LedgerResult<bool>& result) {
    if (result.ok() && result.value) {
      events_applied.fetch_add(1);
    }
    count(result);
  };
  std::thread confirms([&] {
    for (unsigned i = 1; i <= kRows; ++i) {
      f.ledger->confirm(uuid(i), gw::Status::queued, "", count);
    }
  });
  std::thread events([&] {
    for (unsigned i = kRows; i >= 1; --i) {
      gw::StatusEvent event{uuid(i), gw::Status::processing, 1, "", std::chrono::system_clock::now()};
      f.ledger->apply_status(event, count_event);
    }
  });
  confirms.join();
  events.join();
  REQUIRE(all_answered.get_future().wait_for(kWait) == std::future_status::ready);
  CHECK(failed.load() == 0);
  // Whichever came first, `processing` outranks both pending and queued: every event
  // applies, also one that waited for a confirm's row lock (such a row changed after the
  // event's statement began; a write that looked for it by the old version's ctid lost it).
  CHECK(events_applied.load() == kRows);
  unsigned processing = 0;
  for (unsigned i = 1; i <= kRows; ++i) {
    const auto record = f.ledger->find(uuid(i));
    REQUIRE(record);
    if (record->status == gw::Status::processing) ++processing;
  }
  CHECK(processing == kRows);
}
