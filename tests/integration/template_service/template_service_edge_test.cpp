// template_service under pressure: concurrent PUTs and duplicate creates (never a 500),
// hostile strings stored exactly or refused with 400, service-token auth, and a
// PostgreSQL restart in the middle.
#include <algorithm>
#include <atomic>
#include <map>
#include <set>
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

namespace {

// Runs `call(i)` on `n` threads released together; returns each status.
template <typename Call>
std::vector<unsigned> concurrently(int n, Call call) {
  std::vector<unsigned> statuses(static_cast<std::size_t>(n), 0);
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (ready.load() < n) {
        std::this_thread::yield();
      }
      statuses[static_cast<std::size_t>(i)] = call(i);
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  return statuses;
}

}  // namespace

TEST_CASE("template_service: concurrent PUTs get distinct numbers, never a 500",
          "[template_service]") {
  TemplateServiceFixture service;
  service.create(push_template("busy"));
  constexpr int kWriters = 12;
  std::vector<int> numbers(kWriters, 0);
  const auto statuses = concurrently(kWriters, [&](int i) {
    const auto response = service.put("/api/v1/templates/busy",
                                      {{"title", "writer " + std::to_string(i)}, {"body", "b"}});
    if (response.status == 201) {
      numbers[static_cast<std::size_t>(i)] = response.json()["data"]["version"].get<int>();
    }
    return response.status;
  });
  CHECK(statuses == std::vector<unsigned>(kWriters, 201));
  std::sort(numbers.begin(), numbers.end());
  std::vector<int> expected(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    expected[static_cast<std::size_t>(i)] = i + 2;
  }
  CHECK(numbers == expected);
  CHECK(service.get("/api/v1/templates/busy").json()["data"]["version"] == kWriters + 1);
}

TEST_CASE("template_service: concurrent identical creates: one 201, the rest 409",
          "[template_service]") {
  TemplateServiceFixture service;
  constexpr int kCreators = 12;
  const auto statuses = concurrently(kCreators, [&](int) {
    return service.post("/api/v1/templates", email_template("race")).status;
  });
  CHECK(std::count(statuses.begin(), statuses.end(), 201U) == 1);
  CHECK(std::count(statuses.begin(), statuses.end(), 409U) == kCreators - 1);
  CHECK(service.schema().query_value("SELECT count(*) FROM template_versions") == "1");

  // The same race across channels: one wins, the other channel is told it mismatches.
  const auto mixed = concurrently(kCreators, [&](int i) {
    return service
        .post("/api/v1/templates", i % 2 == 0 ? email_template("mixed") : push_template("mixed"))
        .status;
  });
  CHECK(std::count(mixed.begin(), mixed.end(), 201U) == 1);
  CHECK(std::count(mixed.begin(), mixed.end(), 409U) == kCreators - 1);
}

