#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <limits>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>

namespace notifs::api_gateway {

namespace {

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr double kMaxRate = 1e9;   // one request per nanosecond: the clock's resolution
constexpr double kMinRate = 1e-6;  // one per ~11.6 days; slower is a disabled key, not a limit
// A bucket that takes longer than this to fill is as good as never refilled. The cap keeps
// `now + window` far from overflowing int64 nanoseconds on any steady clock.
constexpr std::int64_t kMaxWindowNs = 10LL * 365 * 24 * 3600 * kNanosPerSecond;  // ten years
constexpr std::size_t kShardCount = 16;
// Below this many keys, one shard: sharding would make the LRU bound per shard, so a tiny
// bound (as in a test, or a gateway with a handful of keys) would evict unpredictably.
constexpr std::size_t kMinKeysToShard = 1024;

std::int64_t ceil_seconds(std::int64_t ns) {
  return ns <= 0 ? 0 : (ns + kNanosPerSecond - 1) / kNanosPerSecond;
}

void check_setting(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(std::string("rate limit: ") + what);
}

}  // namespace

struct RateLimiter::Shard {
  struct Entry {
    std::string key;
    std::int64_t full_at_ns;  // GCRA's theoretical arrival time: when the bucket is full
  };
  using Lru = std::list<Entry>;

  // alignas keeps two shards' mutexes off one cache line, so io threads on different
  // shards do not contend through false sharing.
  alignas(64) std::mutex mutex;
  Lru lru;  // most recently used first
  std::unordered_map<std::string_view, Lru::iterator> index;  // views into lru's keys
  std::size_t capacity = 0;
  std::int64_t latest_ns = std::numeric_limits<std::int64_t>::min();

