#include "notifs/runtime/lookup_cache.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

namespace notifs::runtime::detail {

LookupCacheLayout plan_lookup_cache(const LookupCacheSettings& settings) {
  using std::chrono::milliseconds;
  const auto reject = [](const std::string& why) {
    throw std::invalid_argument("lookup cache settings: " + why);
  };
  if (settings.ttl < milliseconds::zero()) {
    reject("ttl must not be negative (got " + std::to_string(settings.ttl.count()) + " ms)");
  }
  if (settings.stale_ttl < milliseconds::zero()) {
    reject("stale_ttl must not be negative (got " + std::to_string(settings.stale_ttl.count()) +
           " ms)");
  }
  if (settings.negative_ttl < milliseconds::zero()) {
    reject("negative_ttl must not be negative (got " +
           std::to_string(settings.negative_ttl.count()) + " ms)");
  }
  if (settings.shards == 0) {
    reject("shards must be at least 1");
  }
  LookupCacheLayout layout;
  // Fewer entries than shards: one entry per shard, so no shard has a capacity of zero
  // (which would silently refuse every key hashed to it).
  layout.shards = settings.max_entries == 0 ? 1 : std::min(settings.shards, settings.max_entries);
  layout.base_capacity = settings.max_entries / layout.shards;
  layout.extra = settings.max_entries % layout.shards;
  return layout;
}

std::size_t lookup_cache_shard_of(std::string_view key, std::size_t shards) {
  std::uint64_t h = std::hash<std::string_view>{}(key);
  // splitmix64's finaliser: every input bit reaches the low bits the modulo keeps.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<std::size_t>(h % shards);
}

}  // namespace notifs::runtime::detail
