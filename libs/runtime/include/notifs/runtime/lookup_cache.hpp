#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "notifs/messaging/common/clock.hpp"

namespace notifs::runtime {

struct LookupCacheSettings {
  std::chrono::milliseconds ttl{30'000};          // an entry is fresh this long after put()
  std::chrono::milliseconds stale_ttl{600'000};   // then usable this much longer, only if the upstream fails
  std::chrono::milliseconds negative_ttl{5'000};  // how long put_absent() is remembered; 0 = never
  std::size_t max_entries = 10'000;               // LRU bound over all shards (0 disables the cache)
  std::size_t shards = 16;                        // independent locks; LRU order is kept per shard
};

// What lookup() found for a key.
enum class CacheOutcome : std::uint8_t {
  miss,    // nothing usable: fetch
  fresh,   // value within ttl: use it, no fetch
  stale,   // value past ttl but within ttl + stale_ttl: fetch, use it only if the fetch fails
  absent,  // the upstream said "not found" less than negative_ttl ago: answer 404, no fetch
};

template <typename Value>
struct CacheLookup {
  CacheOutcome outcome = CacheOutcome::miss;
  std::optional<Value> value;  // set exactly when outcome is fresh or stale

  bool fresh() const { return outcome == CacheOutcome::fresh; }
  bool stale() const { return outcome == CacheOutcome::stale; }
  bool absent() const { return outcome == CacheOutcome::absent; }
  bool miss() const { return outcome == CacheOutcome::miss; }
};

// Counters since construction, read without locks (each one is exact; they are not a
// consistent snapshot of one instant).
struct LookupCacheStats {
  std::uint64_t fresh_hits = 0;
  std::uint64_t stale_hits = 0;     // lookups answered `stale` (served or not is the caller's call)
  std::uint64_t absent_hits = 0;    // lookups answered from a negative entry
  std::uint64_t misses = 0;         // includes entries found past their last usable moment
  std::uint64_t evictions = 0;      // entries dropped by the LRU bound
};

namespace detail {

// How the entries are spread: at most one shard per entry so that the capacities add up
// to max_entries exactly. Throws std::invalid_argument for negative durations or zero shards.
struct LookupCacheLayout {
  std::size_t shards = 1;
  std::size_t base_capacity = 0;  // every shard holds this many...
  std::size_t extra = 0;          // ...and the first `extra` shards one more
};
LookupCacheLayout plan_lookup_cache(const LookupCacheSettings& settings);

// Spreads std::hash output (an identity on some platforms' integers, weak low bits) before
// the shard is chosen, so that shard choice and the map's own buckets do not correlate.
std::size_t lookup_cache_shard_of(std::string_view key, std::size_t shards);

}  // namespace detail

// The gateway's in-process cache of upstream lookups (users by id, templates by code and
// channel): short TTL, bounded size, stale-if-error and negative entries.
//
// Intended use, per request:
//   fresh  -> use the value;
//   absent -> answer 404 without asking the upstream;
//   stale  -> ask the upstream (through SingleFlight); on success put() the new value, on an
//             error or an open breaker use the stale value the lookup returned;
//   miss   -> ask the upstream; on error answer 503.
// Entries past ttl + stale_ttl (or negative ones past negative_ttl) are dropped when met.
// put_absent() replaces a cached value (the user was deleted) and put() replaces a negative
// entry. With negative_ttl 0, put_absent() only erases what was cached.
//
// Value should be a cheap, immutable handle (std::shared_ptr<const User>): lookup() copies
// it under the shard lock and returns the copy, so a caller never sees it change. Keys
// are strings; lookup() takes a string_view and allocates nothing.
//
// Thread-safe: io threads call it on every request. A key's shard is chosen by hash; each
// shard has its own mutex, held for one O(1) map probe and a list splice. The LRU bound is
// per shard (max_entries split evenly), so eviction order is exact within a shard and
// approximate over the whole cache. The constructor throws std::invalid_argument on
// settings that cannot work (negative durations, zero shards).
template <typename Value>
class LookupCache {
 public:
  LookupCache(LookupCacheSettings settings, const messaging::common::Clock& clock)
      : settings_(settings), clock_(clock) {
    const auto layout = detail::plan_lookup_cache(settings_);
    shard_count_ = layout.shards;
    shards_ = std::make_unique<Shard[]>(shard_count_);
    for (std::size_t i = 0; i < shard_count_; ++i) {
      shards_[i].capacity = layout.base_capacity + (i < layout.extra ? 1 : 0);
    }
  }

  LookupCache(const LookupCache&) = delete;
  LookupCache& operator=(const LookupCache&) = delete;

  CacheLookup<Value> lookup(std::string_view key) {
    CacheLookup<Value> result;
    const auto now = clock_.now();
    Shard& shard = shard_for(key);
    {
      std::lock_guard lock(shard.mutex);
      const auto it = shard.index.find(key);
      if (it != shard.index.end()) {
        const auto entry = it->second;
        if (now >= entry->usable_until) {
          shard.index.erase(it);
          shard.order.erase(entry);
        } else {
          shard.order.splice(shard.order.begin(), shard.order, entry);
          if (!entry->value) {
            result.outcome = CacheOutcome::absent;
          } else {
            result.outcome = now < entry->fresh_until ? CacheOutcome::fresh : CacheOutcome::stale;
            result.value = *entry->value;
          }
        }
      }
    }
    count(result.outcome);
    return result;
  }

  // Caches a value the upstream just returned: fresh for ttl, usable if the upstream
  // fails for stale_ttl more. Replaces whatever the key held, negative entries included.
  void put(std::string_view key, Value value) {
    const auto now = clock_.now();
    store(key, std::optional<Value>(std::move(value)), now + settings_.ttl,
          now + settings_.ttl + settings_.stale_ttl);
  }

  // Remembers that the upstream said "not found" for negative_ttl. Any cached value for
  // the key goes, even when negative_ttl is 0: a deleted user must not be served stale.
  void put_absent(std::string_view key) {
    if (settings_.negative_ttl <= std::chrono::milliseconds::zero()) {
      erase(key);
      return;
    }
    const auto until = clock_.now() + settings_.negative_ttl;
    store(key, std::nullopt, until, until);
  }

  void erase(std::string_view key) {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    const auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      const auto entry = it->second;
      shard.index.erase(it);
      shard.order.erase(entry);
    }
  }

  // Entries held, expired ones not yet met included. Locks each shard in turn.
  std::size_t size() const {
    std::size_t total = 0;
    for (std::size_t i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].mutex);
      total += shards_[i].order.size();
    }
    return total;
  }

