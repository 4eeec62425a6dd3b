// notification_worker --channel email|push: delivers notifications from its queue
// (health and metrics on 8000 for email, 4100 for push).
#include <functional>
#include <memory>
#include <utility>

#include <prometheus/registry.h>

#include "notifs/runtime/service_main.hpp"
#include "worker_app.hpp"
#include "worker_settings.hpp"

int main(int argc, char** argv) {
  using namespace notifs;
  return runtime::service_main(argc, argv, "notification_worker", [](runtime::ConfigReader& config) {
    auto settings = worker::read_worker_settings(config);
    return std::function<int()>([settings = std::move(settings)]() mutable {
      worker::WorkerApp app(std::move(settings), std::make_shared<prometheus::Registry>());
      return app.run_until_signal();
    });
  });
}
