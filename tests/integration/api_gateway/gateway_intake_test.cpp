// POST /api/v1/notifications end to end: real gateway, user_service, template_service,
// RabbitMQ and PostgreSQL.

#include <catch2/catch.hpp>

#include "integration/api_gateway/gateway_fixture.hpp"

namespace notifs::gateway_test {
namespace {

TEST_CASE("gateway: an accepted email is confirmed, queued and answered 202",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto response =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto data = response.json()["data"];
  CHECK(data["status"] == "queued");
  CHECK(data["request_id"] == request_id);
  CHECK(data["notification_type"] == "email");

  const auto message = gateway.probe().get(gateway.email_queue());
  REQUIRE(message);
  CHECK(message->message_id == data["notification_id"]);
  CHECK(message->correlation_id == request_id);
  const auto body = nlohmann::json::parse(message->body);
  CHECK(body["user_id"] == user_id);
  CHECK(body["recipient"]["email"].get<std::string>().find("@example.com") != std::string::npos);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
}

}  // namespace
}  // namespace notifs::gateway_test
