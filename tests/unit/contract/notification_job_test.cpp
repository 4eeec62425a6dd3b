// The notification message body as a worker reads it: every rule of decode_notification_job,
// hostile bodies, and a round trip through the gateway's own message writer.
#include "notifs/contract/notification_job.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "notification_message.hpp"
#include "notification_request.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/http/message.hpp"

namespace contract = notifs::contract;
namespace gw = notifs::api_gateway;
namespace amqp = notifs::messaging::amqp;
namespace http = notifs::messaging::http;
using nlohmann::json;
using namespace std::chrono;

namespace {

constexpr const char* kNotificationId = "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c";
constexpr const char* kUserId = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";

json email_job() {
  return {{"notification_id", kNotificationId},
          {"request_id", "order-1234-welcome"},
          {"notification_type", "email"},
          {"user_id", kUserId},
          {"template_code", "welcome_email"},
          {"locale", "fr"},
          {"variables", {{"name", "Ada"}}},
          {"recipient", {{"name", "Ada Lovelace"}, {"email", "ada@example.com"}}},
          {"priority", 7},
          {"metadata", {{"campaign", "onboarding"}}},
          {"created_at", "2024-05-01T12:34:56.789Z"}};
}

json push_job() {
  json body = email_job();
  body["notification_type"] = "push";
  body["recipient"] = {{"name", "Ada"}, {"push_tokens", {"tok-1", "tok-2"}}};
  return body;
}

constexpr const char* kAccepted = "<accepted>";

// The field a refused body names ("" for the body as a whole), or kAccepted.
std::string refused_field(const std::string& body) {
  try {
    contract::decode_notification_job(body);
  } catch (const contract::JobFormatError& error) {
    return error.field();
  }
  return kAccepted;
}

std::string refused_field(const json& body) { return refused_field(body.dump()); }

json with(json body, const std::string& key, json value) {
  body[key] = std::move(value);
  return body;
}

json without(json body, const std::string& key) {
  body.erase(key);
  return body;
}

json with_recipient(json body, const std::string& key, json value) {
  body["recipient"][key] = std::move(value);
  return body;
}

// `levels` containers, each the only member of the one around it: {"a":{"a":...{}}}.
json nested_object(int levels) {
  json value = json::object();
  for (int i = 1; i < levels; ++i) {
    value = json{{"a", std::move(value)}};
  }
  return value;
}

std::string deep_array_text(std::size_t levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

gw::NotificationRequest parsed_request(const json& body) {
  http::Request request;
  request.method = http::Method::post;
  request.body = body.dump();
  return gw::parse_notification_request(request);
}

// 2024-05-01T12:34:56.789Z plus digits the message truncates.
system_clock::time_point created_at() {
  return sys_days{year{2024} / 5 / 1} + hours{12} + minutes{34} + seconds{56} +
         microseconds{789'999};
}

}  // namespace

TEST_CASE("contract job: a gateway email message decodes to the values it was built from",
          "[contract][job]") {
  const json variables = {{"name", "Zo\u00eb \u65e5\u672c"},
                          {"items", json::array({1, "two", nullptr, json::array({true})})},
                          {"nested", {{"deeper", {{"n", 3.5}}}}},
                          {"quote", "\"<b>\"\n\\"}};
  const json request_body = {{"notification_type", "email"},
                             {"user_id", "6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F"},
                             {"template_code", "welcome_email"},
                             {"variables", variables},
                             {"request_id", "order 1234/welcome"},
                             {"priority", 0},
                             {"metadata", {{"campaign", "onboarding"}, {"n", 1}}}};
  const auto request = parsed_request(request_body);
  const gw::Recipient recipient{"Ada L\u00f8velace", "ada@example.com", {}};
  const auto message = gw::make_notification_message(request, {kNotificationId, created_at()},
                                                     recipient, "pt-BR", "", amqp::TopologyNames{});

  const auto job = contract::decode_notification_job(message.body);
  CHECK(job.notification_id == kNotificationId);
  CHECK(job.request_id == "order 1234/welcome");
  CHECK(job.notification_type == "email");
  CHECK(job.user_id == kUserId);  // the gateway wrote it lower case
  CHECK(job.template_code == "welcome_email");
  CHECK(job.locale == "pt-BR");
  CHECK(job.variables == variables);
  CHECK(job.recipient.name == "Ada L\u00f8velace");
  CHECK(job.recipient.email == "ada@example.com");
  CHECK(job.recipient.push_tokens.empty());
  CHECK(job.priority == 0);
  CHECK(job.metadata == json({{"campaign", "onboarding"}, {"n", 1}}));
  CHECK(job.created_at == "2024-05-01T12:34:56.789Z");
  // The message's own properties agree with the body the worker reads.
  CHECK(message.message_id == job.notification_id);
  CHECK(message.correlation_id == job.request_id);
  CHECK(message.routing_key == job.notification_type);
}

TEST_CASE("contract job: a gateway push message decodes to the values it was built from",
          "[contract][job]") {
  // No variables, metadata or priority: the gateway's defaults travel, not absences.
  const json request_body = {{"notification_type", "push"},
                             {"user_id", kUserId},
                             {"template_code", "order.shipped-v2"},
                             {"request_id", "push-1"}};
  const auto request = parsed_request(request_body);
  const gw::Recipient recipient{"", "", {"fcm:APA91b/x+y=", "tok-2", "t\u00f6k-3"}};
  const auto message = gw::make_notification_message(request, {kNotificationId, created_at()},
                                                     recipient, "", "", amqp::TopologyNames{"p."});

  const auto job = contract::decode_notification_job(message.body);
  CHECK(job.notification_type == "push");
  CHECK(job.template_code == "order.shipped-v2");
  CHECK(job.locale.empty());
  CHECK(job.variables == json::object());
  CHECK(job.metadata == json::object());
  CHECK(job.priority == 5);
  CHECK(job.recipient.name.empty());
  CHECK(job.recipient.email.empty());
  CHECK(job.recipient.push_tokens ==
        std::vector<std::string>{"fcm:APA91b/x+y=", "tok-2", "t\u00f6k-3"});

  // Every priority the gateway accepts comes back.
  for (int priority = 0; priority <= 9; ++priority) {
    auto prioritized = request;
    prioritized.priority = priority;
    const auto sent = gw::make_notification_message(prioritized, {kNotificationId, created_at()},
                                                    recipient, "en", "", amqp::TopologyNames{});
    CHECK(contract::decode_notification_job(sent.body).priority == priority);
  }
}

TEST_CASE("contract job: locale and metadata may be absent or null, nothing else may",
          "[contract][job]") {
  const auto bare =
      contract::decode_notification_job(without(without(email_job(), "locale"), "metadata").dump());
  CHECK(bare.locale.empty());
  CHECK(bare.metadata == json::object());

  const auto nulls = contract::decode_notification_job(
      with(with(email_job(), "locale", nullptr), "metadata", nullptr).dump());
  CHECK(nulls.locale.empty());
  CHECK(nulls.metadata == json::object());

  const auto no_name = contract::decode_notification_job(
      with(email_job(), "recipient", {{"email", "ada@example.com"}}).dump());
  CHECK(no_name.recipient.name.empty());

  for (const char* field : {"notification_id", "request_id", "notification_type", "user_id",
                            "template_code", "variables", "recipient", "priority", "created_at"}) {
    INFO(field);
    CHECK(refused_field(without(email_job(), field)) == field);
    CHECK(refused_field(with(email_job(), field, nullptr)) == field);
  }
}

TEST_CASE("contract job: a body that is not a JSON object names no field", "[contract][job]") {
  for (const std::string& body :
       {std::string(""), std::string("not json"), std::string("[]"), std::string("42"),
        std::string("\"text\""), std::string("null"), std::string("true"),
        email_job().dump().substr(0, 40), email_job().dump() + " trailing",
        std::string("{\"notification_id\": \"\xff\xfe\"}"), std::string("{'a': 1}"),
        std::string(1, '\0')}) {
    INFO(body);
    CHECK(refused_field(body) == "");
  }
  try {
    contract::decode_notification_job("[1, 2]");
    FAIL("an array was accepted");
  } catch (const contract::JobFormatError& error) {
    CHECK(std::string(error.what()).find("array") != std::string::npos);
  }
}

TEST_CASE("contract job: deep nesting is refused, what the gateway allows is not",
          "[contract][job]") {
  // The gateway accepts 32 levels of variables (the object itself the first) and metadata.
  const auto accepted = contract::decode_notification_job(
      with(with(email_job(), "variables", nested_object(32)), "metadata", nested_object(32))
          .dump());
  CHECK(accepted.variables == nested_object(32));

  CHECK(refused_field(with(email_job(), "variables", nested_object(60))) == "");
  // Deep enough to overflow a recursive parser or destructor: refused, no crash.
  CHECK(refused_field(deep_array_text(200'000)) == "");
  std::string hidden = email_job().dump();
  hidden.insert(hidden.size() - 1, ",\"extra\":" + deep_array_text(100'000));
  CHECK(refused_field(hidden) == "");
}

TEST_CASE("contract job: fields of the wrong type are refused by name", "[contract][job]") {
  struct Case {
    const char* field;
    json value;
  };
  const std::vector<Case> cases = {
      {"notification_id", 42},
      {"notification_id", json::array({kNotificationId})},
      {"request_id", 7},
      {"request_id", json::object()},
      {"notification_type", true},
      {"user_id", json::object()},
      {"template_code", 1},
      {"locale", 5},
      {"locale", json::array()},
      {"variables", "name=Ada"},
      {"variables", json::array()},
      {"variables", 1},
      {"recipient", "ada@example.com"},
      {"recipient", json::array()},
      {"priority", "5"},
      {"priority", true},
      {"priority", json::object()},
      {"metadata", "campaign"},
      {"metadata", json::array({1})},
      {"created_at", 1714566896},
  };
  for (const auto& c : cases) {
    INFO(c.field << " = " << c.value.dump());
    CHECK(refused_field(with(email_job(), c.field, c.value)) == c.field);
  }
  CHECK(refused_field(with_recipient(email_job(), "name", 5)) == "recipient.name");
  CHECK(refused_field(with_recipient(email_job(), "email", json::array())) == "recipient.email");
}

TEST_CASE("contract job: ids must be UUIDs and come back lower case", "[contract][job]") {
  const auto upper = contract::decode_notification_job(
      with(with(email_job(), "notification_id", "0B7E6A3C-1D2F-4E5A-8B9C-0D1E2F3A4B5C"), "user_id",
           "6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F")
          .dump());
  CHECK(upper.notification_id == kNotificationId);
  CHECK(upper.user_id == kUserId);

  for (const char* field : {"notification_id", "user_id"}) {
    for (const char* bad :
         {"", "not-a-uuid", "0b7e6a3c1d2f4e5a8b9c0d1e2f3a4b5c",
          "{0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c}", "urn:uuid:0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c",
          "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5g", "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c ",
          " 0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c", "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c0"}) {
      INFO(field << " = '" << bad << "'");
      CHECK(refused_field(with(email_job(), field, bad)) == field);
    }
  }
}

TEST_CASE("contract job: notification_type is email or push, exactly", "[contract][job]") {
  for (const char* bad : {"", "EMAIL", "Email", "sms", "push ", "email\n"}) {
    INFO(bad);
    CHECK(refused_field(with(email_job(), "notification_type", bad)) == "notification_type");
  }
  CHECK(refused_field(push_job()) == kAccepted);
}

TEST_CASE("contract job: request_id, template_code and created_at must say something",
          "[contract][job]") {
  CHECK(refused_field(with(email_job(), "request_id", "")) == "request_id");
  CHECK(refused_field(with(email_job(), "created_at", "")) == "created_at");
  for (const char* bad :
       {"", "Welcome", "welcome email", "../admin", "welcome/email", "caf\u00e9"}) {
    INFO(bad);
    CHECK(refused_field(with(email_job(), "template_code", bad)) == "template_code");
  }
  CHECK(refused_field(with(email_job(), "template_code", std::string(65, 'a'))) == "template_code");
  CHECK(refused_field(with(email_job(), "template_code", std::string(64, 'a'))) == kAccepted);
  CHECK(refused_field(with(email_job(), "template_code", "a.b-c_9")) == kAccepted);
}

TEST_CASE("contract job: an email job needs a usable recipient email", "[contract][job]") {
  json no_email = email_job();
  no_email["recipient"].erase("email");
  CHECK(refused_field(no_email) == "recipient.email");
  CHECK(refused_field(with_recipient(email_job(), "email", nullptr)) == "recipient.email");
  for (const char* bad : {"", "ada", "@example.com", "ada@", "ada@example.com\r\nBcc: x@evil.test",
                          "ada @example.com", "ada@exa\tmple.com"}) {
    INFO(bad);
    CHECK(refused_field(with_recipient(email_job(), "email", bad)) == "recipient.email");
  }
  // Push tokens mean nothing to an email job, whatever they hold.
  const auto job = contract::decode_notification_job(
      with_recipient(email_job(), "push_tokens", "not even an array").dump());
  CHECK(job.recipient.email == "ada@example.com");
  CHECK(job.recipient.push_tokens.empty());
}

TEST_CASE("contract job: a push job needs at least one push token", "[contract][job]") {
  json no_tokens = push_job();
  no_tokens["recipient"].erase("push_tokens");
  CHECK(refused_field(no_tokens) == "recipient.push_tokens");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", nullptr)) ==
        "recipient.push_tokens");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", json::array())) ==
        "recipient.push_tokens");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", "tok-1")) ==
        "recipient.push_tokens");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", json::object())) ==
        "recipient.push_tokens");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", {"tok-1", 2})) ==
        "recipient.push_tokens[1]");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", {"tok-1", ""})) ==
        "recipient.push_tokens[1]");
  CHECK(refused_field(with_recipient(push_job(), "push_tokens", {nullptr})) ==
        "recipient.push_tokens[0]");

  // A token listed twice is sent to once; order is kept.
  const auto deduped = contract::decode_notification_job(
      with_recipient(push_job(), "push_tokens", {"b", "a", "b", "c", "a"}).dump());
  CHECK(deduped.recipient.push_tokens == std::vector<std::string>{"b", "a", "c"});

  // The email member is no business of a push job.
  const auto job =
      contract::decode_notification_job(with_recipient(push_job(), "email", 17).dump());
  CHECK(job.recipient.email.empty());
  CHECK(job.recipient.name == "Ada");
}

TEST_CASE("contract job: priority is an integer from 0 to 9", "[contract][job]") {
  for (const int good : {0, 1, 5, 9}) {
    CHECK(contract::decode_notification_job(with(email_job(), "priority", good).dump()).priority ==
          good);
  }
  for (const json& bad : {json(-1), json(10), json(5.0), json(0.5), json(-0.0),
                          json(std::numeric_limits<std::int64_t>::min()),
                          json(std::numeric_limits<std::uint64_t>::max())}) {
    INFO(bad.dump());
    CHECK(refused_field(with(email_job(), "priority", bad)) == "priority");
  }
  // Written as text: exponent forms and numbers beyond 64 bits parse as floats.
  for (const char* text : {"1e0", "5.0", "18446744073709551616", "-9223372036854775809"}) {
    std::string body = email_job().dump();
    const auto at = body.find("\"priority\":7");
    REQUIRE(at != std::string::npos);
    body.replace(at, 12, std::string("\"priority\":") + text);
    INFO(body);
    CHECK(refused_field(body) == "priority");
  }
}

TEST_CASE("contract job: unknown fields are ignored", "[contract][job]") {
  json body = email_job();
  body["schema_version"] = 2;
  body["trace"] = {{"deep", {1, 2, 3}}};
  body["recipient"]["phone"] = "+33 1 23 45 67 89";
  body["recipient"]["push_tokens"] = {"ignored"};
  const auto job = contract::decode_notification_job(body.dump());
  CHECK(job.notification_id == kNotificationId);
  CHECK(job.recipient.email == "ada@example.com");
  CHECK(job.recipient.push_tokens.empty());
  // ...and a duplicate member: the last one wins, as in every nlohmann parse.
  std::string duplicated = email_job().dump();
  duplicated.insert(duplicated.size() - 1, ",\"priority\":3");
  CHECK(contract::decode_notification_job(duplicated).priority == 3);
}

TEST_CASE("contract job: the error names the field and the problem", "[contract][job]") {
  try {
    contract::decode_notification_job(with(email_job(), "priority", 12).dump());
    FAIL("priority 12 was accepted");
  } catch (const contract::JobFormatError& error) {
    CHECK(error.field() == "priority");
    CHECK(std::string(error.what()) == "notification job: priority must be 0 to 9");
  }
  try {
    contract::decode_notification_job("{");
    FAIL("a truncated body was accepted");
  } catch (const std::invalid_argument& error) {  // what a consumer catches
    CHECK(std::string(error.what()) == "notification job: is not valid JSON");
  }
}
