#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace notifs::messaging::common {

enum class LogFormat { text, json };

struct LoggingSettings {
  spdlog::level::level_enum level = spdlog::level::info;
  LogFormat format = LogFormat::text;
  std::string service = "notifs";  // appears in every JSON line
};

// Configures the default sink and pattern once at start, before threads exist.
void configure_logging(const LoggingSettings& settings);

// The logger of one area ("http", "amqp", "pg", a service name), created on first use
// and shared by every thread afterwards. spdlog loggers are thread-safe.
std::shared_ptr<spdlog::logger> logger(std::string_view area);

// Parses LOG_LEVEL (trace, debug, info, warn, error); nullopt-like false when unknown.
bool parse_log_level(std::string_view text, spdlog::level::level_enum& out);

}  // namespace notifs::messaging::common
