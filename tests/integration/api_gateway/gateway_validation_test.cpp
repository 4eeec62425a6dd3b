// POST /api/v1/notifications refusals before anything is claimed or queued: field
// validation (400 with one detail per bad field), malformed bodies, 413, 415 and the
// per-key rate limit. Real gateway, user_service, template_service, RabbitMQ, PostgreSQL.

#include <catch2/catch.hpp>

#include <cctype>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "integration/api_gateway/gateway_fixture.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {
namespace {

std::vector<std::string> problem_fields(const tests::RawResponse& response) {
  std::vector<std::string> fields;
  const auto body = response.json();
  if (!body.contains("error") || !body["error"].is_object()) return fields;
  for (const auto& detail : body["error"]["details"]) {
    fields.push_back(detail.value("field", ""));
    // Every detail explains itself.
    CHECK_FALSE(detail.value("problem", "").empty());
  }
  return fields;
}

void check_error_envelope(const tests::RawResponse& response, unsigned status,
                          const std::string& code) {
  INFO(response.status << " " << response.body);
  CHECK(response.status == status);
  const auto envelope = response.json();
  CHECK(envelope["success"] == false);
  CHECK(envelope["data"].is_null());
  CHECK(envelope["error"]["code"] == code);
  CHECK(envelope["message"].is_string());
}

struct BadField {
  std::string name;      // what the case shows
  std::string field;     // the field the details must name, alone
  nlohmann::json patch;  // members replaced in a valid body (null: removed)
};

nlohmann::json apply(nlohmann::json body, const nlohmann::json& patch) {
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      body.erase(key);
    } else {
      body[key] = value;
    }
  }
  return body;
}

TEST_CASE("gateway validation: each invalid field is named on its own",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto valid = GatewayFixture::notification_body(user_id, unique_request_id());
  const std::string big(5000, 'x');

  const std::vector<BadField> cases = {
      {"notification_type unknown", "notification_type", {{"notification_type", "sms"}}},
      {"notification_type missing", "notification_type", {{"notification_type", nullptr}}},
      {"notification_type not a string", "notification_type", {{"notification_type", 1}}},
      {"notification_type wrong case", "notification_type", {{"notification_type", "Email"}}},
      {"user_id not a UUID", "user_id", {{"user_id", "not-a-uuid"}}},
      {"user_id missing", "user_id", {{"user_id", nullptr}}},
      {"user_id 32 digits", "user_id", {{"user_id", "6f1c9a8e2b7d4c1a9e3f0a1b2c3d4e5f"}}},
      {"user_id a number", "user_id", {{"user_id", 42}}},
      {"template_code upper case", "template_code", {{"template_code", "Welcome_Email"}}},
      {"template_code with a space", "template_code", {{"template_code", "welcome email"}}},
      {"template_code empty", "template_code", {{"template_code", ""}}},
      {"template_code too long", "template_code", {{"template_code", std::string(65, 'a')}}},
      {"template_code missing", "template_code", {{"template_code", nullptr}}},
      {"variables an array", "variables", {{"variables", nlohmann::json::array({1, 2})}}},
      {"variables a string", "variables", {{"variables", "name=Ada"}}},
      {"variables a number", "variables", {{"variables", 3}}},
      {"request_id missing", "request_id", {{"request_id", nullptr}}},
      {"request_id empty", "request_id", {{"request_id", ""}}},
      {"request_id too long", "request_id", {{"request_id", std::string(129, 'r')}}},
      {"request_id with a control character", "request_id", {{"request_id", "abc\x01" "def"}}},
      {"request_id with a newline", "request_id", {{"request_id", "abc\ndef"}}},
      {"request_id with a tab", "request_id", {{"request_id", "abc\tdef"}}},
      {"request_id not a string", "request_id", {{"request_id", 1234}}},
      {"priority above 9", "priority", {{"priority", 10}}},
      {"priority below 0", "priority", {{"priority", -1}}},
      {"priority huge", "priority", {{"priority", 4294967296LL}}},
      {"priority fractional", "priority", {{"priority", 5.5}}},
      {"priority a string", "priority", {{"priority", "5"}}},
      {"priority a boolean", "priority", {{"priority", true}}},
      {"metadata an array", "metadata", {{"metadata", nlohmann::json::array({"a"})}}},
      {"metadata a string", "metadata", {{"metadata", "campaign"}}},
      {"metadata over 4 KiB", "metadata", {{"metadata", {{"blob", big}}}}},
  };

  for (const auto& bad : cases) {
    INFO("case: " << bad.name);
    const auto body = apply(valid, bad.patch);
    const auto response = gateway.post_notification(body);
    check_error_envelope(response, 400, "validation_failed");
    CHECK(problem_fields(response) == std::vector<std::string>{bad.field});
  }
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);

  // The refusals claimed nothing: the valid body with that request id is accepted.
  const auto accepted = gateway.post_notification(valid);
  INFO(accepted.body);
  CHECK(accepted.status == 202);
}

