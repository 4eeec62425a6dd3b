// api_gateway: authenticated, idempotent notification intake (port 8080).
#include <functional>
#include <memory>
#include <utility>

#include <prometheus/registry.h>

#include "gateway_app.hpp"
#include "gateway_settings.hpp"
#include "notifs/runtime/service_main.hpp"

int main(int argc, char** argv) {
  using namespace notifs;
  return runtime::service_main(argc, argv, "api_gateway", [](runtime::ConfigReader& config) {
    auto settings = api_gateway::read_gateway_settings(config);
    return std::function<int()>([settings = std::move(settings)]() mutable {
      api_gateway::GatewayApp app(std::move(settings), std::make_shared<prometheus::Registry>());
      return app.run_until_signal();
    });
  });
}
