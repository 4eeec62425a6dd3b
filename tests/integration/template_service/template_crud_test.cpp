// template_service: create, add versions, get (newest, named, with locale fallback), list
// and list versions, with every refusal the contract names.
#include <string>
#include <vector>

#include "integration/template_service/template_service_support.hpp"

using nlohmann::json;
using notifs::template_service_test::email_template;
using notifs::template_service_test::error_code;
using notifs::template_service_test::is_millisecond_timestamp;
using notifs::template_service_test::problem_fields;
using notifs::template_service_test::push_template;
using notifs::template_service_test::TemplateServiceFixture;

TEST_CASE("template_service: create answers 201 with version 1, get returns it",
          "[template_service]") {
  TemplateServiceFixture service;
  const auto created = service.create(email_template("welcome_email"));
  CHECK(created["code"] == "welcome_email");
  CHECK(created["channel"] == "email");
  CHECK(created["locale"] == "en");
  CHECK(created["requested_locale"] == "en");
  CHECK(created["version"] == 1);
  CHECK(created["subject"] == "Welcome {{name}}");
  CHECK(created["body"] == "Hello {{name}}, start at {{link}}");
  CHECK(created["html_body"] == "<p>Hello {{name}}, <a href=\"{{{link}}}\">start</a></p>");
  CHECK(created["variables"] == json{"link", "name"});
  CHECK(is_millisecond_timestamp(created["created_at"]));
  CHECK_FALSE(created.contains("title"));

  const auto fetched = service.get("/api/v1/templates/welcome_email");
  REQUIRE(fetched.status == 200);
  const auto body = fetched.json();
  CHECK(body["success"] == true);
  CHECK(body["data"] == created);
  CHECK(service.get("/api/v1/templates/welcome_email?version=1&locale=en").json()["data"] ==
        created);
  CHECK(service.schema().query_value("SELECT count(*) FROM template_versions") == "1");
}

TEST_CASE("template_service: push templates have title and body, html_body may be absent",
          "[template_service]") {
  TemplateServiceFixture service;
  const auto push = service.create(push_template("welcome_push", "pt-br"));
  CHECK(push["channel"] == "push");
  CHECK(push["locale"] == "pt-BR");  // stored in canonical case
  CHECK(push["title"] == "Hi {{name}}");
  CHECK(push["body"] == "You have {{count}} new messages");
  CHECK(push["variables"] == json{"count", "name"});
  CHECK_FALSE(push.contains("subject"));
  CHECK_FALSE(push.contains("html_body"));

  auto plain = email_template("plain");
  plain.erase("html_body");
  CHECK(service.create(plain)["html_body"].is_null());
}

TEST_CASE("template_service: create names every bad field in one 400", "[template_service]") {
  TemplateServiceFixture service;

  SECTION("missing and malformed fields") {
    const auto response = service.post(
        "/api/v1/templates", {{"code", "Not Valid"}, {"channel", "fax"}, {"subjct", "typo"}});
    REQUIRE(response.status == 400);
    const auto body = response.json();
    CHECK(body["error"]["code"] == "validation_failed");
    CHECK(body["success"] == false);
    CHECK(body["data"].is_null());
    CHECK(problem_fields(body) == std::vector<std::string>{"subjct", "code", "channel"});
  }
  SECTION("a text that is not Mustache names the field and the parser's error") {
    auto bad = email_template("bad");
    bad["body"] = "Hello {{name";
    bad["html_body"] = "{{#items}}<li>{{.}}</li>";
    const auto response = service.post("/api/v1/templates", bad);
    REQUIRE(response.status == 400);
    const auto details = response.json()["error"]["details"];
    REQUIRE(details.size() == 2);
    CHECK(details[0]["field"] == "body");
    CHECK_THAT(details[0]["problem"].get<std::string>(),
               Catch::Contains("not a valid Mustache template: Unclosed tag at 6"));
    CHECK(details[1]["field"] == "html_body");
    CHECK_THAT(details[1]["problem"].get<std::string>(),
               Catch::Contains("Unclosed section \"items\""));
  }
  SECTION("partials are refused") {
    auto bad = email_template("bad");
    bad["body"] = "{{> footer}}";
    const auto response = service.post("/api/v1/templates", bad);
    REQUIRE(response.status == 400);
    CHECK(response.json()["error"]["details"][0] ==
          json{{"field", "body"},
               {"problem", "uses the partial {{> footer}}; partials are not supported"}});
  }
  SECTION("fields of the other channel") {
    auto bad = push_template("bad");
    bad["subject"] = "no";
    const auto response = service.post("/api/v1/templates", bad);
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"subject"});
  }
  SECTION("a body that is not JSON, or not an object") {
    CHECK(service.request("POST", "/api/v1/templates", "{\"code\":").status == 400);
    CHECK(error_code(service.request("POST", "/api/v1/templates", "{\"code\":")) == "invalid_json");
    CHECK(service.request("POST", "/api/v1/templates", "[1,2]").status == 400);
  }
  CHECK(service.schema().query_value("SELECT count(*) FROM templates") == "0");
}

