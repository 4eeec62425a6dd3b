#pragma once

#include <chrono>
#include <cstddef>

namespace notifs::template_service {

// The render cache (TemplateCache).
struct TemplateCacheSettings {
  // Compiled versions kept, least recently used dropped first. A version never changes,
  // so an entry never goes stale. 0 turns the cache off (every render reads PostgreSQL).
  std::size_t render_cache_size = 1000;
  // How long "the newest version of (code, locale), or en when that locale has none" is
  // trusted. A POST or PUT on this replica drops it at once; other replicas serve the
  // new version within this time. 0: never trusted (each render without a version
  // reads PostgreSQL; named versions are still served from the cache).
  std::chrono::milliseconds resolution_ttl{2000};
};

}  // namespace notifs::template_service
