// template_service: rendering over HTTP (escaping per field, every missing variable in one
// 422, versions and locale fallback) and the render cache (a new version is served at once
// on this replica, within the TTL on another; a cache hit does not touch PostgreSQL).
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "integration/template_service/template_service_support.hpp"

using nlohmann::json;
using notifs::template_service_test::email_template;
using notifs::template_service_test::error_code;
using notifs::template_service_test::FixtureOptions;
using notifs::template_service_test::problem_fields;
using notifs::template_service_test::push_template;
using notifs::template_service_test::TemplateServiceFixture;
using namespace std::chrono_literals;

TEST_CASE("template_service: render escapes html_body only", "[template_service]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  const json variables = {{"name", "<Ada & \"Bob\">"}, {"link", "https://x.test/?a=1&b=2"}};

  const auto response = service.render("welcome", {{"variables", variables}});
  INFO(response.body);
  REQUIRE(response.status == 200);
  const auto data = response.json()["data"];
  CHECK(data["code"] == "welcome");
  CHECK(data["channel"] == "email");
  CHECK(data["locale"] == "en");
  CHECK(data["requested_locale"] == "en");
  CHECK(data["version"] == 1);
  CHECK(data["rendered"] ==
        json{{"subject", "Welcome <Ada & \"Bob\">"},
             {"body", "Hello <Ada & \"Bob\">, start at https://x.test/?a=1&b=2"},
             {"html_body",
              "<p>Hello &lt;Ada &amp; &quot;Bob&quot;&gt;, "
              "<a href=\"https://x.test/?a=1&b=2\">start</a></p>"}});
}

TEST_CASE("template_service: render a push template, sections and lists", "[template_service]") {
  TemplateServiceFixture service;
  service.create(
      {{"code", "digest"},
       {"channel", "push"},
       {"title", "{{#urgent}}URGENT: {{/urgent}}{{count}} updates"},
       {"body", "{{#items}}- {{title}} by {{author.name}}\n{{/items}}{{^items}}none{{/items}}"}});
  const auto response =
      service.render("digest", {{"variables",
                                 {{"urgent", true},
                                  {"count", 2},
                                  {"items",
                                   {{{"title", "A"}, {"author", {{"name", "Ada"}}}},
                                    {{"title", "B"}, {"author", {{"name", "Bob"}}}}}}}}});
  INFO(response.body);
  REQUIRE(response.status == 200);
  CHECK(response.json()["data"]["rendered"] ==
        json{{"title", "URGENT: 2 updates"}, {"body", "- A by Ada\n- B by Bob\n"}});

  const auto quiet = service.render(
      "digest", {{"variables", {{"urgent", false}, {"count", 0}, {"items", json::array()}}}});
  REQUIRE(quiet.status == 200);
  CHECK(quiet.json()["data"]["rendered"] == json{{"title", "0 updates"}, {"body", "none"}});
}

TEST_CASE("template_service: every missing variable is named in one 422", "[template_service]") {
  TemplateServiceFixture service;
  auto body = email_template("welcome");
  body["subject"] = "{{greeting}} {{name}}";
  body["html_body"] = "<p>{{footer.note}}</p>{{#vip}}{{perk}}{{/vip}}";
  service.create(body);

  const auto response = service.render("welcome", {{"variables", {{"name", "Ada"}}}});
  REQUIRE(response.status == 422);
  const auto answer = response.json();
  CHECK(answer["error"]["code"] == "missing_variables");
  CHECK(answer["error"]["details"] ==
        json{{{"field", "footer.note"}, {"problem", "is required by the template"}},
             {{"field", "greeting"}, {"problem", "is required by the template"}},
             {{"field", "link"}, {"problem", "is required by the template"}}});
  CHECK_THAT(answer["message"].get<std::string>(), Catch::Contains("footer.note, greeting, link"));

  // No variables at all: every one, `vip` not among them (a missing section is false).
  const auto none = service.render("welcome", json::object());
  REQUIRE(none.status == 422);
  CHECK(problem_fields(none.json()) ==
        std::vector<std::string>{"footer.note", "greeting", "link", "name"});

  // null is a value: present, empty.
  const auto nulls = service.render("welcome", {{"variables",
                                                 {{"name", nullptr},
                                                  {"greeting", "Hi"},
                                                  {"link", "l"},
                                                  {"footer", {{"note", nullptr}}},
                                                  {"vip", true},
                                                  {"perk", 5}}}});
  REQUIRE(nulls.status == 200);
  CHECK(nulls.json()["data"]["rendered"]["subject"] == "Hi ");
  CHECK(nulls.json()["data"]["rendered"]["html_body"] == "<p></p>5");
}