  LookupCacheStats stats() const {
    LookupCacheStats out;
    out.fresh_hits = fresh_hits_.load(std::memory_order_relaxed);
    out.stale_hits = stale_hits_.load(std::memory_order_relaxed);
    out.absent_hits = absent_hits_.load(std::memory_order_relaxed);
    out.misses = misses_.load(std::memory_order_relaxed);
    out.evictions = evictions_.load(std::memory_order_relaxed);
    return out;
  }

  const LookupCacheSettings& settings() const { return settings_; }

 private:
  using time_point = messaging::common::Clock::time_point;

  struct Entry {
    std::string key;  // the index's string_view keys point here; list nodes never move
    std::optional<Value> value;  // nullopt: a negative entry
    time_point fresh_until;
    time_point usable_until;
  };
  using Order = std::list<Entry>;  // most recently used first

  // Cache-line aligned: io threads hammer neighbouring shards' mutexes.
  struct alignas(64) Shard {
    mutable std::mutex mutex;
    Order order;
    std::unordered_map<std::string_view, typename Order::iterator> index;
    std::size_t capacity = 0;
  };

  Shard& shard_for(std::string_view key) const {
    return shards_[detail::lookup_cache_shard_of(key, shard_count_)];
  }

  void store(std::string_view key, std::optional<Value> value, time_point fresh_until,
             time_point usable_until) {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mutex);
    if (shard.capacity == 0) {
      return;
    }
    const auto it = shard.index.find(key);
    if (it != shard.index.end()) {
      const auto entry = it->second;
      entry->value = std::move(value);
      entry->fresh_until = fresh_until;
      entry->usable_until = usable_until;
      shard.order.splice(shard.order.begin(), shard.order, entry);
      return;
    }
    // The node is built before anything is dropped, so an allocation failure leaves the
    // shard as it was.
    Order node;
    node.push_back(Entry{std::string(key), std::move(value), fresh_until, usable_until});
    shard.index.emplace(std::string_view(node.front().key), node.begin());
    shard.order.splice(shard.order.begin(), node);
    if (shard.order.size() > shard.capacity) {
      shard.index.erase(std::string_view(shard.order.back().key));
      shard.order.pop_back();
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void count(CacheOutcome outcome) {
    switch (outcome) {
      case CacheOutcome::fresh: fresh_hits_.fetch_add(1, std::memory_order_relaxed); break;
      case CacheOutcome::stale: stale_hits_.fetch_add(1, std::memory_order_relaxed); break;
      case CacheOutcome::absent: absent_hits_.fetch_add(1, std::memory_order_relaxed); break;
      case CacheOutcome::miss: misses_.fetch_add(1, std::memory_order_relaxed); break;
    }
  }

  const LookupCacheSettings settings_;
  const messaging::common::Clock& clock_;
  std::size_t shard_count_ = 1;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<std::uint64_t> fresh_hits_{0};
  std::atomic<std::uint64_t> stale_hits_{0};
  std::atomic<std::uint64_t> absent_hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace notifs::runtime
