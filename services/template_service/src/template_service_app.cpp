#include "template_service_app.hpp"

#include <utility>

#include "migrations.hpp"
#include "notifs/messaging/common/clock.hpp"
#include "template_cache.hpp"
#include "template_routes.hpp"
#include "template_store.hpp"

namespace notifs::template_service {

TemplateCacheSettings read_template_cache_settings(runtime::ConfigReader& config) {
  TemplateCacheSettings settings;
  settings.render_cache_size = static_cast<std::size_t>(config.integer(
      "RENDER_CACHE_SIZE", static_cast<std::int64_t>(settings.render_cache_size), 0, 1'000'000));
  settings.resolution_ttl =
      config.milliseconds("TEMPLATE_CACHE_TTL_MS", settings.resolution_ttl,
                          std::chrono::milliseconds{0}, std::chrono::milliseconds{600'000});
  return settings;
}

namespace {

runtime::DatabaseServiceSettings with_statements(runtime::DatabaseServiceSettings settings) {
  auto previous = std::move(settings.database.on_connect);
  settings.database.on_connect = [previous =
                                      std::move(previous)](pqxx::connection_base& connection) {
    if (previous) {
      previous(connection);
    }
    TemplateStore::prepare_statements(connection);
  };
  if (settings.server.service_name.empty() || settings.server.service_name == "service") {
    settings.server.service_name = "template_service";
  }
  return settings;
}

}  // namespace

struct TemplateServiceApp::Impl {
  Impl(runtime::DatabaseServiceSettings settings, std::shared_ptr<prometheus::Registry> registry,
       TemplateCacheSettings cache_settings)
      : service(with_statements(std::move(settings)), std::move(registry), migrations(),
                "template_service"),
        store(service.pool()),
        cache(cache_settings, messaging::common::SystemClock::instance()),
        resolver(store, cache, service.registry()) {}

  runtime::DatabaseService service;
  TemplateStore store;
  TemplateCache cache;
  TemplateResolver resolver;
  bool started = false;
};

TemplateServiceApp::TemplateServiceApp(runtime::DatabaseServiceSettings settings,
                                       std::shared_ptr<prometheus::Registry> registry,
                                       TemplateCacheSettings cache)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(registry), cache)) {}

TemplateServiceApp::~TemplateServiceApp() {
  // The server's workers use the store and cache: stop them first.
  impl_->service.stop();
}

void TemplateServiceApp::start() {
  impl_->service.start(make_template_router(impl_->store, impl_->resolver));
  impl_->started = true;
}

std::uint16_t TemplateServiceApp::port() const { return impl_->service.port(); }

void TemplateServiceApp::stop() { impl_->service.stop(); }

int TemplateServiceApp::run_until_signal(const std::function<void()>& on_started) {
  if (!impl_->started) {
    start();
  }
  return impl_->service.run_until_signal(on_started);
}

}  // namespace notifs::template_service
