// The pure parts of push delivery: the FCM body, how an answer is classified, the
// per-notification aggregate and the fan-out over tokens. No network.

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "push_sender.hpp"

using notifs::messaging::http::ClientErrc;
using notifs::messaging::http::ClientResult;
using notifs::worker::aggregate_push;
using notifs::worker::classify_push_response;
using notifs::worker::fcm_request_body;
using notifs::worker::PushDelivery;
using notifs::worker::PushMessage;
using notifs::worker::PushResult;
using notifs::worker::PushSender;
using notifs::worker::SendOutcome;
using notifs::worker::SendResult;
using notifs::worker::TokenOutcome;
using notifs::worker::TokenReport;

namespace {

ClientResult answer(unsigned status, std::string body) {
  ClientResult result;
  result.response.status = status;
  result.response.body = std::move(body);
  result.response.attempts = 1;
  return result;
}

std::string fcm_error(unsigned code, const std::string& status, const std::string& error_code = {}) {
  nlohmann::json error = {{"code", code}, {"message", "m"}, {"status", status}};
  if (!error_code.empty()) {
    error["details"] = {{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"},
                         {"errorCode", error_code}}};
  }
  return nlohmann::json{{"error", error}}.dump();
}

ClientResult no_response(ClientErrc errc) {
  ClientResult result;
  result.error = make_error_code(errc);
  result.detail = "connect: Connection refused";
  return result;
}

}  // namespace

TEST_CASE("worker push body has the FCM v1 shape with string data") {
  PushMessage message;
  message.notification_id = "n-1";
  message.title = "Line\r\nbreak \"quoted\"";
  message.body = "Body";
  message.data = {{"k", "v"}};
  const auto body = nlohmann::json::parse(fcm_request_body(message, "tok"));
  CHECK(body["message"]["token"] == "tok");
  CHECK(body["message"]["notification"]["title"] == "Line\r\nbreak \"quoted\"");
  CHECK(body["message"]["data"] == nlohmann::json({{"k", "v"}, {"notification_id", "n-1"}}));
  CHECK(body.size() == 1);
  CHECK(body["message"].size() == 3);
}

TEST_CASE("worker push body survives invalid UTF-8 in a rendered template") {
  PushMessage message;
  message.notification_id = "n-1";
  message.title = std::string("bad \xff byte");
  std::string text;
  REQUIRE_NOTHROW(text = fcm_request_body(message, "tok"));
  CHECK(nlohmann::json::parse(text)["message"]["notification"]["title"].get<std::string>().find("bad") == 0);
}