TEST_CASE("template_service: a code has each locale once and one channel (409)",
          "[template_service]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));

  const auto again = service.post("/api/v1/templates", email_template("welcome"));
  REQUIRE(again.status == 409);
  CHECK(error_code(again) == "template_exists");
  CHECK_THAT(again.json()["message"].get<std::string>(), Catch::Contains("PUT"));

  auto as_push = push_template("welcome", "fr");
  const auto mismatch = service.post("/api/v1/templates", as_push);
  REQUIRE(mismatch.status == 409);
  CHECK(error_code(mismatch) == "channel_mismatch");

  // Another locale of the same code and channel is a new version 1.
  const auto french = service.create(email_template("welcome", "fr"));
  CHECK(french["locale"] == "fr");
  CHECK(french["version"] == 1);
  CHECK(service.schema().query_value("SELECT count(*) FROM template_versions") == "2");
  CHECK(service.schema().query_value("SELECT count(*) FROM templates") == "1");
}

TEST_CASE("template_service: PUT adds numbered versions, old ones never change",
          "[template_service]") {
  TemplateServiceFixture service;
  const auto first = service.create(email_template("news"));

  auto second_body = email_template("news");
  second_body.erase("code");
  second_body["subject"] = "Second {{name}}";
  const auto second = service.add_version("news", second_body);
  CHECK(second["version"] == 2);
  CHECK(second["subject"] == "Second {{name}}");
  CHECK(second["locale"] == "en");

  const auto third = service.add_version(
      "news", {{"subject", "Third"}, {"body", "B {{x}}"}, {"channel", "email"}});
  CHECK(third["version"] == 3);
  CHECK(third["html_body"].is_null());
  CHECK(third["variables"] == json{"x"});

  CHECK(service.get("/api/v1/templates/news").json()["data"] == third);
  CHECK(service.get("/api/v1/templates/news?version=1").json()["data"] == first);
  CHECK(service.get("/api/v1/templates/news?version=2").json()["data"] == second);

  // The database refuses to change a version, whoever asks.
  CHECK_THROWS(service.schema().exec("UPDATE template_versions SET body = 'x' WHERE version = 1"));
  CHECK(service.get("/api/v1/templates/news?version=1").json()["data"] == first);

  SECTION("unknown code") {
    const auto response = service.put("/api/v1/templates/nope", {{"subject", "s"}, {"body", "b"}});
    REQUIRE(response.status == 404);
    CHECK(error_code(response) == "template_not_found");
  }
  SECTION("a locale without version 1 is created with POST") {
    const auto response =
        service.put("/api/v1/templates/news", {{"locale", "fr"}, {"subject", "s"}, {"body", "b"}});
    REQUIRE(response.status == 404);
    CHECK(error_code(response) == "template_not_found");
    CHECK_THAT(response.json()["message"].get<std::string>(),
               Catch::Contains("POST /api/v1/templates"));
  }
  SECTION("the other channel's fields, or the other channel named") {
    const auto fields = service.put("/api/v1/templates/news", {{"title", "t"}, {"body", "b"}});
    REQUIRE(fields.status == 400);
    CHECK(problem_fields(fields.json()) == std::vector<std::string>{"subject", "title"});
    const auto named =
        service.put("/api/v1/templates/news", {{"channel", "push"}, {"title", "t"}, {"body", "b"}});
    REQUIRE(named.status == 409);
    CHECK(error_code(named) == "channel_mismatch");
  }
  SECTION("a code in the body that is not the path's") {
    const auto response =
        service.put("/api/v1/templates/news", {{"code", "other"}, {"subject", "s"}, {"body", "b"}});
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"code"});
  }
  SECTION("a path that cannot be a code") {
    CHECK(service.put("/api/v1/templates/NEWS", {{"subject", "s"}, {"body", "b"}}).status == 400);
  }
  CHECK(service.schema().query_value("SELECT max(version) FROM template_versions") == "3");
}

