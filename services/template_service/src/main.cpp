// template_service: Mustache templates per code, channel and locale, with immutable
// versions in PostgreSQL and a render cache (port 4002).
#include <prometheus/registry.h>

#include <functional>
#include <memory>
#include <utility>

#include "notifs/runtime/service_main.hpp"
#include "template_service_app.hpp"

int main(int argc, char** argv) {
  using namespace notifs;
  return runtime::service_main(argc, argv, "template_service", [](runtime::ConfigReader& config) {
    auto settings = runtime::read_database_service_settings(config, "template_service", 4002);
    auto cache = template_service::read_template_cache_settings(config);
    return std::function<int()>([settings = std::move(settings), cache]() mutable {
      template_service::TemplateServiceApp app(std::move(settings),
                                               std::make_shared<prometheus::Registry>(), cache);
      return app.run_until_signal();
    });
  });
}
