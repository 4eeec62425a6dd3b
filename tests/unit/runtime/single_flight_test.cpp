// Coalescing of concurrent fetches of one key: one leader fetches, every waiter is served
// exactly once with its result, a completed round leaves nothing behind, and the per-key
// bound refuses rather than queues.
#include "notifs/runtime/single_flight.hpp"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

namespace gw = notifs::runtime;
using gw::JoinResult;

namespace {

using Flights = gw::SingleFlight<std::string, std::string>;

// Collects what each waiter received, from any thread.
struct Received {
  std::mutex mutex;
  std::vector<std::string> results;  // in call order

  Flights::Waiter waiter() {
    return [this](const std::string& result) {
      std::lock_guard lock(mutex);
      results.push_back(result);
    };
  }
  std::vector<std::string> snapshot() {
    std::lock_guard lock(mutex);
    return results;
  }
};

}  // namespace

TEST_CASE("single_flight: N joiners cause one fetch and all get its result", "[single_flight]") {
  Flights flights;
  Received received;
  int fetches = 0;
  constexpr int kJoiners = 50;
  for (int i = 0; i < kJoiners; ++i) {
    if (flights.join("user-1", received.waiter()) == JoinResult::leader) {
      ++fetches;
    }
  }
  CHECK(fetches == 1);
  CHECK(flights.in_flight() == 1);
  CHECK(flights.waiters("user-1") == kJoiners);
  CHECK(received.snapshot().empty());  // nobody is served before the fetch completes

  CHECK(flights.complete("user-1", "ada") == kJoiners);
  const auto results = received.snapshot();
  REQUIRE(results.size() == kJoiners);
  for (const auto& result : results) {
    CHECK(result == "ada");
  }
  CHECK(flights.in_flight() == 0);
  CHECK(flights.waiters("user-1") == 0);
}

TEST_CASE("single_flight: waiters are called exactly once, even if completed twice",
          "[single_flight]") {
  Flights flights;
  std::vector<int> calls(5, 0);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    (void)flights.join("k", [&calls, i](const std::string&) { ++calls[i]; });
  }
  CHECK(flights.complete("k", "first") == 5);
  // A late or duplicate completion finds nothing to serve.
  CHECK(flights.complete("k", "second") == 0);
  for (const auto count : calls) {
    CHECK(count == 1);
  }
}

TEST_CASE("single_flight: keys fly independently", "[single_flight]") {
  Flights flights;
  Received a;
  Received b;
  CHECK(flights.join("a", a.waiter()) == JoinResult::leader);
  CHECK(flights.join("b", b.waiter()) == JoinResult::leader);
  CHECK(flights.join("a", a.waiter()) == JoinResult::queued);
  CHECK(flights.in_flight() == 2);

  flights.complete("b", "for b");
  CHECK(a.snapshot().empty());
  CHECK(b.snapshot() == std::vector<std::string>{"for b"});
  CHECK(flights.waiters("a") == 2);

  flights.complete("a", "for a");
  CHECK(a.snapshot() == std::vector<std::string>{"for a", "for a"});
}

TEST_CASE("single_flight: a round after completion starts a new fetch", "[single_flight]") {
  Flights flights;
  Received received;
  REQUIRE(flights.join("k", received.waiter()) == JoinResult::leader);
  REQUIRE(flights.join("k", received.waiter()) == JoinResult::queued);
  flights.complete("k", "old");

  Received later;
  CHECK(flights.join("k", later.waiter()) == JoinResult::leader);
  CHECK(flights.join("k", later.waiter()) == JoinResult::queued);
  flights.complete("k", "new");
  CHECK(received.snapshot() == std::vector<std::string>{"old", "old"});
  CHECK(later.snapshot() == std::vector<std::string>{"new", "new"});
}

TEST_CASE("single_flight: a waiter may join the same key again from inside complete",
          "[single_flight]") {
  Flights flights;
  JoinResult rejoined = JoinResult::overflow;
  Received second_round;
  REQUIRE(flights.join("k", [&](const std::string&) {
    rejoined = flights.join("k", second_round.waiter());
  }) == JoinResult::leader);

  // Would deadlock if waiters ran under the lock; the rejoin must lead a fresh round.
  flights.complete("k", "r1");
  CHECK(rejoined == JoinResult::leader);
  CHECK(flights.waiters("k") == 1);
  flights.complete("k", "r2");
  CHECK(second_round.snapshot() == std::vector<std::string>{"r2"});
}