TEST_CASE("template_service: hostile strings are stored exactly or refused with 400",
          "[template_service]") {
  TemplateServiceFixture service;
  const std::string hostile =
      "'; DROP TABLE templates; -- \"quoted\" \\ back\\slash $1 %s {{! comment }} "
      "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x8E\x89 \t tab";

  SECTION("quotes, SQL and unicode round-trip unchanged") {
    auto body = email_template("hostile");
    body["subject"] = hostile;
    body["body"] = hostile + "\n{{name}}";
    const auto created = service.create(body);
    CHECK(created["subject"] == hostile);
    CHECK(service.get("/api/v1/templates/hostile").json()["data"]["body"] ==
          hostile + "\n{{name}}");
    const auto rendered =
        service.render("hostile", {{"variables", {{"name", hostile}, {"link", hostile}}}});
    INFO(rendered.body);
    REQUIRE(rendered.status == 200);
    // The template's comment tag renders as nothing; the value is inserted as it is.
    std::string without_comment = hostile;
    without_comment.erase(without_comment.find("{{! comment }}"), 14);
    CHECK(rendered.json()["data"]["rendered"]["body"] == without_comment + "\n" + hostile);
    CHECK(service.schema().query_value("SELECT count(*) FROM templates") == "1");
  }
  SECTION("a 10 KB body is fine, 33 KB is refused") {
    std::string ten_kb;
    while (ten_kb.size() < 10 * 1024) {
      ten_kb += "x\xC3\xA9 '\" ";
    }
    auto body = email_template("large");
    body["body"] = ten_kb;
    CHECK(service.create(body)["body"] == ten_kb);
    body["code"] = "too_large";
    body["body"] = std::string(33 * 1024, 'x');
    const auto response = service.post("/api/v1/templates", body);
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"body"});
  }
  SECTION("a 10 KB code, locale or path is refused") {
    const std::string huge(10 * 1024, 'a');
    auto body = email_template(huge);
    body["locale"] = huge;
    const auto response = service.post("/api/v1/templates", body);
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"code", "locale"});
    CHECK(service.get("/api/v1/templates/" + huge.substr(0, 4000)).status == 400);
  }
  SECTION("NUL (\\u0000) is refused in every field") {
    for (const char* field : {"code", "locale", "subject", "body", "html_body"}) {
      auto body = email_template("nul");
      body[field] = std::string("a\0b", 3);
      const auto response = service.post("/api/v1/templates", body);
      INFO(field << ": " << response.body);
      REQUIRE(response.status == 400);
      CHECK(problem_fields(response.json()) == std::vector<std::string>{field});
    }
    service.create(push_template("nul"));
    // In variables a NUL is just text: it is rendered, never stored.
    const auto rendered =
        service.render("nul", {{"variables", {{"name", std::string("a\0b", 3)}, {"count", 1}}}});
    REQUIRE(rendered.status == 200);
    CHECK(rendered.json()["data"]["rendered"]["title"] == std::string("Hi a\0b", 6));
  }
  SECTION("codes that look like SQL or paths are 400, not 404 or 500") {
    auto body = email_template("'; DROP TABLE templates; --");
    const auto response = service.post("/api/v1/templates", body);
    REQUIRE(response.status == 400);
    CHECK(problem_fields(response.json()) == std::vector<std::string>{"code"});
    CHECK(service.get("/api/v1/templates/%27%3B%20DROP%20TABLE%20templates%3B%20--").status == 400);
    CHECK(service.get("/api/v1/templates/a%2Fb").status == 400);
    // The router may refuse a decoded NUL before the service sees it: either way a 4xx.
    const auto nul = service.get("/api/v1/templates/%00").status;
    CHECK((nul == 400 || nul == 404));
    CHECK(service.schema().query_value("SELECT count(*) FROM templates") == "0");
  }
}

TEST_CASE("template_service: with SERVICE_TOKEN set, calls without it get 401",
          "[template_service]") {
  TemplateServiceFixture service(FixtureOptions{{}, "s3cret-token"});
  service.create(push_template("guarded"));  // the fixture sends the token

  const auto anonymous = notifs::tests::round_trip(
      service.port(), notifs::tests::make_request("GET", "/api/v1/templates/guarded"));
  REQUIRE(anonymous);
  CHECK(anonymous->status == 401);
  const auto wrong = notifs::tests::round_trip(
      service.port(),
      notifs::tests::make_request(
          "POST", "/api/v1/templates/guarded/render",
          {{"Authorization", "Bearer nope"}, {"Content-Type", "application/json"}}, "{}"));
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
  const auto health =
      notifs::tests::round_trip(service.port(), notifs::tests::make_request("GET", "/health"));
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(service.get("/api/v1/templates/guarded").status == 200);
}

TEST_CASE("template_service: requests succeed again after a PostgreSQL restart",
          "[template_service][recovery]") {
  TemplateServiceFixture service;
  service.create(push_template("before"));
  REQUIRE(service.get("/api/v1/templates/before").status == 200);

  notifs::pg_test::restart_postgres();

  // Not cached yet (a named version it never read): the pool must reconnect.
  service.add_version("before", {{"title", "after restart"}, {"body", "b"}});
  const auto fetched = service.get("/api/v1/templates/before?version=2");
  REQUIRE(fetched.status == 200);
  CHECK(fetched.json()["data"]["title"] == "after restart");
  service.create(email_template("after"));
  CHECK(service.get("/api/v1/templates?limit=5").json()["meta"]["total"] == 2);
}
