// user_service against input meant to break it: SQL in strings, quotes, unicode from
// every direction, NUL, huge strings, broken JSON, wrong content types. Each is stored
// and returned byte for byte or refused with a 4xx; never a 500.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/user_service/user_service_support.hpp"

using nlohmann::json;
using notifs::user_service_test::names_field;
using notifs::user_service_test::UserServiceFixture;

TEST_CASE("user_service: hostile but valid strings are stored and returned exactly",
          "[user_service]") {
  UserServiceFixture service;
  const std::vector<std::string> names = {
      "'; DROP TABLE users; --",
      R"(Robert"); DELETE FROM users WHERE ("1"="1)",
      R"(quotes ' " ` \ \\ \" '' "" $1 $$ %s {{x}} )",
      "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB emoji \xF0\x9F\x8E\x89",  // 👩‍💻 🎉
      "\xE5\xBC\xA0\xE4\xBC\x9F \xE7\x94\xB0\xE4\xB8\xAD\xE5\xA4\xAA\xE9\x83\x8E",  // CJK
      "\xD9\x85\xD8\xAD\xD9\x85\xD8\xAF \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D",  // Arabic, Hebrew
      "\xE2\x80\xAE"
      "RTL override \xE2\x80\xAC",
      "Zoe\xCC\x88 combining",  // e + U+0308
      "  leading and trailing spaces  ",
  };
  for (std::size_t i = 0; i < names.size(); ++i) {
    INFO(names[i]);
    const std::string email = "h" + std::to_string(i) + R"(+'"x@example.com)";
    const auto created =
        service.create_user(names[i], email, {{"push_tokens", {R"(';"tok)" + std::to_string(i)}}});
    CHECK(created["name"] == names[i]);
    CHECK(created["email"] == email);
    CHECK(created["push_tokens"] == json{R"(';"tok)" + std::to_string(i)});
    const auto fetched = service.get("/api/v1/users/" + created["id"].get<std::string>());
    REQUIRE(fetched.status == 200);
    CHECK(fetched.json()["data"]["name"] == names[i]);
    CHECK(fetched.json()["data"]["email"] == email);
  }
  // The table is still there and holds exactly what was sent.
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == std::to_string(names.size()));
  CHECK(service.schema().query_value(
            "SELECT count(*) FROM users WHERE name = '''; DROP TABLE users; --'") == "1");
}

TEST_CASE("user_service: NUL anywhere is refused with 400", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Nul", "nul@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();
  struct Case {
    std::string target;
    std::string method;
    std::string body;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"/api/v1/users", "POST", R"({"name":"a\u0000b","email":"n1@example.com"})", "name"},
      {"/api/v1/users", "POST", R"({"name":"a","email":"n\u00002@example.com"})", "email"},
      {"/api/v1/users", "POST", R"({"name":"a","email":"n3@example.com","locale":"en\u0000"})",
       "locale"},
      {"/api/v1/users", "POST",
       R"({"name":"a","email":"n4@example.com","push_tokens":["t\u0000"]})", "push_tokens[0]"},
      {"/api/v1/users", "POST", R"({"name":"a","email":"n5@example.com","na\u0000me":"x"})",
       std::string("na\0me", 5)},
      {path, "PATCH", R"({"name":"\u0000"})", "name"},
      {path + "/push_tokens", "POST", R"({"token":"abc\u0000def"})", "token"},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.target << " " << c.body);
    const auto response = service.request(c.method, c.target, c.body);
    REQUIRE(response.status == 400);
    CHECK(names_field(response.json(), c.field));
  }
  CHECK(service.del(path + "/push_tokens/abc%00def").status == 400);
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "1");
  CHECK(service.get(path).json()["data"] == user);
}

TEST_CASE("user_service: huge strings are refused with 400, not stored", "[user_service]") {
  UserServiceFixture service;
  const std::string ten_kb(10 * 1024, 'n');
  auto response = service.post("/api/v1/users", {{"name", ten_kb}, {"email", "big@example.com"}});
  REQUIRE(response.status == 400);
  CHECK(names_field(response.json(), "name"));

  std::string ten_kb_unicode;
  while (ten_kb_unicode.size() < 10 * 1024) {
    ten_kb_unicode += "\xE4\xB8\xAD";
  }
  response =
      service.post("/api/v1/users", {{"name", ten_kb_unicode}, {"email", "big@example.com"}});
  REQUIRE(response.status == 400);

  response = service.post("/api/v1/users", {{"name", "Big"}, {"email", ten_kb + "@example.com"}});
  REQUIRE(response.status == 400);
  CHECK(names_field(response.json(), "email"));

  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "0");
}

TEST_CASE("user_service: malformed bodies and wrong content types", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Body", "body@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();

  for (const std::string& body :
       std::vector<std::string>{std::string(R"({"name": "a", "email": )"), std::string("{'a':1}"),
                                std::string("nul"), std::string("{\"name\":\"\xFF\xFE\"}")}) {
    INFO(body);
    const auto response = service.request("POST", "/api/v1/users", body);
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["code"] == "invalid_json");
  }
  for (const std::string& body : std::vector<std::string>{"[]", "\"string\"", "42", "null"}) {
    INFO(body);
    const auto response = service.request("POST", "/api/v1/users", body);
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["code"] == "validation_failed");
  }
  auto response = service.request("POST", "/api/v1/users", R"({"name":"a","email":"a@b.co"})",
                                  {{"Content-Type", "text/plain"}});
  CHECK(response.status == 415);
  response = service.request("PATCH", path, "name=x",
                             {{"Content-Type", "application/x-www-form-urlencoded"}});
  CHECK(response.status == 415);
  // No body at all.
  response = service.request("POST", "/api/v1/users");
  CHECK(response.status == 400);
  response = service.request("PATCH", path);
  CHECK(response.status == 400);

  // Wrong methods and unknown paths stay in the contract too.
  response = service.request("PUT", "/api/v1/users");
  CHECK(response.status == 405);
  response = service.get("/api/v1/userz");
  CHECK(response.status == 404);
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "1");
}