TEST_CASE("single_flight: completion from another thread serves waiters joined on many threads",
          "[single_flight]") {
  Flights flights;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250;
  std::atomic<int> leaders{0};
  std::atomic<int> served{0};
  std::atomic<int> wrong{0};
  std::mutex mutex;
  std::condition_variable joined_cv;
  int joined = 0;

  std::vector<std::thread> joiners;
  for (int t = 0; t < kThreads; ++t) {
    joiners.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        const auto outcome = flights.join("hot", [&](const std::string& result) {
          if (result != "value") {
            wrong.fetch_add(1);
          }
          served.fetch_add(1);
        });
        if (outcome == JoinResult::leader) {
          leaders.fetch_add(1);
        } else if (outcome != JoinResult::queued) {
          wrong.fetch_add(1);
        }
      }
      std::lock_guard lock(mutex);
      ++joined;
      joined_cv.notify_one();
    });
  }
  // The "fetch" completes on its own thread once every joiner is queued, as a
  // ServiceClient callback would.
  std::thread completer([&] {
    std::unique_lock lock(mutex);
    joined_cv.wait(lock, [&] { return joined == kThreads; });
    lock.unlock();
    flights.complete("hot", "value");
  });
  for (auto& thread : joiners) {
    thread.join();
  }
  completer.join();

  CHECK(leaders.load() == 1);
  CHECK(served.load() == kThreads * kPerThread);
  CHECK(wrong.load() == 0);
  CHECK(flights.in_flight() == 0);
}

TEST_CASE("single_flight: joins racing completions lose no waiter", "[single_flight]") {
  // Joiners and a completer run at once: each waiter lands either in a round that is then
  // completed or in a new round, and the final complete() serves whatever is left.
  Flights flights;
  constexpr int kThreads = 3;
  constexpr int kPerThread = 2'000;
  std::atomic<int> served{0};
  std::atomic<int> leaders{0};
  std::atomic<bool> done{false};

  std::thread completer([&] {
    while (!done.load()) {
      flights.complete("k", "v");
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> joiners;
  for (int t = 0; t < kThreads; ++t) {
    joiners.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        if (flights.join("k", [&](const std::string&) { served.fetch_add(1); }) ==
            JoinResult::leader) {
          leaders.fetch_add(1);
        }
      }
    });
  }
  for (auto& thread : joiners) {
    thread.join();
  }
  done.store(true);
  completer.join();
  flights.complete("k", "v");

  CHECK(served.load() == kThreads * kPerThread);
  CHECK(leaders.load() >= 1);
  CHECK(flights.in_flight() == 0);
}

TEST_CASE("single_flight: past the per-key bound join overflows and never calls the waiter",
          "[single_flight]") {
  Flights flights(gw::SingleFlightSettings{3});
  Received received;
  bool overflowed_called = false;

  CHECK(flights.join("k", received.waiter()) == JoinResult::leader);
  CHECK(flights.join("k", received.waiter()) == JoinResult::queued);
  CHECK(flights.join("k", received.waiter()) == JoinResult::queued);
  CHECK(flights.join("k", [&](const std::string&) { overflowed_called = true; }) ==
        JoinResult::overflow);
  CHECK(flights.waiters("k") == 3);

  // The bound is per key: another key still gets a leader.
  Received other;
  CHECK(flights.join("other", other.waiter()) == JoinResult::leader);

  CHECK(flights.complete("k", "v") == 3);
  CHECK(received.snapshot().size() == 3);
  CHECK_FALSE(overflowed_called);

  // After the round, the key accepts joiners again.
  CHECK(flights.join("k", received.waiter()) == JoinResult::leader);
  CHECK(flights.complete_all("shutdown") == 2);
  CHECK(other.snapshot() == std::vector<std::string>{"shutdown"});
}

TEST_CASE("single_flight: complete_all serves every pending waiter once", "[single_flight]") {
  Flights flights;
  Received received;
  (void)flights.join("a", received.waiter());
  (void)flights.join("a", received.waiter());
  (void)flights.join("b", received.waiter());
  CHECK(flights.complete_all("stopping") == 3);
  CHECK(received.snapshot() == std::vector<std::string>(3, "stopping"));
  CHECK(flights.in_flight() == 0);
  CHECK(flights.complete("a", "late") == 0);
  CHECK(received.snapshot().size() == 3);
}

TEST_CASE("single_flight: a throwing waiter does not stop the others", "[single_flight]") {
  Flights flights;
  Received received;
  (void)flights.join("k", received.waiter());
  (void)flights.join("k", [](const std::string&) { throw std::runtime_error("waiter broke"); });
  (void)flights.join("k", received.waiter());

  CHECK_THROWS_WITH(flights.complete("k", "v"), "waiter broke");
  CHECK(received.snapshot() == std::vector<std::string>{"v", "v"});
  CHECK(flights.in_flight() == 0);
}

TEST_CASE("single_flight: invalid settings and empty waiters are refused", "[single_flight]") {
  CHECK_THROWS_AS(Flights(gw::SingleFlightSettings{0}), std::invalid_argument);
  Flights flights;
  CHECK_THROWS_AS((void)flights.join("k", Flights::Waiter{}), std::invalid_argument);
  CHECK(flights.in_flight() == 0);
}