TEST_CASE("template_service: get falls back to en when the locale has no version",
          "[template_service]") {
  TemplateServiceFixture service;
  service.create(email_template("greet"));
  auto french = email_template("greet", "fr");
  french["subject"] = "Bienvenue {{name}}";
  service.create(french);

  const auto fr = service.get("/api/v1/templates/greet?locale=fr").json()["data"];
  CHECK(fr["locale"] == "fr");
  CHECK(fr["requested_locale"] == "fr");
  CHECK(fr["subject"] == "Bienvenue {{name}}");

  const auto de = service.get("/api/v1/templates/greet?locale=de-DE").json()["data"];
  CHECK(de["locale"] == "en");
  CHECK(de["requested_locale"] == "de-DE");
  CHECK(de["subject"] == "Welcome {{name}}");

  // An unusual but well-formed tag also falls back rather than failing.
  CHECK(service.get("/api/v1/templates/greet?locale=en-US-x-test").json()["data"]["locale"] ==
        "en");

  SECTION("neither the locale nor en") {
    service.create(push_template("only_german", "de"));
    const auto response = service.get("/api/v1/templates/only_german?locale=fr");
    REQUIRE(response.status == 404);
    CHECK(error_code(response) == "template_not_found");
    CHECK(service.get("/api/v1/templates/only_german?locale=de").status == 200);
  }
  SECTION("a named version the locale lacks is not looked for in en") {
    service.add_version("greet", {{"subject", "v2"}, {"body", "b"}});
    const auto response = service.get("/api/v1/templates/greet?locale=fr&version=2");
    REQUIRE(response.status == 404);
    CHECK(error_code(response) == "version_not_found");
    CHECK(service.get("/api/v1/templates/greet?locale=de&version=2").json()["data"]["subject"] ==
          "v2");
  }
  SECTION("unknown code, unknown version, bad parameters") {
    CHECK(error_code(service.get("/api/v1/templates/missing")) == "template_not_found");
    CHECK(service.get("/api/v1/templates/missing").status == 404);
    CHECK(error_code(service.get("/api/v1/templates/greet?version=9")) == "version_not_found");
    CHECK(service.get("/api/v1/templates/greet?version=0").status == 400);
    CHECK(service.get("/api/v1/templates/greet?version=abc").status == 400);
    CHECK(service.get("/api/v1/templates/greet?locale=").status == 400);
    CHECK(service.get("/api/v1/templates/greet?locale=%27%3B%20DROP").status == 400);
  }
}

