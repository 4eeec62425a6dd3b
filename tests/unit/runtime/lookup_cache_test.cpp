// The gateway's lookup cache: fresh within ttl, stale (usable only if the upstream
// fails) until ttl + stale_ttl, gone after; negative entries for negative_ttl; LRU bound;
// counters; and many threads at once. Time moves only on a FakeClock.
#include "notifs/runtime/lookup_cache.hpp"

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fakes/fake_clock.hpp"

namespace gw = notifs::runtime;
using notifs::fakes::FakeClock;
using namespace std::chrono_literals;

namespace {

// The gateway caches immutable users behind shared pointers; the tests do the same.
struct User {
  std::string id;
  std::string email;
};
using UserHandle = std::shared_ptr<const User>;
using UserCache = gw::LookupCache<UserHandle>;

UserHandle user(const std::string& id, const std::string& email = "a@example.com") {
  return std::make_shared<const User>(User{id, email});
}

gw::LookupCacheSettings settings(std::size_t max_entries = 100, std::size_t shards = 1) {
  gw::LookupCacheSettings s;
  s.ttl = 30s;
  s.stale_ttl = 600s;
  s.negative_ttl = 5s;
  s.max_entries = max_entries;
  s.shards = shards;
  return s;
}

}  // namespace

TEST_CASE("lookup_cache: a value is fresh within ttl, stale until ttl + stale_ttl, then gone",
          "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  const auto ada = user("u1", "ada@example.com");
  cache.put("u1", ada);

  auto found = cache.lookup("u1");
  REQUIRE(found.fresh());
  REQUIRE(found.value.has_value());
  CHECK(*found.value == ada);  // the same handle, not a copy of the user

  clock.advance(30s - 1ns);
  CHECK(cache.lookup("u1").fresh());

  clock.advance(1ns);  // exactly ttl: no longer fresh
  found = cache.lookup("u1");
  REQUIRE(found.stale());
  REQUIRE(found.value.has_value());
  CHECK((*found.value)->email == "ada@example.com");

  clock.advance(600s - 1ns);  // last moment of stale_ttl
  CHECK(cache.lookup("u1").stale());

  clock.advance(1ns);
  found = cache.lookup("u1");
  CHECK(found.miss());
  CHECK_FALSE(found.value.has_value());
  CHECK(cache.size() == 0);  // the dead entry was dropped when met
}

TEST_CASE("lookup_cache: an unknown key is a miss", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  cache.put("u1", user("u1"));
  const auto found = cache.lookup("u2");
  CHECK(found.miss());
  CHECK_FALSE(found.value.has_value());
}

TEST_CASE("lookup_cache: a put refreshes the entry's ttl and value", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  cache.put("u1", user("u1", "old@example.com"));
  clock.advance(40s);
  REQUIRE(cache.lookup("u1").stale());

  cache.put("u1", user("u1", "new@example.com"));
  const auto found = cache.lookup("u1");
  REQUIRE(found.fresh());
  CHECK((*found.value)->email == "new@example.com");
  clock.advance(29s);
  CHECK(cache.lookup("u1").fresh());
}

TEST_CASE("lookup_cache: a negative entry answers absent until negative_ttl", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  cache.put_absent("ghost");

  auto found = cache.lookup("ghost");
  CHECK(found.absent());
  CHECK_FALSE(found.value.has_value());

  clock.advance(5s - 1ns);
  CHECK(cache.lookup("ghost").absent());

  // No stale period for absence: once negative_ttl has passed the upstream is asked again.
  clock.advance(1ns);
  CHECK(cache.lookup("ghost").miss());
  CHECK(cache.size() == 0);
}

TEST_CASE("lookup_cache: negative_ttl 0 remembers no absence but still drops the value",
          "[lookup_cache]") {
  FakeClock clock;
  auto s = settings();
  s.negative_ttl = 0s;
  UserCache cache(s, clock);

  cache.put_absent("ghost");
  CHECK(cache.lookup("ghost").miss());

  // A deleted user must not linger as a stale value to be served during an outage.
  cache.put("u1", user("u1"));
  cache.put_absent("u1");
  CHECK(cache.lookup("u1").miss());
  CHECK(cache.size() == 0);
}

TEST_CASE("lookup_cache: put replaces absent and put_absent replaces a value", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);

  cache.put_absent("u1");
  REQUIRE(cache.lookup("u1").absent());
  cache.put("u1", user("u1", "created@example.com"));
  auto found = cache.lookup("u1");
  REQUIRE(found.fresh());
  CHECK((*found.value)->email == "created@example.com");

  cache.put_absent("u1");
  found = cache.lookup("u1");
  CHECK(found.absent());
  CHECK_FALSE(found.value.has_value());
  // The absence lasts negative_ttl, not the value's ttl + stale_ttl.
  clock.advance(5s);
  CHECK(cache.lookup("u1").miss());
  CHECK(cache.size() == 0);
}

TEST_CASE("lookup_cache: erase forgets values and negative entries", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  cache.put("u1", user("u1"));
  cache.put_absent("u2");
  cache.put("u3", user("u3"));

  cache.erase("u1");
  cache.erase("u2");
  cache.erase("never-there");
  CHECK(cache.lookup("u1").miss());
  CHECK(cache.lookup("u2").miss());
  CHECK(cache.lookup("u3").fresh());
  CHECK(cache.size() == 1);
}

