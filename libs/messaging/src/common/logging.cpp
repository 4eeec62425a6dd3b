#include "notifs/messaging/common/logging.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <mutex>
#include <utility>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include "common/json_log_formatter.hpp"

namespace notifs::messaging::common {
namespace {

// UTC like the JSON lines, so text and JSON logs of one incident line up.
constexpr const char* kTextPattern = "%Y-%m-%dT%H:%M:%S.%eZ [%^%l%$] [%n] %v";

// Serializes "get or create" so two threads asking for a new area at once do not both
// register it (spdlog's register_logger throws on a duplicate name).
std::mutex& logger_creation_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::unique_ptr<spdlog::formatter> make_formatter(const LoggingSettings& settings) {
  if (settings.format == LogFormat::json) {
    return std::make_unique<detail::JsonLogFormatter>(settings.service);
  }
  return std::make_unique<spdlog::pattern_formatter>(kTextPattern, spdlog::pattern_time_type::utc);
}

}  // namespace

void configure_logging(const LoggingSettings& settings) {
  std::lock_guard lock(logger_creation_mutex());

  // Logs go to stdout (12-factor: the platform collects the stream). Colour only in text
  // mode, and the colour sink drops it by itself when stdout is not a terminal.
  spdlog::sink_ptr sink;
  if (settings.format == LogFormat::json) {
    sink = std::make_shared<spdlog::sinks::stdout_sink_mt>();
  } else {
    sink = std::make_shared<spdlog::sinks::stdout_color_sink_mt>();
  }

  // Loggers made before configuration (an area asked for early) keep their shared_ptr
  // holders, so they are re-pointed at the new sink rather than replaced.
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& existing) {
    existing->sinks().assign(1, sink);
  });

  auto root = spdlog::get(settings.service);
  if (!root) {
    root = std::make_shared<spdlog::logger>(settings.service, sink);
  }
  spdlog::set_default_logger(root);

  // The registry keeps a formatter prototype that initialize_logger() hands to every
  // logger created later; set_formatter() also applies it to the existing ones.
  spdlog::set_formatter(make_formatter(settings));
  spdlog::set_level(settings.level);
  // A container's stdout is a pipe, fully buffered by stdio: without a flush per line a
  // crash loses the last lines, which are the ones that explain it.
  spdlog::flush_on(spdlog::level::trace);
}

std::shared_ptr<spdlog::logger> logger(std::string_view area) {
  std::string name(area);
  if (auto existing = spdlog::get(name)) {
    return existing;
  }
  std::lock_guard lock(logger_creation_mutex());
  if (auto existing = spdlog::get(name)) {
    return existing;
  }
  auto root = spdlog::default_logger();
  auto created = std::make_shared<spdlog::logger>(std::move(name), root->sinks().begin(),
                                                  root->sinks().end());
  // Applies the registry's formatter, level and flush policy, then registers the logger.
  spdlog::initialize_logger(created);
  return created;
}

bool parse_log_level(std::string_view text, spdlog::level::level_enum& out) {
  static constexpr std::array<std::pair<std::string_view, spdlog::level::level_enum>, 6> kLevels{{
      {"trace", spdlog::level::trace},
      {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},
      {"warning", spdlog::level::warn},
      {"error", spdlog::level::err},
  }};
  // Case-insensitive: LOG_LEVEL=INFO is common enough that refusing it helps nobody.
  auto equals_ignoring_case = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) == y;
           });
  };
  for (const auto& [name, level] : kLevels) {
    if (equals_ignoring_case(text, name)) {
      out = level;
      return true;
    }
  }
  return false;
}

}  // namespace notifs::messaging::common
