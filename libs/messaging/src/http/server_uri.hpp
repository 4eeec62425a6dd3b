#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace notifs::messaging::http::detail {

// Decodes %XX escapes; with `plus_is_space` (query strings, form style) '+' becomes ' '.
// nullopt when an escape is truncated or not hex: such a target is malformed (400).
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

// Splits "a=1&b=x%20y&flag" into decoded pairs in order; empty pieces are skipped and a
// key without '=' has an empty value. nullopt when any piece has a bad escape.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(
    std::string_view query);

// A request target split into its still-encoded path and query. Absolute-form targets
// ("http://host/p?q", which RFC 9112 requires servers to accept) lose scheme and
// authority. nullopt when the target is not origin- or absolute-form (e.g. "*").
struct TargetParts {
  std::string_view path;
  std::string_view query;
};
std::optional<TargetParts> split_target(std::string_view target);

}  // namespace notifs::messaging::http::detail
