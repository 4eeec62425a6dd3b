// The gateway's read API end to end: GET /api/v1/notifications/{id} and the filtered,
// paginated GET /api/v1/notifications, over the ledger the POSTs and status events wrote.

#include <chrono>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/api_gateway/gateway_fixture.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {
namespace {

using namespace std::chrono_literals;

const std::regex kRfc3339Ms(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");

std::string upper_case(std::string text) {
  for (auto& c : text) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  return text;
}

// The whole envelope of a list request that must succeed.
json list(GatewayFixture& gateway, const std::string& query) {
  const auto response = gateway.get("/api/v1/notifications" + query);
  INFO(query << " -> " << response.body);
  REQUIRE(response.status == 200);
  auto envelope = response.json();
  REQUIRE(envelope["success"] == true);
  REQUIRE(envelope["data"].is_array());
  REQUIRE(envelope["meta"].is_object());
  return envelope;
}

std::set<std::string> ids_of(const json& items) {
  std::set<std::string> ids;
  for (const auto& item : items) {
    ids.insert(item["notification_id"].get<std::string>());
  }
  return ids;
}

// The fields named in a 400 validation_failed answer.
std::set<std::string> invalid_fields(GatewayFixture& gateway, const std::string& query) {
  const auto response = gateway.get("/api/v1/notifications" + query);
  INFO(query << " -> " << response.body);
  REQUIRE(response.status == 400);
  const auto envelope = response.json();
  CHECK(envelope["success"] == false);
  CHECK(envelope["data"].is_null());
  CHECK(envelope["error"]["code"] == "validation_failed");
  std::set<std::string> fields;
  for (const auto& detail : envelope["error"]["details"]) {
    CHECK_FALSE(detail["problem"].get<std::string>().empty());
    fields.insert(detail["field"].get<std::string>());
  }
  return fields;
}

void mark_delivered(GatewayFixture& gateway, const std::string& id) {
  messaging::amqp::OutgoingMessage message;
  message.exchange = gateway.topology().names.status_exchange();
  message.routing_key = std::string(messaging::amqp::TopologyNames::kStatusRoutingKey);
  message.body = contract::encode_status_event(contract::StatusEvent{
      id, contract::Status::delivered, 1, "", std::chrono::system_clock::now()});
  gateway.probe().publish(message);
  const bool shown = amqp_test::wait_until(
      [&] {
        const auto response = gateway.get("/api/v1/notifications/" + id);
        return response.status == 200 && response.json()["data"]["status"] == "delivered";
      },
      15s, 50ms);
  REQUIRE(shown);
}

TEST_CASE("gateway read: GET shows every contract field of an accepted notification",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto accepted = gateway.accept(GatewayFixture::notification_body(user_id, request_id));
  const auto id = accepted["notification_id"].get<std::string>();

  const auto response = gateway.get("/api/v1/notifications/" + id);
  INFO(response.body);
  REQUIRE(response.status == 200);
  CHECK(response.has_header("X-Request-ID"));
  const auto envelope = response.json();
  CHECK(envelope["success"] == true);
  CHECK(envelope["error"].is_null());
  const auto data = envelope["data"];
  CHECK(data["notification_id"] == id);
  CHECK(data["request_id"] == request_id);
  CHECK(data["user_id"] == user_id);
  CHECK(data["notification_type"] == "email");
  CHECK(data["template_code"] == kEmailTemplate);
  CHECK(data["status"] == "queued");
  CHECK(data["attempts"] == 0);
  REQUIRE(data.contains("last_error"));
  CHECK(data["last_error"].is_null());
  REQUIRE(data["created_at"].is_string());
  REQUIRE(data["updated_at"].is_string());
  const auto created_at = data["created_at"].get<std::string>();
  const auto updated_at = data["updated_at"].get<std::string>();
  CHECK(std::regex_match(created_at, kRfc3339Ms));
  CHECK(std::regex_match(updated_at, kRfc3339Ms));
  CHECK(updated_at >= created_at);
  for (const char* field : {"notification_id", "request_id", "user_id", "notification_type",
                            "template_code", "status", "attempts", "last_error", "created_at",
                            "updated_at"}) {
    CHECK(data.contains(field));
  }

  const auto push_id = gateway.accept_notification(user_id, "push");
  const auto push = gateway.get("/api/v1/notifications/" + push_id).json()["data"];
  CHECK(push["notification_type"] == "push");
  CHECK(push["template_code"] == kPushTemplate);
}

TEST_CASE("gateway read: a skipped notification shows its status and reason",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id =
      gateway.create_user(json{{"preferences", {{"email", false}, {"push", true}}}});
  const auto accepted =
      gateway.accept(GatewayFixture::notification_body(user_id, unique_request_id()));
  REQUIRE(accepted["status"] == "skipped");
  const auto response =
      gateway.get("/api/v1/notifications/" + accepted["notification_id"].get<std::string>());
  INFO(response.body);
  REQUIRE(response.status == 200);
  const auto data = response.json()["data"];
  CHECK(data["status"] == "skipped");
  CHECK(data["reason"] == "email_disabled");
  CHECK(data["attempts"] == 0);
}

TEST_CASE("gateway read: GET answers 404 notification_not_found for unknown and malformed ids",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  // One real notification, so the ledger is not simply empty.
  gateway.accept_notification(gateway.create_user());

  for (const std::string& id :
       {messaging::common::generate_uuid_v4(), std::string("not-a-uuid"), std::string("123"),
        std::string("00000000-0000-0000-0000-00000000000"),
        std::string("00000000-0000-0000-0000-0000000000000"),
        std::string("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), std::string("%27%3B--")}) {
    const auto response = gateway.get("/api/v1/notifications/" + id);
    INFO(id << " -> " << response.body);
    CHECK(response.status == 404);
    const auto envelope = response.json();
    CHECK(envelope["success"] == false);
    CHECK(envelope["data"].is_null());
    CHECK(envelope["error"]["code"] == "notification_not_found");
  }
}

TEST_CASE("gateway read: GET accepts an upper-case notification id",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());
  const auto response = gateway.get("/api/v1/notifications/" + upper_case(id));
  INFO(response.body);
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["notification_id"] == id);
}

TEST_CASE("gateway read: reads need an API key", "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());
  for (const std::string& target : {"/api/v1/notifications/" + id,
                                   std::string("/api/v1/notifications"),
                                   std::string("/api/v1/notifications?page=1&limit=5")}) {
    for (const Headers& headers : {Headers{}, Headers{{"Authorization", "Bearer wrong-key"}},
                                   Headers{{"X-API-Key", "wrong-key"}}}) {
      const auto response = gateway.request("GET", target, {}, headers, /*authorize=*/false);
      INFO(target << " -> " << response.body);
      CHECK(response.status == 401);
      CHECK(response.has_header("WWW-Authenticate"));
      CHECK(response.json()["error"]["code"] == "unauthorized");
      CHECK(response.body.find(id) == std::string::npos);
    }
  }
  // X-API-Key is as good as Bearer for reads.
  const auto response = gateway.request("GET", "/api/v1/notifications/" + id, {},
                                        {{"X-API-Key", kOtherApiKey}}, /*authorize=*/false);
  CHECK(response.status == 200);
}

TEST_CASE("gateway read: the list filters by user_id, by status and by both",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto ada = gateway.create_user();
  const auto bob = gateway.create_user();
  const auto ada_1 = gateway.accept_notification(ada);
  const auto ada_2 = gateway.accept_notification(ada, "push");
  const auto ada_3 = gateway.accept_notification(ada);
  const auto bob_1 = gateway.accept_notification(bob);
  mark_delivered(gateway, ada_2);

  {  // no filter: every notification
    const auto all = list(gateway, "");
    CHECK(all["meta"]["total"] == 4);
    CHECK(ids_of(all["data"]) == std::set<std::string>{ada_1, ada_2, ada_3, bob_1});
  }
  {  // by user_id
    const auto of_ada = list(gateway, "?user_id=" + ada);
    CHECK(of_ada["meta"]["total"] == 3);
    CHECK(ids_of(of_ada["data"]) == std::set<std::string>{ada_1, ada_2, ada_3});
    for (const auto& item : of_ada["data"]) {
      CHECK(item["user_id"] == ada);
    }
    const auto of_bob = list(gateway, "?user_id=" + bob);
    CHECK(of_bob["meta"]["total"] == 1);
    CHECK(ids_of(of_bob["data"]) == std::set<std::string>{bob_1});
    // An upper-case UUID is the same user.
    CHECK(ids_of(list(gateway, "?user_id=" + upper_case(ada))["data"]) == ids_of(of_ada["data"]));
    const auto nobody = list(gateway, "?user_id=" + messaging::common::generate_uuid_v4());
    CHECK(nobody["meta"]["total"] == 0);
    CHECK(nobody["data"].empty());
  }
  {  // by status
    const auto delivered = list(gateway, "?status=delivered");
    CHECK(delivered["meta"]["total"] == 1);
    CHECK(ids_of(delivered["data"]) == std::set<std::string>{ada_2});
    CHECK(delivered["data"][0]["status"] == "delivered");
    const auto queued = list(gateway, "?status=queued");
    CHECK(queued["meta"]["total"] == 3);
    CHECK(ids_of(queued["data"]) == std::set<std::string>{ada_1, ada_3, bob_1});
    CHECK(list(gateway, "?status=failed")["meta"]["total"] == 0);
  }
  {  // by user_id and status
    const auto ada_queued = list(gateway, "?user_id=" + ada + "&status=queued");
    CHECK(ada_queued["meta"]["total"] == 2);
    CHECK(ids_of(ada_queued["data"]) == std::set<std::string>{ada_1, ada_3});
    const auto ada_delivered = list(gateway, "?status=delivered&user_id=" + ada);
    CHECK(ids_of(ada_delivered["data"]) == std::set<std::string>{ada_2});
    const auto bob_delivered = list(gateway, "?user_id=" + bob + "&status=delivered");
    CHECK(bob_delivered["meta"]["total"] == 0);
    CHECK(bob_delivered["data"].empty());
    CHECK(bob_delivered["meta"]["total_pages"] == 0);
    CHECK(bob_delivered["meta"]["has_next"] == false);
  }
  {  // empty parameters mean no filter
    CHECK(list(gateway, "?user_id=&status=")["meta"]["total"] == 4);
  }
}

TEST_CASE("gateway read: the list pages newest first with the contract's meta",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  std::set<std::string> all;
  for (int i = 0; i < 5; ++i) {
    all.insert(gateway.accept_notification(user_id));
  }
  const std::string base = "?user_id=" + user_id;

  std::set<std::string> seen;
  std::string previous_created_at = "9999";
  for (int page = 1; page <= 3; ++page) {
    const auto envelope = list(gateway, base + "&limit=2&page=" + std::to_string(page));
    const auto& meta = envelope["meta"];
    INFO("page " << page << ": " << meta.dump());
    CHECK(meta["total"] == 5);
    CHECK(meta["limit"] == 2);
    CHECK(meta["page"] == page);
    CHECK(meta["total_pages"] == 3);
    CHECK(meta["has_next"] == (page < 3));
    CHECK(meta["has_previous"] == (page > 1));
    CHECK(envelope["data"].size() == (page < 3 ? 2U : 1U));
    for (const auto& item : envelope["data"]) {
      const auto created_at = item["created_at"].get<std::string>();
      CHECK(created_at <= previous_created_at);
      previous_created_at = created_at;
      CHECK(seen.insert(item["notification_id"].get<std::string>()).second);
    }
  }
  CHECK(seen == all);

  const auto beyond = list(gateway, base + "&limit=2&page=4");
  CHECK(beyond["data"].empty());
  CHECK(beyond["meta"]["total"] == 5);
  CHECK(beyond["meta"]["page"] == 4);
  CHECK(beyond["meta"]["has_next"] == false);
  CHECK(beyond["meta"]["has_previous"] == true);
  CHECK(list(gateway, base + "&page=1000")["data"].empty());

  const auto defaults = list(gateway, base);
  CHECK(defaults["meta"]["limit"] == 20);
  CHECK(defaults["meta"]["page"] == 1);
  CHECK(defaults["meta"]["total_pages"] == 1);
  CHECK(defaults["meta"]["has_next"] == false);
  CHECK(defaults["meta"]["has_previous"] == false);
  CHECK(ids_of(defaults["data"]) == all);

  for (const char* limit : {"100", "101", "5000", "999999999999"}) {
    const auto capped = list(gateway, base + "&limit=" + limit);
    INFO("limit=" << limit);
    CHECK(capped["meta"]["limit"] == 100);
    CHECK(capped["data"].size() == 5);
  }
}

TEST_CASE("gateway read: invalid list parameters answer 400 naming the field",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto uuid = messaging::common::generate_uuid_v4();
  for (const std::string& query :
       {std::string("?user_id=nope"), "?user_id=" + uuid + "0", "?user_id=" + uuid.substr(1),
        std::string("?user_id=%00")}) {
    CHECK(invalid_fields(gateway, query) == std::set<std::string>{"user_id"});
  }
  for (const char* query : {"?status=sent", "?status=DELIVERED", "?status=pending",
                            "?status=queued,delivered"}) {
    CHECK(invalid_fields(gateway, query) == std::set<std::string>{"status"});
  }
  for (const char* query : {"?page=0", "?page=-1", "?page=abc", "?page=1.5", "?page=", "?page=+2",
                            "?page=99999999999999999999"}) {
    CHECK(invalid_fields(gateway, query) == std::set<std::string>{"page"});
  }
  for (const char* query : {"?limit=0", "?limit=-5", "?limit=ten", "?limit="}) {
    CHECK(invalid_fields(gateway, query) == std::set<std::string>{"limit"});
  }
  CHECK(invalid_fields(gateway, "?user_id=nope&status=sent") ==
        std::set<std::string>{"user_id", "status"});
  CHECK(invalid_fields(gateway, "?page=0&limit=0") == std::set<std::string>{"page", "limit"});
}

}  // namespace
}  // namespace notifs::gateway_test
