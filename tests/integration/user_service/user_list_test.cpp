// user_service: GET /api/v1/users pages in a stable order with the contract's meta, and
// its edges: an empty table, a page past the end, limit 0, a limit over the cap, junk.
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/user_service/user_service_support.hpp"

using nlohmann::json;
using notifs::user_service_test::problem_fields;
using notifs::user_service_test::UserServiceFixture;

TEST_CASE("user_service: list of an empty table", "[user_service]") {
  UserServiceFixture service;
  const auto response = service.get("/api/v1/users");
  REQUIRE(response.status == 200);
  const auto body = response.json();
  CHECK(body["data"] == json::array());
  CHECK(body["meta"] == json{{"total", 0},
                             {"limit", 20},
                             {"page", 1},
                             {"total_pages", 0},
                             {"has_next", false},
                             {"has_previous", false}});
}

TEST_CASE("user_service: list pages in creation order with correct meta", "[user_service]") {
  UserServiceFixture service;
  std::vector<std::string> created;
  for (int i = 0; i < 5; ++i) {
    created.push_back(service.create_user("User " + std::to_string(i),
                                          "user" + std::to_string(i) + "@example.com")["id"]);
  }

  std::vector<std::string> seen;
  for (int page = 1; page <= 3; ++page) {
    const auto response = service.get("/api/v1/users?page=" + std::to_string(page) + "&limit=2");
    REQUIRE(response.status == 200);
    const auto body = response.json();
    const auto& meta = body["meta"];
    CHECK(meta["total"] == 5);
    CHECK(meta["limit"] == 2);
    CHECK(meta["page"] == page);
    CHECK(meta["total_pages"] == 3);
    CHECK(meta["has_next"] == (page < 3));
    CHECK(meta["has_previous"] == (page > 1));
    CHECK(body["data"].size() == (page < 3 ? 2U : 1U));
    for (const auto& user : body["data"]) {
      seen.push_back(user["id"]);
      CHECK(user.contains("push_tokens"));
      CHECK(user.contains("preferences"));
    }
  }
  // Every user once, in the order they were created.
  CHECK(seen == created);

  SECTION("a page past the end is empty, with the real totals") {
    const auto response = service.get("/api/v1/users?page=4&limit=2");
    REQUIRE(response.status == 200);
    const auto body = response.json();
    CHECK(body["data"] == json::array());
    CHECK(body["meta"]["total"] == 5);
    CHECK(body["meta"]["total_pages"] == 3);
    CHECK(body["meta"]["page"] == 4);
    CHECK(body["meta"]["has_next"] == false);
    CHECK(body["meta"]["has_previous"] == true);

    const auto far = service.get("/api/v1/users?page=1000000&limit=100");
    REQUIRE(far.status == 200);
    CHECK(far.json()["data"] == json::array());
  }
  SECTION("limit over the cap is lowered to 100, shown in meta") {
    const auto response = service.get("/api/v1/users?limit=1000");
    REQUIRE(response.status == 200);
    CHECK(response.json()["meta"]["limit"] == 100);
    CHECK(response.json()["data"].size() == 5);
  }
  SECTION("defaults: page 1, limit 20") {
    const auto response = service.get("/api/v1/users");
    REQUIRE(response.status == 200);
    CHECK(response.json()["meta"]["limit"] == 20);
    CHECK(response.json()["meta"]["page"] == 1);
    CHECK(response.json()["data"].size() == 5);
  }
  SECTION("a deleted user leaves the list and the total") {
    REQUIRE(service.del("/api/v1/users/" + created[2]).status == 200);
    const auto body = service.get("/api/v1/users").json();
    CHECK(body["meta"]["total"] == 4);
    std::set<std::string> ids;
    for (const auto& user : body["data"]) {
      ids.insert(user["id"].get<std::string>());
    }
    CHECK(ids.count(created[2]) == 0);
    CHECK(ids.size() == 4);
  }
}

TEST_CASE("user_service: list refuses malformed page and limit", "[user_service]") {
  UserServiceFixture service;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"limit=0", "limit"},    {"limit=-1", "limit"}, {"limit=abc", "limit"},
      {"page=abc", "page"},    {"page=0", "page"},    {"page=-3", "page"},
      {"page=1.5", "page"},    {"page=", "page"},     {"page=99999999999999999999", "page"},
      {"limit=10e3", "limit"},
  };
  for (const auto& [query, field] : cases) {
    INFO(query);
    const auto response = service.get("/api/v1/users?" + query);
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["code"] == "validation_failed");
    CHECK(problem_fields(response.json()) == std::vector<std::string>{field});
  }
}