TEST_CASE("gateway validation: values at the limits are accepted",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();

  // 128 characters, inner spaces allowed.
  const std::string long_id = "a b" + std::string(125, 'z');
  REQUIRE(long_id.size() == 128);
  auto request = GatewayFixture::notification_body(user_id, long_id);
  request["priority"] = 0;
  // Compact serialization of exactly 4096 bytes: {"b":"<4088 characters>"}.
  request["metadata"] = {{"b", std::string(4096 - 8, 'm')}};
  REQUIRE(request["metadata"].dump().size() == 4096);
  const auto response = gateway.post_notification(request);
  INFO(response.body);
  CHECK(response.status == 202);

  auto upper = GatewayFixture::notification_body(user_id, unique_request_id());
  std::string upper_id = user_id;
  for (auto& c : upper_id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  upper["user_id"] = upper_id;
  upper["priority"] = 9;
  const auto upper_response = gateway.post_notification(upper);
  INFO(upper_response.body);
  CHECK(upper_response.status == 202);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 2);
}

TEST_CASE("gateway validation: several invalid fields are all named",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const nlohmann::json body = {{"notification_type", "fax"},
                               {"user_id", "nope"},
                               {"template_code", "Bad Code!"},
                               {"variables", nlohmann::json::array()},
                               {"request_id", std::string(200, 'x')},
                               {"priority", 11},
                               {"metadata", 7}};
  const auto response = gateway.post_notification(body);
  check_error_envelope(response, 400, "validation_failed");
  const auto fields = problem_fields(response);
  CHECK(std::set<std::string>(fields.begin(), fields.end()) ==
        std::set<std::string>{"notification_type", "user_id", "template_code", "variables",
                              "request_id", "priority", "metadata"});
  CHECK(fields.size() == 7);

  const auto empty = gateway.post_notification(nlohmann::json::object());
  check_error_envelope(empty, 400, "validation_failed");
  const auto missing = problem_fields(empty);
  CHECK(std::set<std::string>(missing.begin(), missing.end()) ==
        std::set<std::string>{"notification_type", "user_id", "template_code", "request_id"});
}

TEST_CASE("gateway validation: invalid JSON and a non-object body get 400",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto valid = GatewayFixture::notification_body(user_id, unique_request_id()).dump();

  for (const std::string& body : {std::string("{\"notification_type\": \"email\","),
                                 std::string("not json at all"), valid.substr(0, valid.size() - 1),
                                 std::string("{\"priority\": 1e400}"), valid + "}"}) {
    INFO("body: " << body);
    const auto response = gateway.request("POST", "/api/v1/notifications", body);
    check_error_envelope(response, 400, "invalid_json");
  }
  for (const std::string& body : {std::string("[1, 2]"), std::string("\"email\""),
                                 std::string("42"), std::string("null"), std::string("true"),
                                 "[" + valid + "]"}) {
    INFO("body: " << body);
    const auto response = gateway.request("POST", "/api/v1/notifications", body);
    INFO(response.body);
    CHECK(response.status == 400);
    CHECK(response.json()["success"] == false);
    CHECK(error_code(response) == "validation_failed");
    CHECK(problem_fields(response) == std::vector<std::string>{"body"});
  }
  const auto empty = gateway.request("POST", "/api/v1/notifications", "",
                                     {{"Content-Type", "application/json"}});
  INFO(empty.body);
  CHECK(empty.status == 400);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
}

TEST_CASE("gateway validation: unknown fields are ignored", "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  auto request = GatewayFixture::notification_body(user_id, request_id);
  request["channel_hint"] = "fast";
  request["extra"] = {{"nested", nlohmann::json::array({1, 2, 3})}};
  request["scheduled_at"] = nullptr;
  const auto response = gateway.post_notification(request);
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto message = gateway.probe().get(gateway.email_queue());
  REQUIRE(message);
  const auto body = nlohmann::json::parse(message->body);
  CHECK_FALSE(body.contains("channel_hint"));
  CHECK_FALSE(body.contains("extra"));

  // Unknown fields are not part of the request: without them it is the same request.
  const auto replay =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  INFO(replay.body);
  CHECK(replay.status == 200);
}