  // The bucket of `key`, created full at `now_ns` if absent. The caller holds the mutex.
  // The list node and map node of an evicted key are reused for the new one, so a full
  // shard allocates only when the new key is longer than the old one's string capacity.
  std::int64_t& bucket(std::string_view key, std::int64_t now_ns) {
    if (auto found = index.find(key); found != index.end()) {
      lru.splice(lru.begin(), lru, found->second);
      return found->second->full_at_ns;
    }
    if (lru.size() >= capacity) {
      const auto victim = std::prev(lru.end());
      // Out of the index before the key text changes: the map hashes the view's content.
      auto node = index.extract(std::string_view(victim->key));
      try {
        victim->key.assign(key);
      } catch (...) {
        lru.erase(victim);
        throw;
      }
      victim->full_at_ns = now_ns;
      node.key() = victim->key;
      index.insert(std::move(node));
      lru.splice(lru.begin(), lru, victim);
      return victim->full_at_ns;
    }
    lru.push_front(Entry{std::string(key), now_ns});
    try {
      index.emplace(lru.front().key, lru.begin());
    } catch (...) {
      lru.pop_front();
      throw;
    }
    return lru.front().full_at_ns;
  }
};

RateLimiter::RateLimiter(RateLimitSettings settings, const messaging::common::Clock& clock)
    : enabled_(settings.requests_per_second != 0), clock_(clock) {
  const double rate = settings.requests_per_second;
  check_setting(std::isfinite(rate) && rate >= 0, "requests_per_second must be 0 or positive");
  check_setting(std::isfinite(settings.burst) && settings.burst >= 0,
                "burst must be 0 or positive");
  if (!enabled_) return;
  check_setting(rate >= kMinRate && rate <= kMaxRate,
                "requests_per_second must be between 0.000001 and 1e9 (or 0: off)");
  check_setting(settings.max_keys > 0, "max_keys must be at least 1");

  // Ceil, so rounding never lets a key exceed its rate; llround first so that 1e9 / 0.1
  // computed as 10000000000.000002 stays 10 s instead of gaining a nanosecond.
  const double interval = 1e9 / rate;
  interval_ns_ = std::llround(interval);
  if (static_cast<double>(interval_ns_) < interval - 1e-3) {
    interval_ns_ = static_cast<std::int64_t>(std::ceil(interval));
  }
  interval_ns_ = std::max<std::int64_t>(interval_ns_, 1);

  // A bucket that cannot hold one whole request would refuse everything, e.g. 0.5/s with
  // "one second's worth".
  const double capacity = std::max(1.0, settings.burst > 0 ? settings.burst : rate);
  const double window = capacity * static_cast<double>(interval_ns_);
  window_ns_ = window >= static_cast<double>(kMaxWindowNs) ? kMaxWindowNs : std::llround(window);
  window_ns_ = std::max(window_ns_, interval_ns_);
  limit_ = window_ns_ / interval_ns_;

  shard_count_ = settings.max_keys >= kMinKeysToShard ? kShardCount : 1;
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (std::size_t i = 0; i < shard_count_; ++i) {
    // Spread max_keys exactly: the first (max_keys % shards) shards take one more.
    shards_[i].capacity =
        settings.max_keys / shard_count_ + (i < settings.max_keys % shard_count_ ? 1 : 0);
  }
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Shard& RateLimiter::shard_for(std::size_t hash) {
  // Fibonacci hashing takes the shard from the hash's high bits; the map inside the shard
  // uses the low ones, so the keys of one shard still spread over its buckets.
  const auto mixed = static_cast<std::uint64_t>(hash) * 0x9E3779B97F4A7C15ULL;
  return shards_[static_cast<std::size_t>(mixed >> 32) % shard_count_];
}

RateLimiter::Decision RateLimiter::acquire(std::string_view key) {
  if (!enabled_) return {};
  Shard& shard = shard_for(std::hash<std::string_view>{}(key));
  // Read before locking to keep the critical section short.
  const std::int64_t clock_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.now().time_since_epoch())
          .count();

  std::lock_guard lock(shard.mutex);
  // Two threads that read the clock before locking can take the lock in the other order,
  // and a clock might step back: time never runs backwards for a bucket (elapsed < 0
  // counts as 0), or a late reader would see fewer tokens than an earlier one left.
  const std::int64_t now = std::max(clock_ns, shard.latest_ns);
  shard.latest_ns = now;

  std::int64_t& full_at = shard.bucket(key, now);
  const std::int64_t start = std::max(full_at, now);
  const std::int64_t used = start + interval_ns_ - now;  // bucket debt if this one is taken

  Decision decision;
  decision.limit = limit_;
  if (used <= window_ns_) {
    full_at = start + interval_ns_;
    decision.allowed = true;
    decision.remaining = (window_ns_ - used) / interval_ns_;
    decision.reset = std::chrono::seconds(ceil_seconds(used));
  } else {
    decision.allowed = false;
    decision.remaining = 0;
    decision.reset = std::chrono::seconds(ceil_seconds(start - now));
    decision.retry_after =
        std::chrono::seconds(std::max<std::int64_t>(1, ceil_seconds(used - window_ns_)));
  }
  return decision;
}

std::size_t RateLimiter::tracked_keys() const {
  std::size_t total = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mutex);
    total += shards_[i].lru.size();
  }
  return total;
}

void add_rate_limit_headers(const RateLimiter::Decision& decision,
                            messaging::http::Headers& headers) {
  if (decision.limit <= 0) return;
  headers.set("RateLimit-Limit", std::to_string(decision.limit));
  headers.set("RateLimit-Remaining", std::to_string(std::max<std::int64_t>(0, decision.remaining)));
  headers.set("RateLimit-Reset",
              std::to_string(std::max<std::int64_t>(0, decision.reset.count())));
  if (!decision.allowed) {
    headers.set("Retry-After",
                std::to_string(std::max<std::int64_t>(1, decision.retry_after.count())));
  }
}

messaging::http::HttpError rate_limited_error(const RateLimiter::Decision& decision) {
  const auto wait = std::max<std::int64_t>(1, decision.retry_after.count());
  messaging::http::HttpError error(
      429, "rate_limited",
      "too many requests for this API key; retry in " + std::to_string(wait) + " s");
  add_rate_limit_headers(decision, error.headers());
  // A refused decision always carries Retry-After; this also covers a caller that hands
  // over a decision without a limit, since the contract wants it on every 429.
  if (!error.headers().contains("Retry-After")) {
    error.headers().set("Retry-After", std::to_string(wait));
  }
  return error;
}

}  // namespace notifs::api_gateway
