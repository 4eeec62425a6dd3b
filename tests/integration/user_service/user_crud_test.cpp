// user_service: create, get, patch and delete a user, with every refusal the contract
// names (400 with one detail per bad field, 404 user_not_found, 409 email_taken).
#include <cctype>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/user_service/user_service_support.hpp"

using nlohmann::json;
using notifs::user_service_test::is_lowercase_uuid;
using notifs::user_service_test::is_millisecond_timestamp;
using notifs::user_service_test::names_field;
using notifs::user_service_test::problem_fields;
using notifs::user_service_test::UserServiceFixture;

namespace {

std::string user_path(const json& user) { return "/api/v1/users/" + user["id"].get<std::string>(); }

}  // namespace

TEST_CASE("user_service: create answers 201 with the user, its defaults and timestamps",
          "[user_service]") {
  UserServiceFixture service;
  const auto response =
      service.post("/api/v1/users", {{"name", "Ada Lovelace"}, {"email", "Ada@Example.com"}});
  REQUIRE(response.status == 201);
  const auto body = response.json();
  CHECK(body["success"] == true);
  CHECK(body["error"].is_null());
  const auto& user = body["data"];
  CHECK(is_lowercase_uuid(user["id"]));
  CHECK(user["name"] == "Ada Lovelace");
  CHECK(user["email"] == "Ada@Example.com");  // stored as given
  CHECK(user["push_tokens"] == json::array());
  CHECK(user["preferences"] == json{{"email", true}, {"push", true}});
  CHECK(user["locale"] == "en");
  CHECK(is_millisecond_timestamp(user["created_at"]));
  CHECK(user["updated_at"] == user["created_at"]);

  const auto fetched = service.get(user_path(user));
  REQUIRE(fetched.status == 200);
  CHECK(fetched.json()["data"] == user);
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "1");
}

TEST_CASE("user_service: create keeps every optional field, collapsing duplicate tokens",
          "[user_service]") {
  UserServiceFixture service;
  const auto user =
      service.create_user("Zé", "ze@example.com.br",
                          {{"locale", "pt-BR"},
                           {"push_tokens", {"tok-b", "tok-a", "tok-b", "tok-c", "tok-a"}},
                           {"preferences", {{"push", false}}}});
  CHECK(user["locale"] == "pt-BR");
  CHECK(user["push_tokens"] == json{"tok-b", "tok-a", "tok-c"});
  CHECK(user["preferences"] == json{{"email", true}, {"push", false}});
  CHECK(service.get(user_path(user)).json()["data"] == user);
}

TEST_CASE("user_service: create names every bad field in one 400", "[user_service]") {
  UserServiceFixture service;

  SECTION("missing name and email") {
    const auto response = service.post("/api/v1/users", json::object());
    REQUIRE(response.status == 400);
    const auto body = response.json();
    CHECK(body["error"]["code"] == "validation_failed");
    CHECK(body["success"] == false);
    CHECK(body["data"].is_null());
    CHECK(problem_fields(body) == std::vector<std::string>{"name", "email"});
  }
  SECTION("wrong JSON types, each named") {
    const auto response =
        service.post("/api/v1/users", {{"name", 42},
                                       {"email", json::array()},
                                       {"locale", nullptr},
                                       {"push_tokens", "tok"},
                                       {"preferences", {{"email", "yes"}, {"push", 1}}}});
    REQUIRE(response.status == 400);
    const auto body = response.json();
    for (const auto* field :
         {"name", "email", "locale", "push_tokens", "preferences.email", "preferences.push"}) {
      INFO(field);
      CHECK(names_field(body, field));
    }
  }
  SECTION("preferences that is not an object") {
    const auto response = service.post(
        "/api/v1/users", {{"name", "A"}, {"email", "a@example.com"}, {"preferences", true}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"preferences"});
  }
  SECTION("unknown fields, top level and in preferences, are refused") {
    const auto response =
        service.post("/api/v1/users",
                     {{"name", "A"}, {"emial", "a@example.com"}, {"preferences", {{"sms", true}}}});
    REQUIRE(response.status == 400);
    const auto body = response.json();
    CHECK(names_field(body, "emial"));
    CHECK(names_field(body, "email"));  // still required
    CHECK(names_field(body, "preferences.sms"));
  }
  SECTION("bad push tokens are named by index") {
    const auto response = service.post(
        "/api/v1/users", {{"name", "A"},
                          {"email", "a@example.com"},
                          {"push_tokens", {"ok", "has space", "", 7, std::string(4097, 'x')}}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) ==
          std::vector<std::string>{"push_tokens[1]", "push_tokens[2]", "push_tokens[3]",
                                   "push_tokens[4]"});
  }
  SECTION("thousands of bad entries: a bounded answer") {
    json body = {{"name", "A"}, {"email", "a@example.com"}};
    body["push_tokens"] = json::array();
    for (int i = 0; i < 1500; ++i) {
      body["push_tokens"].push_back(i);
      body["unknown_" + std::to_string(i)] = true;
    }
    const auto response = service.post("/api/v1/users", body);
    REQUIRE(response.status == 400);
    const auto fields = problem_fields(response.json());
    CHECK(fields.size() == 40);
    CHECK(fields.back() == "push_tokens[19]");
  }
  SECTION("more than 20 distinct tokens") {
    json tokens = json::array();
    for (int i = 0; i < 21; ++i) {
      tokens.push_back("token-" + std::to_string(i));
    }
    const auto response = service.post(
        "/api/v1/users", {{"name", "A"}, {"email", "a@example.com"}, {"push_tokens", tokens}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"push_tokens"});
  }
  SECTION("twenty distinct tokens plus duplicates are fine") {
    json tokens = json::array();
    for (int i = 0; i < 20; ++i) {
      tokens.push_back("token-" + std::to_string(i));
      tokens.push_back("token-" + std::to_string(i));
    }
    const auto user = service.create_user("A", "a@example.com", {{"push_tokens", tokens}});
    CHECK(user["push_tokens"].size() == 20);
  }
  CHECK(service.schema().query_value("SELECT count(*) FROM users") ==
        service.schema().query_value("SELECT count(*) FROM users WHERE email = 'a@example.com'"));
}

