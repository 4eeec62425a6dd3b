#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "notifs/messaging/http/message.hpp"
#include "notifs/messaging/http/router.hpp"

namespace notifs::runtime {

// The credential of `Authorization: Bearer <token>` (scheme case-insensitive), if any.
std::optional<std::string_view> bearer_token(const messaging::http::Request& request);

// Compares in time independent of where the inputs differ, so that response timing does
// not reveal how much of a guessed token was right.
bool constant_time_equals(std::string_view a, std::string_view b);

// Service-to-service auth (CONTRACT.md, SERVICE_TOKEN): when `token` is not empty, every
// route of `router` answers 401 `unauthorized` (with `WWW-Authenticate: Bearer`) unless
// the request carries `Authorization: Bearer <token>`. Routes added with
// http::Access::open, such as the server's /health, /ready and /metrics, stay open. An
// empty token leaves the router open.
void require_service_token(messaging::http::Router& router, std::string token);

}  // namespace notifs::runtime
