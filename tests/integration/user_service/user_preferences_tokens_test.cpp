// user_service: preferences (get, full replace) and push tokens (add idempotently,
// remove), with their 400/404/409 answers.
#include <string>

#include <catch2/catch.hpp>

#include "integration/user_service/user_service_support.hpp"

using nlohmann::json;
using notifs::user_service_test::names_field;
using notifs::user_service_test::problem_fields;
using notifs::user_service_test::UserServiceFixture;

namespace {

const std::string kUnknownUser = "/api/v1/users/00000000-0000-4000-8000-000000000000";

}  // namespace

TEST_CASE("user_service: preferences get and put", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Prefs", "prefs@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();

  auto response = service.get(path + "/preferences");
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"] == json{{"email", true}, {"push", true}});

  response = service.put(path + "/preferences", {{"email", false}, {"push", true}});
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"] == json{{"email", false}, {"push", true}});
  CHECK(service.get(path + "/preferences").json()["data"] ==
        json{{"email", false}, {"push", true}});
  const auto after = service.get(path).json()["data"];
  CHECK(after["preferences"] == json{{"email", false}, {"push", true}});
  CHECK(after["updated_at"].get<std::string>() > user["updated_at"].get<std::string>());

  SECTION("put is a full replacement: both booleans required") {
    response = service.put(path + "/preferences", {{"push", false}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"email"});
  }
  SECTION("put with wrong types and unknown keys") {
    response = service.put(path + "/preferences", {{"email", "false"}, {"push", 0}, {"sms", true}});
    REQUIRE(response.status == 400);
    const auto body = response.json();
    CHECK(names_field(body, "email"));
    CHECK(names_field(body, "push"));
    CHECK(names_field(body, "sms"));
  }
  SECTION("put with a body that is not an object") {
    response = service.request("PUT", path + "/preferences", "[true, false]");
    REQUIRE(response.status == 400);
  }
  SECTION("unknown user and bad id") {
    CHECK(service.get(kUnknownUser + "/preferences").json()["error"]["code"] == "user_not_found");
    response = service.put(kUnknownUser + "/preferences", {{"email", true}, {"push", true}});
    REQUIRE(response.status == 404);
    CHECK(response.json()["error"]["code"] == "user_not_found");
    CHECK(service.get("/api/v1/users/x/preferences").status == 400);
    CHECK(service.put("/api/v1/users/x/preferences", {{"email", true}, {"push", true}}).status ==
          400);
  }
  // Nothing a refused request sent reached the row.
  CHECK(service.get(path + "/preferences").json()["data"] ==
        json{{"email", false}, {"push", true}});
}

TEST_CASE("user_service: push tokens are added once and removed", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Tokens", "tokens@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();
  const std::string id = user["id"];

  auto response = service.post(path + "/push_tokens", {{"token", "fcm:abc"}});
  REQUIRE(response.status == 201);
  CHECK(response.json()["data"] == json{{"id", id}, {"push_tokens", {"fcm:abc"}}});
  const auto after_add = service.get(path).json()["data"];
  CHECK(after_add["updated_at"].get<std::string>() > user["updated_at"].get<std::string>());

  // The same token again: 200, no duplicate, no write.
  response = service.post(path + "/push_tokens", {{"token", "fcm:abc"}});
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["push_tokens"] == json{"fcm:abc"});
  CHECK(service.get(path).json()["data"]["updated_at"] == after_add["updated_at"]);

  // Tokens may hold characters that need escaping in SQL arrays and in URLs.
  const std::string odd = R"(a"b\c{d},e/f'NULL)";
  response = service.post(path + "/push_tokens", {{"token", odd}});
  REQUIRE(response.status == 201);
  CHECK(response.json()["data"]["push_tokens"] == json{"fcm:abc", odd});
  CHECK(service.get(path).json()["data"]["push_tokens"] == json{"fcm:abc", odd});

  response = service.del(path + "/push_tokens/fcm:abc");
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["push_tokens"] == json{odd});

  response = service.del(path + "/push_tokens/a%22b%5Cc%7Bd%7D%2Ce%2Ff'NULL");
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["push_tokens"] == json::array());

  response = service.del(path + "/push_tokens/fcm:abc");
  REQUIRE(response.status == 404);
  CHECK(response.json()["error"]["code"] == "push_token_not_found");
}

TEST_CASE("user_service: push token refusals", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Tokens", "tokens@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();

  SECTION("bad bodies") {
    for (const json& body :
         {json::object(), json{{"token", ""}}, json{{"token", "a b"}}, json{{"token", 12}},
          json{{"token", std::string(4097, 't')}}, json{{"token", "ok"}, {"tokne", "x"}}}) {
      INFO(body.dump().substr(0, 80));
      const auto response = service.post(path + "/push_tokens", body);
      REQUIRE(response.status == 400);
      CHECK(response.json()["error"]["code"] == "validation_failed");
    }
    const auto longest = service.post(path + "/push_tokens", {{"token", std::string(4096, 't')}});
    CHECK(longest.status == 201);
  }
  SECTION("unknown user") {
    auto response = service.post(kUnknownUser + "/push_tokens", {{"token", "t"}});
    REQUIRE(response.status == 404);
    CHECK(response.json()["error"]["code"] == "user_not_found");
    response = service.del(kUnknownUser + "/push_tokens/t");
    REQUIRE(response.status == 404);
    CHECK(response.json()["error"]["code"] == "user_not_found");
    CHECK(service.post("/api/v1/users/abc/push_tokens", {{"token", "t"}}).status == 400);
    CHECK(service.del("/api/v1/users/abc/push_tokens/t").status == 400);
  }
  SECTION("a 21st token: 409, the list unchanged") {
    for (int i = 0; i < 20; ++i) {
      REQUIRE(service.post(path + "/push_tokens", {{"token", "t" + std::to_string(i)}}).status ==
              201);
    }
    // An existing one is still fine at the limit.
    CHECK(service.post(path + "/push_tokens", {{"token", "t7"}}).status == 200);
    const auto response = service.post(path + "/push_tokens", {{"token", "t20"}});
    REQUIRE(response.status == 409);
    CHECK(response.json()["error"]["code"] == "too_many_push_tokens");
    CHECK(service.get(path).json()["data"]["push_tokens"].size() == 20);
  }
  SECTION("a token in the path that no token could be") {
    const auto response = service.del(path + "/push_tokens/has%20space");
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"token"});
  }
}