TEST_CASE("user_service: names are 1..200 characters counted as code points, not blank",
          "[user_service]") {
  UserServiceFixture service;
  const auto name_status = [&](const std::string& name) {
    return service.post("/api/v1/users", {{"name", name}, {"email", "n@example.com"}}).status;
  };
  std::string emoji200;
  for (int i = 0; i < 200; ++i) {
    emoji200 += "\xF0\x9F\x98\x80";  // U+1F600, 4 bytes
  }
  CHECK(name_status(emoji200 + "a") == 400);
  CHECK(name_status(std::string(201, 'a')) == 400);
  CHECK(name_status("") == 400);
  CHECK(name_status("   \t ") == 400);
  CHECK(name_status("\xE3\x80\x80\xC2\xA0") == 400);  // ideographic space, no-break space
  CHECK(name_status("line\nbreak") == 400);
  CHECK(name_status(emoji200) == 201);  // 800 bytes, 200 characters
  CHECK(service.schema().query_value("SELECT char_length(name) FROM users") == "200");
}

TEST_CASE("user_service: emails and locales are checked", "[user_service]") {
  UserServiceFixture service;
  const auto status = [&](const json& fields) {
    json body = {{"name", "E"}, {"email", "e@example.com"}};
    body.update(fields);
    const auto response = service.post("/api/v1/users", body);
    if (response.status == 400) {
      CHECK(problem_fields(response.json()).size() == 1);
    }
    return response.status;
  };
  for (const std::string& bad : std::vector<std::string>{
           "plain", "two@@example.com", "a@b@example.com", "@example.com", "a@example",
           "a@.example.com", "a@example.com.", "a@example..com", "a b@example.com",
           "a@example.com\t", std::string(65, 'l') + "@example.com",
           "a@" + std::string(250, 'd') + ".com", ""}) {
    INFO(bad);
    CHECK(status({{"email", bad}}) == 400);
  }
  for (const std::string& bad : std::vector<std::string>{"e", "english", "en_US", "en-", "-en",
                                                         "e1", "en--US", "en-abcdefghi", ""}) {
    INFO(bad);
    CHECK(status({{"locale", bad}}) == 400);
  }
  CHECK(status({{"email", std::string(64, 'l') + "@example.com"}, {"locale", "fr"}}) == 201);
  CHECK(status({{"email", "x@example.org"}, {"locale", "zh-Hant-TW"}}) == 201);
  CHECK(status({{"email", "y@example.org"}, {"locale", "EN"}}) == 201);
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "3");
}

TEST_CASE("user_service: a second user with the same email in any case gets 409 email_taken",
          "[user_service]") {
  UserServiceFixture service;
  service.create_user("First", "Grace@Example.com");
  for (const auto* email : {"Grace@Example.com", "grace@example.com", "GRACE@EXAMPLE.COM"}) {
    INFO(email);
    const auto response = service.post("/api/v1/users", {{"name", "Second"}, {"email", email}});
    REQUIRE(response.status == 409);
    CHECK(response.json()["error"]["code"] == "email_taken");
    CHECK(names_field(response.json(), "email"));
  }
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "1");
  CHECK(service.schema().query_value("SELECT email FROM users") == "Grace@Example.com");
}