TEST_CASE("gateway validation: a body over 64 KiB gets 413", "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  auto request = GatewayFixture::notification_body(user_id, unique_request_id());
  request["variables"]["blob"] = std::string(70 * 1024, 'v');
  const auto body = request.dump();
  REQUIRE(body.size() > 64 * 1024);
  const auto response = gateway.request("POST", "/api/v1/notifications", body);
  check_error_envelope(response, 413, "payload_too_large");
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);

  // Just under the limit is read and validated (here: accepted).
  request["variables"]["blob"] = std::string(60 * 1024, 'v');
  const auto fits = gateway.post_notification(request);
  INFO(fits.status);
  CHECK(fits.status == 202);
}

TEST_CASE("gateway validation: a body that is not JSON by Content-Type gets 415",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto body = GatewayFixture::notification_body(user_id, unique_request_id()).dump();

  for (const std::string type : {"text/plain", "application/x-www-form-urlencoded",
                                 "application/xml", "multipart/form-data; boundary=x"}) {
    INFO("Content-Type: " << type);
    const auto response =
        gateway.request("POST", "/api/v1/notifications", body, {{"Content-Type", type}});
    check_error_envelope(response, 415, "unsupported_media_type");
  }
  // A JSON body with no Content-Type at all is not JSON either.
  const auto untyped = tests::round_trip(
      gateway.port(),
      tests::make_request("POST", "/api/v1/notifications",
                          {{"Authorization", std::string("Bearer ") + kApiKey}}, body));
  REQUIRE(untyped);
  check_error_envelope(*untyped, 415, "unsupported_media_type");
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);

  // Parameters on the JSON type are fine.
  const auto with_charset = gateway.request("POST", "/api/v1/notifications", body,
                                            {{"Content-Type", "application/json; charset=utf-8"}});
  INFO(with_charset.body);
  CHECK(with_charset.status == 202);
}

TEST_CASE("gateway validation: the per-key rate limit answers 429 with Retry-After and RateLimit headers",
          "[api_gateway][integration]") {
  GatewayOptions options;
  options.rate_limit_per_second = 1;
  options.rate_limit_burst = 2;
  GatewayFixture gateway(options);
  const auto user_id = gateway.create_user();

  // Three requests in quick succession: the first two are refused for their bodies (cheap,
  // so the third comes well inside the second a token takes to come back) but still take
  // a token each.
  const auto first = gateway.post_notification(nlohmann::json::object());
  const auto second = gateway.post_notification(nlohmann::json::object());
  const auto third =
      gateway.post_notification(GatewayFixture::notification_body(user_id, unique_request_id()));

  INFO(first.body);
  CHECK(first.status == 400);
  CHECK(first.header("RateLimit-Limit") == "2");
  CHECK(first.header("RateLimit-Remaining") == "1");
  CHECK(first.has_header("RateLimit-Reset"));

  INFO(second.body);
  CHECK(second.status == 400);
  CHECK(second.header("RateLimit-Limit") == "2");
  CHECK(second.header("RateLimit-Remaining") == "0");

  INFO(third.body);
  check_error_envelope(third, 429, "rate_limited");
  REQUIRE(third.has_header("Retry-After"));
  CHECK(std::stoi(third.header("Retry-After")) >= 1);
  CHECK(third.header("RateLimit-Limit") == "2");
  CHECK(third.header("RateLimit-Remaining") == "0");
  REQUIRE(third.has_header("RateLimit-Reset"));
  CHECK(std::stoi(third.header("RateLimit-Reset")) >= 1);
  // Refused before the intake: nothing queued.
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);

  // The other key has a bucket of its own.
  const auto other = gateway.post_notification(
      GatewayFixture::notification_body(user_id, unique_request_id()),
      {{"X-API-Key", kOtherApiKey}}, /*authorize=*/false);
  INFO(other.body);
  CHECK(other.status == 202);
  CHECK(other.header("RateLimit-Limit") == "2");
  CHECK(other.header("RateLimit-Remaining") == "1");
  CHECK(other.has_header("RateLimit-Reset"));
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);
}

}  // namespace
}  // namespace notifs::gateway_test
