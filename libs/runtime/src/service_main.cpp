#include "notifs/runtime/service_main.hpp"

#include <exception>
#include <iostream>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::runtime {

int service_main(int argc, const char* const* argv, std::string service_name,
                 const Configure& configure) {
  ConfigReader config(argc, argv);
  messaging::common::LoggingSettings logging;
  std::function<int()> run;
  try {
    // Logging first: its settings decide how every later line looks, including the ones
    // configure() might log.
    logging = config.logging(service_name);
    run = configure(config);
    config.finish();
  } catch (const ConfigError& error) {
    // One line on stderr, before logging exists: an orchestrator shows the last line of
    // a crashed container, and that line should name every problem.
    std::cerr << service_name << ": invalid configuration: " << error.what() << std::endl;
    return 2;
  } catch (const std::exception& error) {
    // configure() may trip over a value it was handed after a recorded problem (the
    // fallback); the recorded problems are then the real reason.
    try {
      config.finish();
    } catch (const ConfigError& config_error) {
      std::cerr << service_name << ": invalid configuration: " << config_error.what()
                << std::endl;
      return 2;
    }
    std::cerr << service_name << ": cannot start: " << error.what() << std::endl;
    return 1;
  }

  messaging::common::configure_logging(logging);
  auto log = messaging::common::logger(service_name);
  log->info("starting config: {}", config.effective_line());
  if (!run) {
    return 0;
  }
  try {
    const int code = run();
    log->info("stopped exit_code={}", code);
    return code;
  } catch (const std::exception& error) {
    log->critical("stopped by an error err={}", error.what());
    return 1;
  } catch (...) {
    log->critical("stopped by an unknown exception");
    return 1;
  }
}

}  // namespace notifs::runtime
