// The notification message of CONTRACT.md: properties, headers and the exact body, for
// both channels, built from a request parsed the way the gateway parses it.
#include "notification_message.hpp"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <variant>

#include "notification_request.hpp"
#include "notifs/contract/timestamp.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/http/message.hpp"

namespace gw = notifs::api_gateway;
namespace amqp = notifs::messaging::amqp;
namespace http = notifs::messaging::http;
using nlohmann::json;
using namespace std::chrono;

namespace {

constexpr const char* kTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

gw::NotificationRequest parsed(const json& body) {
  http::Request request;
  request.method = http::Method::post;
  request.body = body.dump();
  return gw::parse_notification_request(request);
}

json email_body() {
  return {{"notification_type", "email"},
          {"user_id", "6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F"},
          {"template_code", "welcome_email"},
          {"variables", {{"name", "Ada \u00e9"}, {"items", json::array({1, "two", nullptr})}}},
          {"request_id", "order-1234-welcome"},
          {"priority", 7},
          {"metadata", {{"campaign", "onboarding"}}},
          {"unknown", "dropped"}};
}

// 2024-05-01T12:34:56.789Z, with sub-millisecond digits the message must not round up.
system_clock::time_point created_at() {
  return sys_days{year{2024} / 5 / 1} + hours{12} + minutes{34} + seconds{56} +
         microseconds{789'999};
}

gw::NotificationIdentity identity() {
  return {"0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c", created_at()};
}

gw::Recipient email_recipient() { return {"Ada Lovelace", "ada@example.com", {"token-unused"}}; }

}  // namespace

TEST_CASE("api_gateway message: an email notification message has the contract's properties",
          "[api_gateway][message]") {
  const auto request = parsed(email_body());
  const amqp::OutgoingMessage message = gw::make_notification_message(
      request, identity(), email_recipient(), "fr", kTraceparent, amqp::TopologyNames{});

  CHECK(message.exchange == "notifications.direct");
  CHECK(message.routing_key == "email");
  CHECK(message.persistent);
  CHECK(message.mandatory);
  CHECK(message.content_type == "application/json");
  CHECK(message.message_id == "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c");
  CHECK(message.correlation_id == "order-1234-welcome");
  REQUIRE(message.priority.has_value());
  CHECK(*message.priority == 7);
  REQUIRE(message.timestamp.has_value());
  CHECK(*message.timestamp == created_at());

  CHECK(message.headers.size() == 2);
  const amqp::HeaderValue* attempt = message.headers.find(amqp::kAttemptHeader);
  REQUIRE(attempt != nullptr);
  REQUIRE(std::holds_alternative<std::int64_t>(*attempt));  // an integer, not "1"
  CHECK(std::get<std::int64_t>(*attempt) == 1);
  CHECK(message.headers.get_string(amqp::kTraceparentHeader) == std::string(kTraceparent));
}

TEST_CASE("api_gateway message: an email notification body is exactly the contract's JSON",
          "[api_gateway][message]") {
  const auto message =
      gw::make_notification_message(parsed(email_body()), identity(), email_recipient(), "fr",
                                    kTraceparent, amqp::TopologyNames{});
  const json expected = {
      {"notification_id", "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c"},
      {"request_id", "order-1234-welcome"},
      {"notification_type", "email"},
      {"user_id", "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"},
      {"template_code", "welcome_email"},
      {"locale", "fr"},
      {"variables", {{"name", "Ada \u00e9"}, {"items", json::array({1, "two", nullptr})}}},
      {"recipient", {{"name", "Ada Lovelace"}, {"email", "ada@example.com"}}},
      {"priority", 7},
      {"metadata", {{"campaign", "onboarding"}}},
      {"created_at", "2024-05-01T12:34:56.789Z"},
  };
  const json body = json::parse(message.body);
  CHECK(body == expected);
  // Compact and UTF-8 as is: the worker and the ledger see the same bytes for one message.
  CHECK(message.body == expected.dump());
  CHECK(message.body.find('\n') == std::string::npos);
}

TEST_CASE("api_gateway message: a push notification goes to push with the tokens only",
          "[api_gateway][message]") {
  json body = email_body();
  body["notification_type"] = "push";
  body.erase("variables");
  body.erase("metadata");
  body.erase("priority");
  const gw::Recipient recipient{"Ada", "ada@example.com", {"tok-1", "tok-2"}};
  const auto message = gw::make_notification_message(parsed(body), identity(), recipient, "en",
                                                     kTraceparent, amqp::TopologyNames{});
  CHECK(message.exchange == "notifications.direct");
  CHECK(message.routing_key == "push");
  CHECK(message.priority == std::optional<std::uint8_t>(5));

  const json sent = json::parse(message.body);
  CHECK(sent.at("notification_type") == "push");
  CHECK(sent.at("recipient") == json({{"name", "Ada"}, {"push_tokens", {"tok-1", "tok-2"}}}));
  CHECK_FALSE(sent.at("recipient").contains("email"));
  CHECK(sent.at("variables") == json::object());
  CHECK(sent.at("metadata") == json::object());
  CHECK(sent.at("priority") == 5);
  CHECK(sent.at("locale") == "en");
  CHECK(sent.size() == 11);
}

TEST_CASE("api_gateway message: the exchange follows the topology names",
          "[api_gateway][message]") {
  const auto message =
      gw::make_notification_message(parsed(email_body()), identity(), email_recipient(), "en",
                                    kTraceparent, amqp::TopologyNames{"test-42."});
  CHECK(message.exchange == "test-42.notifications.direct");
  // Routing keys are channel names, never prefixed: the bindings use the plain keys.
  CHECK(message.routing_key == "email");
}

TEST_CASE("api_gateway message: an empty traceparent is left out, not sent empty",
          "[api_gateway][message]") {
  const auto message = gw::make_notification_message(
      parsed(email_body()), identity(), email_recipient(), "en", "", amqp::TopologyNames{});
  CHECK(message.headers.find(amqp::kTraceparentHeader) == nullptr);
  CHECK(message.headers.get_int(amqp::kAttemptHeader) == std::int64_t{1});
}

TEST_CASE("api_gateway message: a recipient without the channel's address is a caller bug",
          "[api_gateway][message]") {
  const auto email = parsed(email_body());
  CHECK_THROWS_AS(gw::make_notification_message(email, identity(), {"Ada", "", {"tok"}}, "en",
                                                kTraceparent, amqp::TopologyNames{}),
                  std::invalid_argument);
  json push_body = email_body();
  push_body["notification_type"] = "push";
  CHECK_THROWS_AS(
      gw::make_notification_message(parsed(push_body), identity(), {"Ada", "ada@example.com", {}},
                                    "en", kTraceparent, amqp::TopologyNames{}),
      std::invalid_argument);
  CHECK_THROWS_AS(gw::make_notification_message(email, {"", created_at()}, email_recipient(), "en",
                                                kTraceparent, amqp::TopologyNames{}),
                  std::invalid_argument);
  auto out_of_range = email;
  out_of_range.priority = 10;  // not from the parser, which refuses it
  CHECK_THROWS_AS(gw::make_notification_message(out_of_range, identity(), email_recipient(), "en",
                                                kTraceparent, amqp::TopologyNames{}),
                  std::invalid_argument);
  out_of_range.priority = -1;
  CHECK_THROWS_AS(gw::make_notification_message(out_of_range, identity(), email_recipient(), "en",
                                                kTraceparent, amqp::TopologyNames{}),
                  std::invalid_argument);
}

TEST_CASE("api_gateway message: priority boundaries reach the message property",
          "[api_gateway][message]") {
  for (int priority : {0, 9}) {
    json body = email_body();
    body["priority"] = priority;
    const auto message = gw::make_notification_message(parsed(body), identity(), email_recipient(),
                                                       "en", kTraceparent, amqp::TopologyNames{});
    CHECK(message.priority == std::optional<std::uint8_t>(static_cast<std::uint8_t>(priority)));
    CHECK(json::parse(message.body).at("priority") == priority);
  }
}

TEST_CASE("api_gateway message: created_at is RFC 3339 UTC with milliseconds, truncated",
          "[api_gateway][message]") {
  CHECK(notifs::contract::format_rfc3339_ms(created_at()) == "2024-05-01T12:34:56.789Z");
  CHECK(notifs::contract::format_rfc3339_ms(system_clock::time_point{}) == "1970-01-01T00:00:00.000Z");
  CHECK(notifs::contract::format_rfc3339_ms(sys_days{year{1999} / 12 / 31} + hours{23} + minutes{59} +
                              seconds{59} + milliseconds{999} + microseconds{999}) ==
        "1999-12-31T23:59:59.999Z");
  CHECK(notifs::contract::format_rfc3339_ms(sys_days{year{2024} / 2 / 29} + milliseconds{7}) ==
        "2024-02-29T00:00:00.007Z");
  // Before the epoch the milliseconds still count up from the whole second.
  CHECK(notifs::contract::format_rfc3339_ms(system_clock::time_point{} - milliseconds{1}) ==
        "1969-12-31T23:59:59.999Z");
}