TEST_CASE("lookup_cache: the least recently used entry is evicted first", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(3), clock);
  cache.put("a", user("a"));
  cache.put("b", user("b"));
  cache.put("c", user("c"));

  // A lookup counts as a use: a is now the newest, b the oldest.
  REQUIRE(cache.lookup("a").fresh());
  cache.put("d", user("d"));
  CHECK(cache.size() == 3);
  CHECK(cache.lookup("b").miss());
  CHECK(cache.stats().evictions == 1);

  // Order now (newest first): d, a, c (the miss on b touched nothing). A put to an
  // existing key also counts as a use.
  cache.put("c", user("c"));
  cache.put("e", user("e"));
  CHECK(cache.lookup("a").miss());
  CHECK(cache.lookup("c").fresh());
  CHECK(cache.lookup("d").fresh());
  CHECK(cache.lookup("e").fresh());
  CHECK(cache.stats().evictions == 2);

  // Negative entries take a slot like any other.
  cache.put_absent("f");
  CHECK(cache.size() == 3);
  CHECK(cache.lookup("c").miss());
  CHECK(cache.lookup("f").absent());
}

TEST_CASE("lookup_cache: over many shards the total never exceeds max_entries",
          "[lookup_cache]") {
  FakeClock clock;
  SECTION("more entries than shards") {
    UserCache cache(settings(10, 4), clock);
    for (int i = 0; i < 200; ++i) {
      cache.put("k" + std::to_string(i), user(std::to_string(i)));
    }
    CHECK(cache.size() == 10);
    CHECK(cache.stats().evictions == 190);
    // The last key put is always still there: eviction never takes the newest entry.
    CHECK(cache.lookup("k199").fresh());
  }
  SECTION("fewer entries than shards") {
    UserCache cache(settings(3, 16), clock);
    for (int i = 0; i < 50; ++i) {
      cache.put("k" + std::to_string(i), user(std::to_string(i)));
      CHECK(cache.lookup("k" + std::to_string(i)).fresh());
    }
    CHECK(cache.size() == 3);
  }
}

TEST_CASE("lookup_cache: max_entries 0 caches nothing", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(0, 16), clock);
  cache.put("u1", user("u1"));
  cache.put_absent("u2");
  CHECK(cache.lookup("u1").miss());
  CHECK(cache.lookup("u2").miss());
  CHECK(cache.size() == 0);
}

TEST_CASE("lookup_cache: stats count each kind of answer", "[lookup_cache]") {
  FakeClock clock;
  UserCache cache(settings(), clock);
  cache.put("u1", user("u1"));
  cache.put_absent("u2");

  (void)cache.lookup("u1");  // fresh
  (void)cache.lookup("u1");  // fresh
  (void)cache.lookup("u2");  // absent
  (void)cache.lookup("u3");  // miss
  clock.advance(31s);
  (void)cache.lookup("u1");  // stale
  (void)cache.lookup("u2");  // expired negative: miss

  const auto stats = cache.stats();
  CHECK(stats.fresh_hits == 2);
  CHECK(stats.stale_hits == 1);
  CHECK(stats.absent_hits == 1);
  CHECK(stats.misses == 2);
  CHECK(stats.evictions == 0);
}

TEST_CASE("lookup_cache: settings that cannot work are refused", "[lookup_cache]") {
  FakeClock clock;
  auto s = settings();
  SECTION("negative ttl") { s.ttl = -1ms; }
  SECTION("negative stale_ttl") { s.stale_ttl = -1ms; }
  SECTION("negative negative_ttl") { s.negative_ttl = -1ms; }
  SECTION("zero shards") { s.shards = 0; }
  CHECK_THROWS_AS(UserCache(s, clock), std::invalid_argument);
}

TEST_CASE("lookup_cache: ttl 0 makes every value stale at once", "[lookup_cache]") {
  FakeClock clock;
  auto s = settings();
  s.ttl = 0s;
  s.stale_ttl = 10s;
  UserCache cache(s, clock);
  cache.put("u1", user("u1"));
  CHECK(cache.lookup("u1").stale());
  clock.advance(10s);
  CHECK(cache.lookup("u1").miss());
}

TEST_CASE("lookup_cache: concurrent puts and lookups stay consistent", "[lookup_cache]") {
  FakeClock clock;
  // Small enough that evictions happen all the time while threads read.
  UserCache cache(settings(64, 8), clock);
  constexpr int kThreads = 4;
  constexpr int kRounds = 20'000;
  constexpr int kKeys = 200;
  std::atomic<int> wrong{0};
  std::atomic<int> found{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const auto n = (i * 7 + t * 13) % kKeys;
        const auto key = "user-" + std::to_string(n);
        switch (i % 5) {
          case 0:
          case 1:
            // Every value stored under a key names that key, so a reader can tell when it
            // got another key's value.
            cache.put(key, user(key, std::to_string(t)));
            break;
          case 2:
            if (n % 10 == 0) {
              cache.put_absent(key);
            } else {
              cache.erase(key);
            }
            break;
          default: {
            const auto got = cache.lookup(key);
            if (got.fresh() || got.stale()) {
              found.fetch_add(1);
              if (!got.value || !*got.value || (*got.value)->id != key) {
                wrong.fetch_add(1);
              }
            } else if (got.value) {
              wrong.fetch_add(1);
            }
          }
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  CHECK(wrong.load() == 0);
  CHECK(found.load() > 0);
  CHECK(cache.size() <= 64);
  const auto stats = cache.stats();
  CHECK(stats.fresh_hits + stats.stale_hits + stats.absent_hits + stats.misses ==
        static_cast<std::uint64_t>(kThreads) * kRounds * 2 / 5);
}
