#pragma once

#include <cstdint>

#include "notifs/messaging/http/message.hpp"

namespace notifs::runtime {

// `?page=&limit=` of a list request (CONTRACT.md): page starts at 1; limit defaults to
// 20 and is capped at 100 (a larger limit is lowered, not refused).
struct PageRequest {
  std::int64_t page = 1;
  std::int64_t limit = 20;
  std::int64_t offset() const { return (page - 1) * limit; }
};

inline constexpr std::int64_t kDefaultPageLimit = 20;
inline constexpr std::int64_t kMaxPageLimit = 100;
inline constexpr std::int64_t kMaxPage = 1'000'000;

// Throws http::HttpError 400 `validation_failed` naming the field when page or limit is
// not a decimal integer, page < 1 or page > kMaxPage, or limit < 1.
PageRequest parse_page_request(const messaging::http::Request& request);

}  // namespace notifs::runtime
