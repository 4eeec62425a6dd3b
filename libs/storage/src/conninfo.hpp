#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace notifs::storage::detail {

// A database URL (postgresql://... or libpq's keyword=value form) as libpq itself parses
// it, turned back into a connection string with the pool's own settings added. Parsing
// with libpq rather than by hand keeps every parameter the operator wrote (sslmode,
// options, target_session_attrs, ...) exactly as libpq would read it.
class ConnInfo {
 public:
  // Throws std::invalid_argument naming the URL with its password masked.
  explicit ConnInfo(const std::string& url);

  // A keyword=value string for PQconnectdb: the URL's parameters plus connect_timeout
  // (whole seconds, rounded up), fallback_application_name (an application_name in the
  // URL wins) and `-c statement_timeout=<ms>` ahead of the URL's own `options` (so an
  // explicit statement_timeout in the URL wins too).
  std::string connection_string(std::chrono::milliseconds connect_timeout,
                                std::string_view application_name,
                                std::chrono::milliseconds statement_timeout) const;

 private:
  std::vector<std::pair<std::string, std::string>> params_;
};

// One line out of a libpq or server message: trailing newlines dropped, inner newlines
// and tabs (libpq's "\n\tIs the server running ...") folded into spaces.
std::string one_line(std::string_view text);

}  // namespace notifs::storage::detail
