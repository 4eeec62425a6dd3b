// user_service: users, their preferences and push tokens, in PostgreSQL (port 4001).
#include <functional>
#include <memory>
#include <utility>

#include <prometheus/registry.h>

#include "notifs/runtime/service_main.hpp"
#include "user_service_app.hpp"

int main(int argc, char** argv) {
  using namespace notifs;
  return runtime::service_main(argc, argv, "user_service", [](runtime::ConfigReader& config) {
    auto settings = runtime::read_database_service_settings(config, "user_service", 4001);
    return std::function<int()>([settings = std::move(settings)]() mutable {
      user_service::UserServiceApp app(std::move(settings),
                                       std::make_shared<prometheus::Registry>());
      return app.run_until_signal();
    });
  });
}
