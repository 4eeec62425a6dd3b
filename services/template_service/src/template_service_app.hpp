#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "notifs/runtime/config_reader.hpp"
#include "notifs/runtime/database_service.hpp"
#include "template_cache_settings.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::template_service {

// RENDER_CACHE_SIZE (default 1000, 0..1,000,000) and TEMPLATE_CACHE_TTL_MS (default 2000,
// 0..600,000).
TemplateCacheSettings read_template_cache_settings(runtime::ConfigReader& config);

// template_service: PostgreSQL-backed template store with Mustache rendering, on
// runtime::DatabaseService (pool, migrations, /ready, SERVICE_TOKEN, 503 on storage loss).
//
// Routes (CONTRACT.md): POST /api/v1/templates, GET /api/v1/templates,
// GET and PUT /api/v1/templates/{code}, GET /api/v1/templates/{code}/versions,
// POST /api/v1/templates/{code}/render, all on the server's worker pool. A get or render
// whose version is cached (TemplateCache) is answered without touching PostgreSQL.
//
// Thread-safety: construct, start, stop from one control thread. start() blocks until
// the migrations are applied.
class TemplateServiceApp {
 public:
  TemplateServiceApp(runtime::DatabaseServiceSettings settings,
                     std::shared_ptr<prometheus::Registry> registry,
                     TemplateCacheSettings cache = {});
  ~TemplateServiceApp();
  TemplateServiceApp(const TemplateServiceApp&) = delete;
  TemplateServiceApp& operator=(const TemplateServiceApp&) = delete;

  // Applies the migrations (waiting for PostgreSQL up to startup_timeout), then serves.
  // Throws what runtime::DatabaseService::start throws.
  void start();
  std::uint16_t port() const;
  void stop();
  // start() unless started, then serve until SIGINT/SIGTERM; returns the exit code.
  int run_until_signal(const std::function<void()>& on_started = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::template_service
