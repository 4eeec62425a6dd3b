#include "notification_intake.hpp"

#include <exception>
#include <utility>

#include "notification_message.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;
namespace amqp = messaging::amqp;
using SteadyClock = std::chrono::steady_clock;

struct NotificationIntake::Attempt {
  IntakeRequest request;
  Respond respond;
  NewNotification row;          // what the claim writes
  bool claimed_again = false;    // see on_claim's in_progress
  std::string notification_id;  // the claimed row's (ours, or one taken over)
  std::chrono::system_clock::time_point created_at;
  std::shared_ptr<const UserSnapshot> user;
  std::shared_ptr<const TemplateSnapshot> found_template;
};

namespace {

std::shared_ptr<spdlog::logger> intake_log() {
  static const auto log = messaging::common::logger("api_gateway");
  return log;
}

// A 503 the client should retry soon: every cause here (broker, database, an upstream) is
// usually back within seconds, and the retry is idempotent.
http::Response unavailable(std::string_view code, std::string message) {
  auto response = http::error_response(503, code, std::move(message));
  response.headers.set("Retry-After", "1");
  return response;
}

std::string skip_reason(Channel channel, const UserSnapshot& user) {
  if (channel == Channel::email) {
    if (!user.email_enabled) return "email_disabled";
    if (user.email.empty()) return "no_email_address";
  } else {
    if (!user.push_enabled) return "push_disabled";
    if (user.push_tokens.empty()) return "no_push_tokens";
  }
  return {};
}

}  // namespace

nlohmann::json intake_answer(const std::string& notification_id, const std::string& request_id,
                             Channel channel, Status status, const std::string& reason) {
  nlohmann::json data = {{"notification_id", notification_id},
                         {"request_id", request_id},
                         {"notification_type", to_string(channel)},
                         {"status", to_string(status)}};
  if (status == Status::skipped) {
    data["reason"] = reason;
  }
  return data;
}

NotificationIntake::NotificationIntake(Ledger& ledger, Directory& directory,
                                       amqp::MessagePublisher& publisher, GatewayMetrics& metrics,
                                       amqp::TopologyNames names)
    : ledger_(ledger),
      directory_(directory),
      publisher_(publisher),
      metrics_(metrics),
      names_(std::move(names)) {}

void NotificationIntake::submit(IntakeRequest request, Respond respond) {
  auto attempt = std::make_shared<Attempt>();
  attempt->request = std::move(request);
  attempt->respond = std::move(respond);
  attempt->created_at = std::chrono::system_clock::now();

  const auto& notification = attempt->request.notification;
  NewNotification row;
  // Time-ordered, so the ledger's primary key index takes inserts at its right edge.
  row.notification_id = messaging::common::generate_uuid_v7();
  row.api_key_id = attempt->request.api_key_id;
  row.request_id = notification.request_id;
  row.fingerprint = request_fingerprint(notification);
  row.user_id = notification.user_id;
  row.notification_type = notification.notification_type;
  row.template_code = notification.template_code;
  row.priority = notification.priority;
  row.metadata = notification.metadata;
  attempt->row = std::move(row);
  start_claim(attempt);
}

void NotificationIntake::start_claim(const std::shared_ptr<Attempt>& attempt) {
  ledger_.claim(attempt->row, [this, attempt](LedgerResult<ClaimResult> result) {
    on_claim(attempt, std::move(result));
  });
}