TEST_CASE("template_service: render picks versions and falls back to en", "[template_service]") {
  TemplateServiceFixture service;
  service.create(push_template("p"));
  auto french = push_template("p", "fr");
  french["title"] = "Salut {{name}}";
  service.create(french);
  service.add_version("p", {{"title", "Hello v2 {{name}}"}, {"body", "b"}});
  const json variables = {{"name", "Ada"}, {"count", 1}};

  auto rendered = [&](const json& request) {
    const auto response = service.render("p", request);
    INFO(response.body);
    REQUIRE(response.status == 200);
    return response.json()["data"];
  };
  const auto newest = rendered({{"variables", variables}});
  CHECK(newest["version"] == 2);
  CHECK(newest["rendered"]["title"] == "Hello v2 Ada");
  CHECK(rendered({{"variables", variables}, {"version", 1}})["rendered"]["title"] == "Hi Ada");
  const auto fr = rendered({{"variables", variables}, {"locale", "fr"}});
  CHECK(fr["locale"] == "fr");
  CHECK(fr["rendered"]["title"] == "Salut Ada");
  const auto fallback = rendered({{"variables", variables}, {"locale", "ja"}});
  CHECK(fallback["locale"] == "en");
  CHECK(fallback["requested_locale"] == "ja");
  CHECK(fallback["version"] == 2);

  CHECK(error_code(service.render("p", {{"version", 3}})) == "version_not_found");
  CHECK(error_code(service.render("missing", {{"variables", variables}})) == "template_not_found");
  CHECK(service.render("missing", {{"variables", variables}}).status == 404);
  const auto bad = service.render("p", {{"variables", json::array()}, {"version", "2"}});
  REQUIRE(bad.status == 400);
  CHECK(problem_fields(bad.json()) == std::vector<std::string>{"version", "variables"});
  CHECK(service.request("POST", "/api/v1/templates/p/render", "not json").status == 400);
  // No body at all: the defaults (en, newest, no variables).
  CHECK(error_code(service.request("POST", "/api/v1/templates/p/render")) == "missing_variables");
}

TEST_CASE("template_service: after a PUT the next render uses the new version",
          "[template_service]") {
  // A long TTL: only the local invalidation can make the new version appear.
  TemplateServiceFixture service(FixtureOptions{{1000, std::chrono::minutes(10)}, {}});
  service.create(push_template("news"));
  const json request = {{"variables", {{"name", "Ada"}, {"count", 3}}}};
  for (int i = 0; i < 3; ++i) {  // warm the cache
    CHECK(service.render("news", request).json()["data"]["rendered"]["title"] == "Hi Ada");
  }
  service.add_version("news", {{"title", "New {{name}}"}, {"body", "b"}});
  const auto after = service.render("news", request).json()["data"];
  CHECK(after["version"] == 2);
  CHECK(after["rendered"]["title"] == "New Ada");
  CHECK(service.get("/api/v1/templates/news").json()["data"]["version"] == 2);

  // A new locale is picked up at once too (it was falling back to en).
  CHECK(service.render("news", {{"locale", "fr"}, {"variables", {{"name", "A"}, {"count", 1}}}})
            .json()["data"]["locale"] == "en");
  auto french = push_template("news", "fr");
  french["title"] = "Nouveau {{name}}";
  service.create(french);
  CHECK(service.render("news", {{"locale", "fr"}, {"variables", {{"name", "A"}, {"count", 1}}}})
            .json()["data"]["rendered"]["title"] == "Nouveau A");
}

TEST_CASE("template_service: another replica serves a new version within the TTL",
          "[template_service]") {
  TemplateServiceFixture writer;
  TemplateServiceFixture reader(writer, FixtureOptions{{1000, 300ms}, {}});
  writer.create(push_template("shared"));
  const json request = {{"variables", {{"name", "Ada"}, {"count", 3}}}};
  CHECK(reader.render("shared", request).json()["data"]["version"] == 1);
  writer.add_version("shared", {{"title", "v2 {{name}}"}, {"body", "b"}});

  // The reader's cached resolution is at most 300 ms old; allow a generous bound.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  int version = 1;
  while (version == 1 && std::chrono::steady_clock::now() < deadline) {
    version = reader.render("shared", request).json()["data"]["version"].get<int>();
    if (version == 1) {
      std::this_thread::sleep_for(50ms);
    }
  }
  CHECK(version == 2);
  // A version named explicitly never needed the TTL.
  CHECK(reader.render("shared", {{"version", 1}, {"variables", request["variables"]}})
            .json()["data"]["rendered"]["title"] == "Hi Ada");
}

TEST_CASE("template_service: a cached render does not touch PostgreSQL", "[template_service]") {
  TemplateServiceFixture service(FixtureOptions{{1000, std::chrono::minutes(10)}, {}});
  service.create(email_template("cached"));
  service.create(email_template("uncached"));
  const json request = {{"variables", {{"name", "Ada"}, {"link", "l"}}}};
  // The create warmed the compiled version; this render caches the resolution.
  REQUIRE(service.render("cached", request).status == 200);

  // With the tables out of reach, only what the cache holds can be answered.
  service.schema().exec("ALTER TABLE template_versions RENAME TO template_versions_away");
  service.schema().exec("ALTER TABLE templates RENAME TO templates_away");
  const auto hit = service.render("cached", request);
  CHECK(hit.status == 200);
  CHECK(hit.json()["data"]["rendered"]["subject"] == "Welcome Ada");
  CHECK(service.get("/api/v1/templates/cached").status == 200);
  CHECK(service.render("uncached", request).status != 200);
  service.schema().exec("ALTER TABLE templates_away RENAME TO templates");
  service.schema().exec("ALTER TABLE template_versions_away RENAME TO template_versions");
  CHECK(service.render("uncached", request).status == 200);
}

TEST_CASE("template_service: a render too large to build is a 422", "[template_service]") {
  TemplateServiceFixture service;
  service.create({{"code", "bomb"},
                  {"channel", "email"},
                  {"subject", "s"},
                  {"body", "{{#a}}{{#a}}{{#a}}{{#a}}0123456789{{/a}}{{/a}}{{/a}}{{/a}}"}});
  json many = json::array();
  for (int i = 0; i < 100; ++i) {
    many.push_back(i);
  }
  const auto response = service.render("bomb", {{"variables", {{"a", many}}}});
  REQUIRE(response.status == 422);
  CHECK(error_code(response) == "render_too_large");
}
