#pragma once

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
#include "template_cache_settings.hpp"
#include "template_model.hpp"
#include "template_renderer.hpp"

namespace notifs::template_service {

// A stored version with its fields compiled: immutable, shared by the cache and every
// request rendering it.
struct CompiledTemplate {
  // Throws TemplateSyntaxError (a stored text that no longer compiles: not expected, since
  // texts are checked when created).
  explicit CompiledTemplate(TemplateVersion stored);

  TemplateVersion version;
  TemplateRenderer renderer;
};

// Which version "the newest of (code, locale)" is: the locale that has versions (the one
// asked for, or en when it has none) and its newest number.
struct Resolution {
  Channel channel = Channel::email;
  std::string locale;
  std::int32_t latest_version = 0;
};

namespace detail {

// A map that keeps at most `capacity` entries, dropping the least recently used.
// Not thread-safe; TemplateCache locks around it.
template <typename Value>
class LruMap {
 public:
  explicit LruMap(std::size_t capacity) : capacity_(capacity) {}

  Value* find(const std::string& key) {
    const auto it = index_.find(key);
    if (it == index_.end()) {
      return nullptr;
    }
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  void put(std::string key, Value value) {
    if (capacity_ == 0) {
      return;
    }
    if (auto* existing = find(key)) {
      *existing = std::move(value);
      return;
    }
    order_.emplace_front(std::move(key), std::move(value));
    index_.emplace(order_.front().first, order_.begin());
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
  }

  void erase(const std::string& key) {
    const auto it = index_.find(key);
    if (it != index_.end()) {
      order_.erase(it->second);
      index_.erase(it);
    }
  }

  template <typename Predicate>
  void erase_if(Predicate predicate) {
    for (auto it = order_.begin(); it != order_.end();) {
      if (predicate(it->first, it->second)) {
        index_.erase(it->first);
        it = order_.erase(it);
      } else {
        ++it;
      }
    }
  }

  std::size_t size() const { return order_.size(); }

 private:
  using Entry = std::pair<std::string, Value>;
  std::size_t capacity_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> index_;
};

}  // namespace detail

// The two caches behind a render that does not touch PostgreSQL:
//  - compiled versions by (code, locale, version): versions are immutable, so an entry is
//    never stale; a bounded LRU (render_cache_size);
//  - resolutions by (code, requested locale): which locale and newest version that means;
//    trusted for resolution_ttl, dropped at once by invalidate() when this replica adds a
//    version. Another replica's new version is seen within the TTL.
//
// A lookup that misses is filled by the caller after reading PostgreSQL. So that a reader
// that started before an invalidate() cannot put back what it read then, puts carry the
// generation() taken before the read and are ignored when an invalidate() came between.
//
// Thread-safe; every call holds one mutex briefly (no I/O, no rendering under it).
class TemplateCache {
 public:
  TemplateCache(TemplateCacheSettings settings, const messaging::common::Clock& clock);

  std::shared_ptr<const CompiledTemplate> find_version(std::string_view code,
                                                       std::string_view locale,
                                                       std::int32_t version);
  void put_version(std::shared_ptr<const CompiledTemplate> compiled);

  std::optional<Resolution> find_resolution(std::string_view code,
                                            std::string_view requested_locale);
  std::uint64_t generation() const;
  void put_resolution(std::string_view code, std::string_view requested_locale,
                      Resolution resolution, std::uint64_t generation);
  // Drops every resolution of `code` (its newest version, or which locale answers, may
  // have changed).
  void invalidate(std::string_view code);

  std::size_t compiled_size() const;
  std::size_t resolution_size() const;

 private:
  struct TimedResolution {
    Resolution resolution;
    messaging::common::Clock::time_point expires_at;
  };

  TemplateCacheSettings settings_;
  const messaging::common::Clock& clock_;
  mutable std::mutex mutex_;
  detail::LruMap<std::shared_ptr<const CompiledTemplate>> compiled_;
  detail::LruMap<TimedResolution> resolutions_;
  std::uint64_t generation_ = 0;
};

}  // namespace notifs::template_service
