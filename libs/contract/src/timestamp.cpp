#include "notifs/contract/timestamp.hpp"

#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace notifs::contract {

std::string format_rfc3339_ms(std::chrono::system_clock::time_point at) {
  using namespace std::chrono;
  // floor, not duration_cast: before the epoch, truncation toward zero would move the
  // seconds part one second late.
  const auto ms = floor<milliseconds>(at.time_since_epoch());
  const auto secs = floor<seconds>(ms);
  const auto millis = (ms - secs).count();
  const std::time_t whole = static_cast<std::time_t>(secs.count());
  std::tm utc{};
  if (gmtime_r(&whole, &utc) == nullptr) {
    throw std::invalid_argument("format_rfc3339_ms: time out of range");
  }
  char text[40];
  const int written = std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                    utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour,
                                    utc.tm_min, utc.tm_sec, static_cast<int>(millis));
  if (written <= 0 || static_cast<std::size_t>(written) >= sizeof text) {
    throw std::invalid_argument("format_rfc3339_ms: time out of range");
  }
  return std::string(text, static_cast<std::size_t>(written));
}

}  // namespace notifs::contract
