#include "notification_routes.hpp"

#include <utility>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/pagination.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;
using http::Method;

namespace {

constexpr std::string_view kCollection = "/api/v1/notifications";
constexpr std::string_view kItem = "/api/v1/notifications/{notification_id}";

http::Response not_found(std::string_view id) {
  return http::error_response(404, "notification_not_found",
                              "no notification with id '" + std::string(id) + "'");
}

std::string lower(std::string_view text) {
  std::string out(text);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

NotificationFilter parse_filter(const http::Request& request) {
  NotificationFilter filter;
  std::vector<http::FieldProblem> problems;
  if (const auto user_id = request.query_param("user_id"); user_id && !user_id->empty()) {
    if (is_uuid(*user_id)) {
      filter.user_id = lower(*user_id);
    } else {
      problems.push_back({"user_id", "must be a UUID"});
    }
  }
  if (const auto status = request.query_param("status"); status && !status->empty()) {
    filter.status = status_from_string(*status);
    if (!filter.status) {
      problems.push_back(
          {"status", "must be one of queued, processing, retrying, delivered, failed, skipped"});
    }
  }
  if (!problems.empty()) {
    throw http::HttpError(400, "validation_failed", "invalid query parameters",
                          std::move(problems));
  }
  return filter;
}

}  // namespace

nlohmann::json notification_json(const NotificationRecord& record) {
  nlohmann::json data = {{"notification_id", record.notification_id},
                         {"request_id", record.request_id},
                         {"user_id", record.user_id},
                         {"notification_type", to_string(record.notification_type)},
                         {"template_code", record.template_code},
                         {"status", to_string(record.status)},
                         {"attempts", record.attempts},
                         {"last_error", nullptr},
                         {"created_at", record.created_at},
                         {"updated_at", record.updated_at}};
  if (record.last_error) {
    data["last_error"] = *record.last_error;
  }
  if (record.status == Status::skipped && record.reason) {
    data["reason"] = *record.reason;
  }
  return data;
}

void add_notification_routes(http::Router& router, const ApiKeys& keys, RateLimiter& limiter,
                             NotificationIntake& intake, Ledger& ledger,
                             GatewayMetrics& metrics) {
  router.add_async(
      Method::post, kCollection,
      [&keys, &limiter, &intake, &metrics](http::Request&& request, http::Responder responder) {
        // The route is open to the guard: it authenticates here, once, because it needs
        // the key's id (hashing the key twice per request would be work for nothing).
        const auto key_id = keys.authenticate(request);
        if (!key_id) {
          metrics.rejected(Rejection::unauthorized);
          responder.send(ApiKeys::unauthorized());
          return;
        }
        const auto decision = limiter.acquire(*key_id);
        if (!decision.allowed) {
          metrics.rejected(Rejection::rate_limited);
          responder.send(rate_limited_error(decision).to_response());
          return;
        }
        IntakeRequest intake_request;
        try {
          intake_request.notification = parse_notification_request(request);
        } catch (const http::HttpError& error) {
          metrics.rejected(Rejection::validation_failed);
          auto response = error.to_response();
          add_rate_limit_headers(decision, response.headers);
          responder.send(std::move(response));
          return;
        }
        intake_request.api_key_id = *key_id;
        intake_request.http_request_id = request.request_id;
        intake_request.traceparent = request.traceparent;
        intake.submit(std::move(intake_request),
                      [responder = std::move(responder), decision](http::Response response) {
                        add_rate_limit_headers(decision, response.headers);
                        responder.send(std::move(response));
                      });
      },
      http::Access::open);

  router.add(
      Method::get, kItem,
      [&ledger](const http::Request& request) {
        const auto id = request.path_param("notification_id");
        if (!is_uuid(id)) {
          return not_found(id);
        }
        const auto record = ledger.find(lower(id));
        if (!record) {
          return not_found(id);
        }
        return http::ok_response(200, notification_json(*record));
      },
      http::Execution::blocking);

  router.add(
      Method::get, kCollection,
      [&ledger](const http::Request& request) {
        const auto filter = parse_filter(request);
        const auto page_request = runtime::parse_page_request(request);
        const auto page = ledger.list(filter, page_request);
        nlohmann::json data = nlohmann::json::array();
        for (const auto& record : page.items) {
          data.push_back(notification_json(record));
        }
        const http::PageMeta meta{page.total, page_request.limit, page_request.page};
        return http::ok_response(200, std::move(data), "ok", meta.to_json());
      },
      http::Execution::blocking);
}

}  // namespace notifs::api_gateway
