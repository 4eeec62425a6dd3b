#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::runtime {

// The configuration is malformed. what() is one line naming every problem, e.g.
// `PORT: must be an integer in 1..65535 (got "abc"); DATABASE_URL: is required`.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads a process's configuration the 12-factor way: environment variables, each of which
// a command-line flag of the same name may override (`--port=4001`, `--port 4001`,
// `--PORT=4001` and `--database-url=...` all name PORT / DATABASE_URL). Every getter
// records a problem instead of throwing, so that finish() can report them all at once;
// after a problem the getter returns its fallback. Only main() and a service's config
// module use this; libraries take settings structs.
//
// Not thread-safe: used once, at start.
class ConfigReader {
 public:
  using Lookup = std::function<std::optional<std::string>(std::string_view name)>;
  // The real environment (getenv).
  static Lookup environment();

  // argv[0] is skipped. A malformed or unknown flag is a problem reported by finish().
  ConfigReader(int argc, const char* const* argv, Lookup lookup = environment());

  // An unset variable and one set to the empty string both mean "absent".
  std::string text(std::string_view name, std::string fallback);
  std::optional<std::string> optional_text(std::string_view name);
  // Absent: a problem ("is required").
  std::string required_text(std::string_view name);
  // Like text(), but printed as "***" (or "(unset)").
  std::string secret(std::string_view name, std::string fallback = {});
  // One of `choices`, compared exactly.
  std::string choice(std::string_view name, std::string fallback,
                     const std::vector<std::string>& choices);
  std::uint16_t port(std::string_view name, std::uint16_t fallback);
  std::int64_t integer(std::string_view name, std::int64_t fallback, std::int64_t min,
                       std::int64_t max);
  std::chrono::milliseconds milliseconds(std::string_view name,
                                         std::chrono::milliseconds fallback,
                                         std::chrono::milliseconds min,
                                         std::chrono::milliseconds max);
  // true/false, 1/0, yes/no, on/off (case-insensitive).
  bool boolean(std::string_view name, bool fallback);
  // A URL whose scheme is one of `schemes` ("postgresql", "amqp", ...), with a host. Its
  // password, if any, is masked when printed. An empty fallback with the variable absent
  // is a problem ("is required").
  std::string url(std::string_view name, std::string fallback,
                  const std::vector<std::string>& schemes);
  // Comma-separated, each item trimmed, empty items dropped. Printed masked when `secret`.
  std::vector<std::string> list(std::string_view name, bool secret = false);
  // LOG_LEVEL (trace, debug, info, warn, error; default info) and LOG_FORMAT (json, text;
  // default text).
  messaging::common::LoggingSettings logging(std::string service);

  // Throws ConfigError when any getter or flag had a problem, or a flag named a variable
  // that no getter read (a typo such as --prot=1).
  void finish() const;
  const std::vector<std::string>& problems() const { return problems_; }
  // A problem the caller found across variables (a rule tying two values together), so
  // that finish() reports it with the rest. Never put a secret's value in `text`.
  void report_problem(std::string_view name, std::string text) { problem(name, std::move(text)); }

  // Every value read, in order, as printable text: secrets masked, URL passwords masked.
  const std::vector<std::pair<std::string, std::string>>& effective() const {
    return effective_;
  }
  // "PORT=4001 LOG_LEVEL=info DATABASE_URL=postgresql://app:***@db:5432/users ...".
  std::string effective_line() const;

 private:
  std::optional<std::string> raw(std::string_view name);
  void record(std::string_view name, std::string printable);
  void problem(std::string_view name, std::string text);

  struct Flag {
    std::string name;      // the variable it names: "DATABASE_URL"
    std::string spelling;  // as typed, for "unknown flag --databse-url"
    std::string value;
    bool used = false;
  };

  Lookup lookup_;
  std::vector<Flag> flags_;  // in command-line order; the last of one name wins
  std::vector<std::string> problems_;
  std::vector<std::pair<std::string, std::string>> effective_;
};

// The URL with its userinfo password, and the value of a `password=` query parameter
// (libpq accepts one), replaced by "***"; other text unchanged.
std::string mask_url_password(std::string_view url);

}  // namespace notifs::runtime