TEST_CASE("template_service: list pages codes with their locales and newest versions",
          "[template_service]") {
  TemplateServiceFixture service;
  service.create(email_template("a_mail"));
  service.create(email_template("a_mail", "fr"));
  service.add_version("a_mail", {{"locale", "fr"}, {"subject", "s"}, {"body", "b"}});
  service.create(push_template("b_push"));
  service.create(email_template("c_mail"));

  const auto first = service.get("/api/v1/templates?limit=2");
  REQUIRE(first.status == 200);
  const auto body = first.json();
  REQUIRE(body["data"].size() == 2);
  const auto& a_mail = body["data"][0];
  CHECK(a_mail["code"] == "a_mail");
  CHECK(a_mail["channel"] == "email");
  CHECK(a_mail["locales"] ==
        json{{{"locale", "en"}, {"latest_version", 1}}, {{"locale", "fr"}, {"latest_version", 2}}});
  CHECK(is_millisecond_timestamp(a_mail["created_at"]));
  CHECK(is_millisecond_timestamp(a_mail["updated_at"]));
  CHECK(body["data"][1]["code"] == "b_push");
  CHECK(body["meta"] == json{{"total", 3},
                             {"limit", 2},
                             {"page", 1},
                             {"total_pages", 2},
                             {"has_next", true},
                             {"has_previous", false}});

  const auto second = service.get("/api/v1/templates?limit=2&page=2").json();
  REQUIRE(second["data"].size() == 1);
  CHECK(second["data"][0]["code"] == "c_mail");
  CHECK(second["meta"]["has_next"] == false);
  CHECK(second["meta"]["has_previous"] == true);

  const auto past_end = service.get("/api/v1/templates?limit=2&page=7").json();
  CHECK(past_end["data"] == json::array());
  CHECK(past_end["meta"]["total"] == 3);
  CHECK(past_end["meta"]["page"] == 7);

  const auto push_only = service.get("/api/v1/templates?channel=push").json();
  REQUIRE(push_only["data"].size() == 1);
  CHECK(push_only["data"][0]["code"] == "b_push");
  CHECK(push_only["meta"]["total"] == 1);
  CHECK(push_only["meta"]["limit"] == 20);

  CHECK(service.get("/api/v1/templates?limit=1000").json()["meta"]["limit"] == 100);
  CHECK(service.get("/api/v1/templates?limit=0").status == 400);
  CHECK(service.get("/api/v1/templates?page=0").status == 400);
  CHECK(service.get("/api/v1/templates?limit=x").status == 400);
  const auto bad_channel = service.get("/api/v1/templates?channel=sms");
  REQUIRE(bad_channel.status == 400);
  CHECK(problem_fields(bad_channel.json()) == std::vector<std::string>{"channel"});
}

TEST_CASE("template_service: an empty list is an empty page", "[template_service]") {
  TemplateServiceFixture service;
  const auto body = service.get("/api/v1/templates").json();
  CHECK(body["data"] == json::array());
  CHECK(body["meta"] == json{{"total", 0},
                             {"limit", 20},
                             {"page", 1},
                             {"total_pages", 0},
                             {"has_next", false},
                             {"has_previous", false}});
}

TEST_CASE("template_service: versions are listed by locale, newest first", "[template_service]") {
  TemplateServiceFixture service;
  service.create(email_template("v"));
  service.create(email_template("v", "fr"));
  service.add_version("v", {{"subject", "s2"}, {"body", "b"}});
  service.add_version("v", {{"subject", "s3"}, {"body", "b"}});

  const auto all = service.get("/api/v1/templates/v/versions").json();
  std::vector<std::pair<std::string, int>> seen;
  for (const auto& item : all["data"]) {
    CHECK(is_millisecond_timestamp(item["created_at"]));
    seen.emplace_back(item["locale"].get<std::string>(), item["version"].get<int>());
  }
  CHECK(seen ==
        std::vector<std::pair<std::string, int>>{{"en", 3}, {"en", 2}, {"en", 1}, {"fr", 1}});
  CHECK(all["meta"]["total"] == 4);

  const auto french = service.get("/api/v1/templates/v/versions?locale=fr").json();
  CHECK(french["data"].size() == 1);
  CHECK(french["meta"]["total"] == 1);

  const auto paged = service.get("/api/v1/templates/v/versions?limit=3&page=2").json();
  REQUIRE(paged["data"].size() == 1);
  CHECK(paged["data"][0]["locale"] == "fr");
  CHECK(service.get("/api/v1/templates/v/versions?page=5").json()["data"] == json::array());
  CHECK(service.get("/api/v1/templates/v/versions?limit=0").status == 400);

  const auto unknown = service.get("/api/v1/templates/unknown/versions");
  REQUIRE(unknown.status == 404);
  CHECK(error_code(unknown) == "template_not_found");
}
