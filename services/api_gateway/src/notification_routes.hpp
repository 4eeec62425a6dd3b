#pragma once

#include "api_keys.hpp"
#include "gateway_metrics.hpp"
#include "ledger.hpp"
#include "notification_intake.hpp"
#include "notifs/messaging/http/router.hpp"
#include "rate_limiter.hpp"

namespace notifs::api_gateway {

// The gateway's client API (CONTRACT.md, api_gateway):
//   POST /api/v1/notifications                    rate limit, validation, then the intake
//   GET  /api/v1/notifications/{notification_id}  one notification (404 also for a non-UUID)
//   GET  /api/v1/notifications?user_id=&status=&page=&limit=
// The GETs are authenticated by the router's guard (ApiKeys::guard); POST is open to the
// guard and authenticates itself, since it needs the key's id. Every argument must outlive
// the server that serves the router.
void add_notification_routes(messaging::http::Router& router, const ApiKeys& keys,
                             RateLimiter& limiter, NotificationIntake& intake, Ledger& ledger,
                             GatewayMetrics& metrics);

// GET's `data` for one record (the contract's fields, plus `reason` when skipped).
nlohmann::json notification_json(const NotificationRecord& record);

}  // namespace notifs::api_gateway