TEST_CASE("worker push classification of answers") {
  SECTION("2xx is delivered with the provider's message name") {
    const auto outcome = classify_push_response(answer(200, R"({"name":"projects/p/messages/9"})"));
    CHECK(outcome.result.outcome == SendOutcome::delivered);
    CHECK(outcome.result.detail == "projects/p/messages/9");
  }
  SECTION("UNREGISTERED in the details is an unregistered token whatever the status") {
    for (unsigned status : {404U, 400U}) {
      const auto outcome = classify_push_response(answer(status, fcm_error(status, "X", "UNREGISTERED")));
      CHECK(outcome.unregistered);
      CHECK(outcome.result.outcome == SendOutcome::permanent);
      CHECK_FALSE(outcome.result.provider_fault);
    }
  }
  SECTION("404 NOT_FOUND without details is an unregistered token") {
    const auto outcome = classify_push_response(answer(404, fcm_error(404, "NOT_FOUND")));
    CHECK(outcome.unregistered);
  }
  SECTION("404 that is not an FCM error is a provider fault, never an unregistered token") {
    for (const char* body : {"<html>Not Found</html>", R"({"error":{"code":"not_found"}})", ""}) {
      const auto outcome = classify_push_response(answer(404, body));
      CHECK_FALSE(outcome.unregistered);
      CHECK(outcome.result.outcome == SendOutcome::transient);
      CHECK(outcome.result.provider_fault);
    }
  }
  SECTION("400 is permanent, with the FCM code and message in the detail") {
    const auto outcome = classify_push_response(answer(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")));
    CHECK(outcome.result.outcome == SendOutcome::permanent);
    CHECK(outcome.result.detail == "HTTP 400 INVALID_ARGUMENT: m");
    CHECK_FALSE(outcome.unregistered);
  }
  SECTION("our credentials refused is a provider fault; a sender mismatch is the token's") {
    CHECK(classify_push_response(answer(401, fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR")))
              .result.provider_fault);
    const auto mismatch = classify_push_response(answer(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH")));
    CHECK(mismatch.result.outcome == SendOutcome::permanent);
  }
  SECTION("429 is transient without a provider fault, 5xx with one") {
    const auto quota = classify_push_response(answer(429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED")));
    CHECK(quota.result.outcome == SendOutcome::transient);
    CHECK_FALSE(quota.result.provider_fault);
    const auto down = classify_push_response(answer(503, "Service Unavailable"));
    CHECK(down.result.outcome == SendOutcome::transient);
    CHECK(down.result.provider_fault);
    CHECK(down.result.detail == "HTTP 503");
  }
  SECTION("no response is a transient provider fault, except our own shutdown") {
    for (auto errc : {ClientErrc::connect_failed, ClientErrc::deadline_exceeded, ClientErrc::circuit_open,
                      ClientErrc::connection_lost, ClientErrc::protocol_error}) {
      const auto outcome = classify_push_response(no_response(errc));
      CHECK(outcome.result.outcome == SendOutcome::transient);
      CHECK(outcome.result.provider_fault);
      CHECK(outcome.result.detail.find("Connection refused") != std::string::npos);
    }
    CHECK_FALSE(classify_push_response(no_response(ClientErrc::shutting_down)).result.provider_fault);
  }
  SECTION("details are one bounded line") {
    const auto outcome = classify_push_response(answer(400, fcm_error(400, "INVALID_ARGUMENT") + std::string(2000, ' ')));
    CHECK(outcome.result.detail.find('\n') == std::string::npos);
    const auto huge = nlohmann::json{{"error", {{"status", "INVALID_ARGUMENT"}, {"message", std::string(5000, 'x') + "\r\n"}}}};
    const auto long_outcome = classify_push_response(answer(400, huge.dump()));
    CHECK(long_outcome.result.detail.size() <= 310);
    CHECK(long_outcome.result.detail.find('\r') == std::string::npos);
  }
}

TEST_CASE("worker push aggregate rule") {
  const auto delivered = TokenOutcome{SendResult::delivered_ok("ok"), false};
  const auto gone = TokenOutcome{SendResult::permanent_failure("HTTP 404 UNREGISTERED"), true};
  const auto down = TokenOutcome{SendResult::transient_failure("HTTP 503", true)};
  const auto quota = TokenOutcome{SendResult::transient_failure("HTTP 429", false)};

  CHECK(aggregate_push({}).result.outcome == SendOutcome::permanent);
  CHECK(aggregate_push({}).result.detail == "no push tokens");

  auto mixed = aggregate_push({{"a", delivered}, {"b", down}, {"c", gone}});
  CHECK(mixed.result.outcome == SendOutcome::transient);
  CHECK(mixed.result.provider_fault);
  CHECK(mixed.pending_tokens() == std::vector<std::string>{"b"});
  CHECK(mixed.unregistered_tokens() == std::vector<std::string>{"c"});

  // A quota answer alone is no provider fault for the notification either.
  CHECK_FALSE(aggregate_push({{"a", delivered}, {"b", quota}}).result.provider_fault);

  auto partial = aggregate_push({{"a", gone}, {"b", delivered}});
  CHECK(partial.result.outcome == SendOutcome::delivered);
  CHECK(partial.result.detail == "delivered to 1 of 2 tokens (1 unregistered)");

  auto single = aggregate_push({{"a", gone}});
  CHECK(single.result.outcome == SendOutcome::permanent);
  CHECK(single.result.detail == "HTTP 404 UNREGISTERED");
}

TEST_CASE("worker push fan-out settles every token once, whatever the send function does") {
  auto message = std::make_shared<PushMessage>();
  message->notification_id = "n-1";
  message->tokens = {"ok", "", "throws", "twice", "ok"};
  std::vector<std::string> sent;
  int done_calls = 0;
  PushResult result;
  notifs::worker::send_to_each_token(
      message,
      [&sent](const PushDelivery& delivery, PushSender::Callback callback) {
        sent.push_back(delivery.token);
        if (delivery.token == "throws") throw std::runtime_error("no connection slot");
        callback(TokenOutcome{SendResult::delivered_ok("ok"), false});
        if (delivery.token == "twice") callback(TokenOutcome{SendResult::permanent_failure("late"), false});
      },
      [&](PushResult r) {
        ++done_calls;
        result = std::move(r);
      });
  CHECK(done_calls == 1);
  // The duplicate "ok" is not sent again; the empty token is never sent.
  CHECK(sent == std::vector<std::string>{"ok", "throws", "twice"});
  REQUIRE(result.tokens.size() == 4);
  CHECK(result.tokens[1].outcome.result.outcome == SendOutcome::permanent);
  CHECK(result.tokens[2].outcome.result.outcome == SendOutcome::transient);
  CHECK(result.tokens[2].outcome.result.detail.find("no connection slot") != std::string::npos);
  CHECK(result.tokens[3].outcome.result.outcome == SendOutcome::delivered);
  CHECK(result.result.outcome == SendOutcome::transient);
  CHECK(result.pending_tokens() == std::vector<std::string>{"throws"});
}

TEST_CASE("worker push fan-out of a message without tokens answers at once") {
  auto message = std::make_shared<PushMessage>();
  bool called = false;
  notifs::worker::send_to_each_token(
      message, [](const PushDelivery&, PushSender::Callback) { FAIL("nothing to send"); },
      [&called](PushResult result) {
        called = true;
        CHECK(result.result.outcome == SendOutcome::permanent);
      });
  CHECK(called);
}