void NotificationIntake::on_claim(const std::shared_ptr<Attempt>& attempt,
                                  LedgerResult<ClaimResult> result) {
  const auto& request_id = attempt->request.notification.request_id;
  if (!result.ok()) {
    intake_log()->warn("ledger claim failed request_id={} err={}", request_id,
                       result.describe());
    metrics_.rejected(Rejection::database_unavailable);
    attempt->respond(unavailable("database_unavailable",
                                 "the notification ledger is unavailable; retry shortly"));
    return;
  }
  auto& claim = result.value;
  switch (claim.outcome) {
    case ClaimResult::Outcome::conflict:
      metrics_.rejected(Rejection::idempotency_conflict);
      attempt->respond(http::error_response(
          409, "idempotency_conflict",
          "request_id '" + request_id + "' was already used with a different body"));
      return;
    case ClaimResult::Outcome::in_progress: {
      // in_progress always has this request's fingerprint (a different one is a conflict).
      if (is_acked_unrecorded(claim.existing.notification_id)) {
        replay(attempt, claim.existing);
        return;
      }
      // Not in the set: never acked here, or acked and recorded between the claim's read
      // and now (the set forgets an id once `queued` is committed). One more claim tells
      // the two apart: the second case then reads `queued` and replays.
      if (!attempt->claimed_again) {
        attempt->claimed_again = true;
        start_claim(attempt);
        return;
      }
      metrics_.rejected(Rejection::idempotency_in_progress);
      auto response = http::error_response(
          409, "idempotency_in_progress",
          "a request with request_id '" + request_id + "' is still being processed");
      response.headers.set("Retry-After", "1");
      attempt->respond(std::move(response));
      return;
    }
    case ClaimResult::Outcome::replay:
      replay(attempt, claim.existing);
      return;
    case ClaimResult::Outcome::claimed:
      break;
  }
  attempt->notification_id = claim.existing.notification_id;
  directory_.find_user(attempt->request.notification.user_id, attempt->request.http_request_id,
                       [this, attempt](UserLookup user) { on_user(attempt, std::move(user)); });
}

void NotificationIntake::replay(const std::shared_ptr<Attempt>& attempt,
                                const NotificationRecord& existing) {
  metrics_.replayed();
  // The first answer: skipped stays skipped; anything else was answered `queued`.
  const auto status = existing.status == Status::skipped ? Status::skipped : Status::queued;
  auto response = http::ok_response(
      200,
      intake_answer(existing.notification_id, existing.request_id, existing.notification_type,
                    status, existing.reason.value_or("")),
      "replayed: this request_id was answered before");
  response.headers.set("Idempotent-Replayed", "true");
  attempt->respond(std::move(response));
}

void NotificationIntake::remember_acked(const std::string& notification_id) {
  std::lock_guard lock(acked_mutex_);
  acked_unrecorded_.insert(notification_id);
}

void NotificationIntake::forget_acked(const std::string& notification_id) {
  std::lock_guard lock(acked_mutex_);
  acked_unrecorded_.erase(notification_id);
}

bool NotificationIntake::is_acked_unrecorded(const std::string& notification_id) const {
  std::lock_guard lock(acked_mutex_);
  return acked_unrecorded_.contains(notification_id);
}

void NotificationIntake::on_user(const std::shared_ptr<Attempt>& attempt, UserLookup user) {
  const auto& notification = attempt->request.notification;
  if (user.is_not_found()) {
    fail(attempt, Rejection::user_not_found,
         http::error_response(404, "user_not_found",
                              "no user with id '" + notification.user_id + "'"));
    return;
  }
  if (user.is_unavailable()) {
    intake_log()->warn("user lookup failed request_id={} err={}", notification.request_id,
                       user.reason);
    fail(attempt, Rejection::user_service_unavailable,
         unavailable("user_service_unavailable", "user_service is unavailable; retry shortly"));
    return;
  }
  attempt->user = user.value;
  directory_.find_template(notification.template_code, attempt->user->locale,
                           attempt->request.http_request_id,
                           [this, attempt](TemplateLookup found) {
                             on_template(attempt, std::move(found));
                           });
}

void NotificationIntake::on_template(const std::shared_ptr<Attempt>& attempt,
                                     TemplateLookup found) {
  const auto& notification = attempt->request.notification;
  const auto channel = to_string(notification.notification_type);
  if (found.is_unavailable()) {
    intake_log()->warn("template lookup failed request_id={} err={}", notification.request_id,
                       found.reason);
    fail(attempt, Rejection::template_service_unavailable,
         unavailable("template_service_unavailable",
                     "template_service is unavailable; retry shortly"));
    return;
  }
  if (found.is_not_found() || found.value->channel != channel) {
    fail(attempt, Rejection::template_not_found,
         http::error_response(404, "template_not_found",
                              "no " + std::string(channel) + " template with code '" +
                                  notification.template_code + "'"));
    return;
  }
  attempt->found_template = found.value;
  // The template is checked first: a wrong code is the caller's bug and deserves a 404
  // even for a user who would be skipped.
  auto reason = skip_reason(notification.notification_type, *attempt->user);
  if (!reason.empty()) {
    skip(attempt, std::move(reason));
    return;
  }
  publish(attempt);
}

