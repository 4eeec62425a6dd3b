#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <utility>
#include <vector>

namespace notifs::runtime {

struct SingleFlightSettings {
  std::size_t max_waiters_per_key = 10'000;  // callers one fetch may serve, its starter included
};

// What join() made of the caller.
enum class JoinResult : std::uint8_t {
  leader,    // first for this key: the caller must start the fetch and later complete() it
  queued,    // a fetch is in flight: the waiter will be called by its complete()
  overflow,  // the in-flight fetch already has max_waiters_per_key waiters: this waiter was
             // dropped unseen and will never be called; answer now (503 with Retry-After)
};

// Coalesces concurrent asynchronous fetches of one key: the first caller fetches, the
// others wait for its result, so a burst of requests for one cold user costs the upstream
// one call (and a burst during an outage costs one timeout, not thousands).
//
//   if (flights.join(key, on_result) == JoinResult::leader) {
//     client.async_get(..., [&](Result r) { flights.complete(key, r); });
//   }
//
// The leader's own waiter is stored like any other: the fetch's callback only calls
// complete(), which serves everyone.
//
// Completion contract: a key stays in flight until complete() is called for it, and every
// waiter queued meanwhile waits that long. The leader MUST complete every fetch it starts,
// exactly once, on success, on error and on cancel. The gateway meets this because
// ServiceClient always calls its handler (with an error at its deadline at the latest),
// and the handler calls complete() unconditionally. complete_all() serves every pending
// waiter at shutdown.
//
// Overflow: past max_waiters_per_key, join() refuses rather than throws. Overflow is a load
// condition (a hot key during a slow upstream), not a bug, and the io thread that meets it
// should answer at once without paying for an exception.
//
// Thread-safe: join() and complete() may be called from any threads. One mutex guards the
// table; it is taken only on cache misses and held for a map probe and a push_back.
// Waiters run on the thread that calls complete(), after the lock is released (so a waiter
// may join() again: the key is already cleared and that join starts a new round), each
// exactly once, in join order. If waiters throw, the others still run and the first
// exception is rethrown afterwards.
template <typename Key, typename Result, typename Hash = std::hash<Key>,
          typename KeyEqual = std::equal_to<Key>>
class SingleFlight {
 public:
  using Waiter = std::function<void(const Result&)>;

  // Throws std::invalid_argument when max_waiters_per_key is 0 (no leader could join).
  explicit SingleFlight(SingleFlightSettings settings = {}) : settings_(settings) {
    if (settings_.max_waiters_per_key == 0) {
      throw std::invalid_argument("single flight settings: max_waiters_per_key must be at least 1");
    }
  }

  SingleFlight(const SingleFlight&) = delete;
  SingleFlight& operator=(const SingleFlight&) = delete;

  // Throws std::invalid_argument for an empty waiter (it could never be called).
  [[nodiscard]] JoinResult join(const Key& key, Waiter waiter) {
    if (!waiter) {
      throw std::invalid_argument("single flight: join() needs a callable waiter");
    }
    std::lock_guard lock(mutex_);
    auto [it, first] = flights_.try_emplace(key);
    auto& waiters = it->second;
    if (!first && waiters.size() >= settings_.max_waiters_per_key) {
      return JoinResult::overflow;
    }
    try {
      waiters.push_back(std::move(waiter));
    } catch (...) {
      // A leader whose waiter could not be stored must not leave an entry behind that
      // nobody will complete.
      if (first) {
        flights_.erase(it);
      }
      throw;
    }
    return first ? JoinResult::leader : JoinResult::queued;
  }

  // Serves every waiter of `key`'s fetch with `result` and ends the round. Returns how many
  // waiters were called (0 when the key was not in flight: a late or duplicate completion,
  // which is harmless).
  std::size_t complete(const Key& key, const Result& result) {
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mutex_);
      const auto it = flights_.find(key);
      if (it == flights_.end()) {
        return 0;
      }
      waiters = std::move(it->second);
      flights_.erase(it);
    }
    return call_all(waiters, result);
  }

  // Serves every pending waiter of every key with `result` (a shutdown error), so that
  // no request is left hanging when the gateway stops. Returns how many were called.
  std::size_t complete_all(const Result& result) {
    std::unordered_map<Key, std::vector<Waiter>, Hash, KeyEqual> flights;
    {
      std::lock_guard lock(mutex_);
      flights.swap(flights_);
    }
    std::size_t called = 0;
    std::exception_ptr first_error;
    for (auto& [key, waiters] : flights) {
      try {
        called += call_all(waiters, result);
      } catch (...) {
        called += waiters.size();
        if (!first_error) {
          first_error = std::current_exception();
        }
      }
    }
    if (first_error) {
      std::rethrow_exception(first_error);
    }
    return called;
  }

  // Keys with a fetch in flight.
  std::size_t in_flight() const {
    std::lock_guard lock(mutex_);
    return flights_.size();
  }

  // Waiters (the leader's included) on `key`'s fetch; 0 when none is in flight.
  std::size_t waiters(const Key& key) const {
    std::lock_guard lock(mutex_);
    const auto it = flights_.find(key);
    return it == flights_.end() ? 0 : it->second.size();
  }

 private:
  static std::size_t call_all(std::vector<Waiter>& waiters, const Result& result) {
    std::exception_ptr first_error;
    for (auto& waiter : waiters) {
      try {
        waiter(result);
      } catch (...) {
        if (!first_error) {
          first_error = std::current_exception();
        }
      }
    }
    if (first_error) {
      std::rethrow_exception(first_error);
    }
    return waiters.size();
  }

  const SingleFlightSettings settings_;
  mutable std::mutex mutex_;
  std::unordered_map<Key, std::vector<Waiter>, Hash, KeyEqual> flights_;
};

}  // namespace notifs::runtime
