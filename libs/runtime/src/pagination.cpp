#include "notifs/runtime/pagination.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <vector>

#include "notifs/messaging/http/envelope.hpp"

namespace notifs::runtime {

namespace http = messaging::http;

namespace {

// Digits only: no sign, no spaces, no exponent. nullopt when malformed or beyond int64
// (from_chars reports overflow instead of wrapping).
std::optional<std::int64_t> parse_decimal(std::string_view text) {
  if (text.empty() ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

PageRequest parse_page_request(const http::Request& request) {
  PageRequest page;
  std::vector<http::FieldProblem> problems;

  if (const auto text = request.query_param("page")) {
    const auto value = parse_decimal(*text);
    if (!value || *value < 1 || *value > kMaxPage) {
      problems.push_back({"page", "must be an integer from 1 to " + std::to_string(kMaxPage)});
    } else {
      page.page = *value;
    }
  }
  if (const auto text = request.query_param("limit")) {
    const auto value = parse_decimal(*text);
    if (!value || *value < 1) {
      problems.push_back({"limit", "must be an integer from 1 to " +
                                       std::to_string(kMaxPageLimit) +
                                       " (larger values are lowered to " +
                                       std::to_string(kMaxPageLimit) + ")"});
    } else {
      page.limit = std::min(*value, kMaxPageLimit);
    }
  }
  if (!problems.empty()) {
    throw http::HttpError(400, "validation_failed", "invalid pagination parameters",
                          std::move(problems));
  }
  return page;
}

}  // namespace notifs::runtime
