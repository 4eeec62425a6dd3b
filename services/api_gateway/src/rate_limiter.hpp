#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/message.hpp"

namespace notifs::api_gateway {

struct RateLimitSettings {
  double requests_per_second = 0;  // sustained rate per key; 0 turns the limiter off
  double burst = 0;                // bucket size in requests; 0: one second's worth (at least 1)
  std::size_t max_keys = 100000;   // buckets kept; the least recently used is dropped first.
                                   // A dropped key comes back with a full bucket: it can get
                                   // one extra burst, which is acceptable for a memory bound.
};

// A token bucket per API key, as GCRA (the "virtual scheduling" form of a token bucket):
// each key keeps one time point, the moment its bucket would be full again, so a decision
// is a few integer operations on nanoseconds, exact at fractional rates.
//
// Thread-safe. acquire() never blocks beyond a short mutex held for O(1) work; the keys are
// spread over shards by hash, so io threads serving different keys rarely meet. A key seen
// before costs no allocation. With max_keys below 1024 there is one shard and the LRU
// order is exact; above, each of 16 shards evicts its own least recently used key (a key
// can be dropped while a slightly older one in another shard stays).
//
// The key is held in memory as given (it is the API key itself: a digest would buy
// nothing against a reader of this process's memory) and is never logged. Call acquire()
// only after authentication, so the keys kept are the configured ones, not what strangers
// send.
class RateLimiter {
 public:
  struct Decision {
    bool allowed = true;
    std::int64_t limit = 0;                // requests in a full bucket; 0 when the limiter is off
    std::int64_t remaining = 0;            // requests that would be allowed right now
    std::chrono::seconds reset{0};         // until the bucket is full again (rounded up)
    std::chrono::seconds retry_after{0};   // when refused: until one request is allowed (>= 1)
  };

  // Throws std::invalid_argument when a setting is negative, not finite, or out of range
  // (a rate above 1e9/s or below one per ~11 days; max_keys 0 while enabled).
  RateLimiter(RateLimitSettings settings, const messaging::common::Clock& clock);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes one request's worth from `key`'s bucket if there is one. When the limiter is
  // off, always allowed, with limit 0.
  Decision acquire(std::string_view key);

  bool enabled() const { return enabled_; }
  // Keys currently holding a bucket (for tests and metrics); takes every shard's lock.
  std::size_t tracked_keys() const;

 private:
  struct Shard;

  Shard& shard_for(std::size_t hash);

  bool enabled_;
  std::int64_t limit_ = 0;
  std::int64_t interval_ns_ = 0;  // time to earn one request
  std::int64_t window_ns_ = 0;    // time to fill an empty bucket (burst * interval)
  const messaging::common::Clock& clock_;
  std::size_t shard_count_ = 0;
  std::unique_ptr<Shard[]> shards_;
};

// RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (draft-ietf-httpapi-ratelimit-
// headers, reset in delta-seconds), and Retry-After when refused. Adds nothing when the
// decision comes from a limiter that is off.
void add_rate_limit_headers(const RateLimiter::Decision& decision,
                            messaging::http::Headers& headers);

// The 429 `rate_limited` answer of the contract for a refused decision, headers included.
messaging::http::HttpError rate_limited_error(const RateLimiter::Decision& decision);

}  // namespace notifs::api_gateway