void NotificationIntake::skip(const std::shared_ptr<Attempt>& attempt, std::string reason) {
  ledger_.confirm(
      attempt->notification_id, Status::skipped, reason,
      [this, attempt, reason](LedgerResult<bool> done) {
        if (!done.ok()) {
          // Nothing was queued, so the answer can honestly be 503: the retry decides again.
          fail(attempt, Rejection::database_unavailable,
               unavailable("database_unavailable",
                           "the notification ledger is unavailable; retry shortly"));
          return;
        }
        metrics_.skipped();
        const auto& notification = attempt->request.notification;
        attempt->respond(http::ok_response(
            202,
            intake_answer(attempt->notification_id, notification.request_id,
                          notification.notification_type, Status::skipped, reason),
            "skipped: " + reason));
      });
}

void NotificationIntake::publish(const std::shared_ptr<Attempt>& attempt) {
  const auto& notification = attempt->request.notification;
  amqp::OutgoingMessage message;
  try {
    Recipient recipient;
    recipient.name = attempt->user->name;
    if (notification.notification_type == Channel::email) {
      recipient.email = attempt->user->email;
    } else {
      recipient.push_tokens = attempt->user->push_tokens;
    }
    auto locale = attempt->user->locale.empty() ? attempt->found_template->locale
                                                : attempt->user->locale;
    message = make_notification_message(
        notification, NotificationIdentity{attempt->notification_id, attempt->created_at},
        recipient, std::move(locale), attempt->request.traceparent, names_);
  } catch (const std::exception& error) {
    intake_log()->error("building the message failed request_id={} err={}",
                        notification.request_id, error.what());
    fail(attempt, Rejection::internal_error,
         http::error_response(500, "internal_error", "the notification could not be built"));
    return;
  }
  const auto started = SteadyClock::now();
  publisher_.async_publish(
      std::move(message),
      [this, attempt, started](std::error_code error, const std::string& detail) {
        metrics_.publish_answered(SteadyClock::now() - started);
        const auto& request_id = attempt->request.notification.request_id;
        if (error) {
          intake_log()->warn("publish failed request_id={} notification_id={} err={} {}",
                             request_id, attempt->notification_id, error.message(), detail);
          fail(attempt, Rejection::broker_unavailable,
               unavailable("broker_unavailable",
                           "the message broker did not confirm the notification; retry "
                           "shortly"));
          return;
        }
        // The broker has it: answer now and record `queued` after (see the class comment).
        remember_acked(attempt->notification_id);
        metrics_.accepted();
        const auto& accepted = attempt->request.notification;
        attempt->respond(http::ok_response(
            202,
            intake_answer(attempt->notification_id, accepted.request_id,
                          accepted.notification_type, Status::queued, {}),
            "notification queued"));
        ledger_.confirm(attempt->notification_id, Status::queued, {},
                        [this, attempt](LedgerResult<bool> done) {
                          // Recorded, or never will be by us: either way the ledger answers
                          // for this row from now on.
                          forget_acked(attempt->notification_id);
                          if (!done.ok()) {
                            intake_log()->error(
                                "confirmed publish not recorded as queued request_id={} "
                                "notification_id={} err={}",
                                attempt->request.notification.request_id,
                                attempt->notification_id, done.describe());
                          }
                        });
      });
}

void NotificationIntake::fail(const std::shared_ptr<Attempt>& attempt, Rejection rejection,
                              http::Response error) {
  metrics_.rejected(rejection);
  ledger_.release(attempt->notification_id,
                  [attempt, error = std::move(error)](LedgerResult<bool> released) mutable {
                    if (!released.ok()) {
                      intake_log()->warn(
                          "releasing a failed claim failed; it is taken over later "
                          "notification_id={}",
                          attempt->notification_id);
                    }
                    attempt->respond(std::move(error));
                  });
}

}  // namespace notifs::api_gateway