TEST_CASE("user_service: get refuses ids that are not UUIDs and 404s unknown ones",
          "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Get", "get@example.com");
  const std::string id = user["id"];

  for (const std::string& bad :
       std::vector<std::string>{"123", "not-a-uuid", id + "0", id.substr(1),
                                "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", "%27%3B%20DROP"}) {
    INFO(bad);
    const auto response = service.get("/api/v1/users/" + bad);
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["code"] == "validation_failed");
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"id"});
  }
  const auto unknown = service.get("/api/v1/users/00000000-0000-4000-8000-000000000000");
  REQUIRE(unknown.status == 404);
  CHECK(unknown.json()["error"]["code"] == "user_not_found");

  std::string upper = id;
  for (auto& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  const auto by_upper = service.get("/api/v1/users/" + upper);
  REQUIRE(by_upper.status == 200);
  CHECK(by_upper.json()["data"]["id"] == id);
}

TEST_CASE("user_service: patch changes only the fields given and bumps updated_at",
          "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Old Name", "old@example.com",
                                        {{"push_tokens", {"t1", "t2"}}, {"locale", "en"}});
  const auto path = user_path(user);

  auto response = service.patch(path, {{"name", "New Name"}});
  REQUIRE(response.status == 200);
  auto patched = response.json()["data"];
  CHECK(patched["name"] == "New Name");
  CHECK(patched["email"] == "old@example.com");
  CHECK(patched["push_tokens"] == json{"t1", "t2"});
  CHECK(patched["created_at"] == user["created_at"]);
  CHECK(patched["updated_at"].get<std::string>() > user["updated_at"].get<std::string>());

  // Preferences merge per key; push_tokens replaces the list.
  response = service.patch(path, {{"preferences", {{"push", false}}},
                                  {"push_tokens", {"t3"}},
                                  {"locale", "fr-CA"},
                                  {"email", "New@Example.com"}});
  REQUIRE(response.status == 200);
  const auto second = response.json()["data"];
  CHECK(second["preferences"] == json{{"email", true}, {"push", false}});
  CHECK(second["push_tokens"] == json{"t3"});
  CHECK(second["locale"] == "fr-CA");
  CHECK(second["email"] == "New@Example.com");
  CHECK(second["name"] == "New Name");
  CHECK(second["updated_at"].get<std::string>() > patched["updated_at"].get<std::string>());

  // A user may change the case of its own email.
  response = service.patch(path, {{"email", "new@example.com"}});
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["email"] == "new@example.com");

  response = service.patch(path, {{"push_tokens", json::array()}});
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["push_tokens"] == json::array());

  CHECK(service.get(path).json()["data"] == response.json()["data"]);
}

TEST_CASE("user_service: patch refusals", "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Patch", "patch@example.com");
  service.create_user("Other", "Other@Example.com");
  const auto path = user_path(user);

  SECTION("another user's email in another case: 409") {
    const auto response = service.patch(path, {{"email", "OTHER@example.com"}});
    REQUIRE(response.status == 409);
    CHECK(response.json()["error"]["code"] == "email_taken");
    CHECK(service.get(path).json()["data"]["email"] == "patch@example.com");
  }
  SECTION("unknown user: 404") {
    const auto response =
        service.patch("/api/v1/users/00000000-0000-4000-8000-000000000000", {{"name", "X"}});
    REQUIRE(response.status == 404);
    CHECK(response.json()["error"]["code"] == "user_not_found");
  }
  SECTION("bad id: 400 id") {
    const auto response = service.patch("/api/v1/users/nope", {{"name", "X"}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"id"});
  }
  SECTION("empty patch: 400") {
    const auto response = service.patch(path, json::object());
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["code"] == "validation_failed");
  }
  SECTION("bad values and unknown fields, all named, nothing changed") {
    const auto response = service.patch(path, {{"name", ""},
                                               {"email", "no-at"},
                                               {"locale", 5},
                                               {"id", "00000000-0000-4000-8000-000000000000"},
                                               {"preferences", {{"email", nullptr}}}});
    REQUIRE(response.status == 400);
    const auto body = response.json();
    for (const auto* field : {"name", "email", "locale", "id", "preferences.email"}) {
      INFO(field);
      CHECK(names_field(body, field));
    }
    CHECK(service.get(path).json()["data"] == user);
  }
}

TEST_CASE("user_service: delete answers the id, then the user is gone and its email free",
          "[user_service]") {
  UserServiceFixture service;
  const auto user = service.create_user("Delete", "delete@example.com");
  const auto path = user_path(user);

  const auto response = service.del(path);
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"] == json{{"id", user["id"]}, {"deleted", true}});
  CHECK(service.get(path).status == 404);

  const auto again = service.del(path);
  REQUIRE(again.status == 404);
  CHECK(again.json()["error"]["code"] == "user_not_found");
  CHECK(service.del("/api/v1/users/12345").status == 400);

  service.create_user("Delete Again", "DELETE@example.com");
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "1");
}
