// scripts/seed against both services running in-process: it must create the demo data
// through the public API, print the demo user's id, and change nothing when run again.
#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"
#include "integration/test_process.hpp"


#include <memory>
#include <set>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <prometheus/registry.h>

#include "template_service_app.hpp"
#include "user_service_app.hpp"

namespace runtime = notifs::runtime;
namespace pg_test = notifs::pg_test;
using notifs::tests::make_request;
using notifs::tests::round_trip;
using namespace std::chrono_literals;

namespace {

constexpr const char* kToken = "seed-test-token";

runtime::DatabaseServiceSettings settings_for(const pg_test::TestSchema& schema,
                                              const std::string& name, const std::string& token) {
  runtime::DatabaseServiceSettings settings;
  settings.server.service_name = name;
  settings.server.address = "127.0.0.1";
  settings.server.port = 0;
  settings.server.io_threads = 1;
  settings.server.blocking_threads = 2;
  settings.database.url = schema.url();
  settings.database.size = 2;
  settings.database.application_name = name;
  settings.service_token = token;
  settings.startup_timeout = 20000ms;
  return settings;
}

// Runs scripts/seed with the services' URLs; `output` is stdout, plus stderr when asked.
notifs::test_support::CommandResult run_seed(std::uint16_t user_port, std::uint16_t template_port,
                                     const std::string& token, bool with_stderr = false) {
  return notifs::test_support::run_command(
      "USER_SERVICE_URL=http://127.0.0.1:" + std::to_string(user_port) +
      " TEMPLATE_SERVICE_URL=http://127.0.0.1:" + std::to_string(template_port) +
      " SERVICE_TOKEN=" + token + " bash " NOTIFS_SOURCE_DIR "/scripts/seed" +
      (with_stderr ? " 2>&1" : ""));
}

nlohmann::json get_json(std::uint16_t port, const std::string& target) {
  const auto response = round_trip(
      port, make_request("GET", target, {{"Authorization", std::string("Bearer ") + kToken}}));
  REQUIRE(response);
  INFO(target << " -> " << response->body);
  REQUIRE(response->status == 200);
  return response->json();
}

// Everything the seed could have touched, as the API shows it: the users (with their
// updated_at) and every template code with its locales' latest versions.
struct Snapshot {
  nlohmann::json users;
  nlohmann::json templates;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(std::uint16_t user_port, std::uint16_t template_port) {
  return Snapshot{get_json(user_port, "/api/v1/users?limit=100"),
                  get_json(template_port, "/api/v1/templates?limit=100")};
}

bool is_uuid(const std::string& text) {
  if (text.size() != 36) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : std::isxdigit(static_cast<unsigned char>(text[i])) == 0) {
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("scripts/seed creates the demo data once, and a second run changes nothing",
          "[seed][integration]") {
  pg_test::TestSchema user_schema;
  pg_test::TestSchema template_schema;
  notifs::user_service::UserServiceApp users(settings_for(user_schema, "user_service", kToken),
                                             std::make_shared<prometheus::Registry>());
  notifs::template_service::TemplateServiceApp templates(
      settings_for(template_schema, "template_service", kToken),
      std::make_shared<prometheus::Registry>());
  users.start();
  templates.start();

  const auto first = run_seed(users.port(), templates.port(), kToken);
  REQUIRE(first.exit_code == 0);
  const auto id = first.output.substr(0, first.output.find('\n'));
  CHECK(is_uuid(id));
  CHECK(first.output == id + "\n");

  const auto user = get_json(users.port(), "/api/v1/users/" + id)["data"];
  CHECK(user["name"] == "Ada Lovelace");
  CHECK(user["email"] == "ada@example.com");
  CHECK(user["locale"] == "en");
  CHECK(user["push_tokens"].size() == 1);

  const auto before = snapshot(users.port(), templates.port());
  CHECK(before.users["meta"]["total"] == 1);
  const auto& codes = before.templates["data"];
  REQUIRE(codes.size() == 4);
  std::set<std::string> seen;
  for (const auto& item : codes) {
    const auto code = item["code"].get<std::string>();
    CAPTURE(code);
    seen.insert(code);
    const bool push = code == "welcome_push" || code == "password_reset_push";
    CHECK(item["channel"] == (push ? "push" : "email"));
    std::set<std::string> locales;
    for (const auto& locale : item["locales"]) {
      locales.insert(locale["locale"].get<std::string>());
      CHECK(locale["latest_version"] == 1);
    }
    CHECK(locales == std::set<std::string>{"en", "fr"});
  }
  CHECK(seen == std::set<std::string>{"welcome_email", "welcome_push", "password_reset",
                                      "password_reset_push"});

  // The French text is real French, not a copy of the English one, and renders.
  const auto french = get_json(templates.port(), "/api/v1/templates/welcome_email?locale=fr");
  CHECK(french["data"]["locale"] == "fr");
  CHECK(french["data"]["subject"].get<std::string>().find("Bienvenue") != std::string::npos);
  const auto rendered = round_trip(
      templates.port(),
      notifs::tests::json_post(
          "/api/v1/templates/password_reset/render",
          R"({"locale":"fr","variables":{"name":"Ada","link":"https://example.com/r?a=1&b=2",)"
          R"("expires_in_minutes":30}})",
          {{"Authorization", std::string("Bearer ") + kToken}}));
  REQUIRE(rendered);
  INFO(rendered->body);
  CHECK(rendered->status == 200);

  const auto second = run_seed(users.port(), templates.port(), kToken);
  REQUIRE(second.exit_code == 0);
  CHECK(second.output == id + "\n");
  const auto after = snapshot(users.port(), templates.port());
  CHECK(after.users == before.users);
  CHECK(after.templates == before.templates);
}

TEST_CASE("scripts/seed fails on an answer it does not expect and prints it",
          "[seed][integration]") {
  pg_test::TestSchema user_schema;
  pg_test::TestSchema template_schema;
  notifs::user_service::UserServiceApp users(settings_for(user_schema, "user_service", kToken),
                                             std::make_shared<prometheus::Registry>());
  notifs::template_service::TemplateServiceApp templates(
      settings_for(template_schema, "template_service", kToken),
      std::make_shared<prometheus::Registry>());
  users.start();
  templates.start();

  // /health is open, so the script gets as far as its first write, which answers 401.
  const auto run = run_seed(users.port(), templates.port(), "not-the-token", true);
  CHECK(run.exit_code != 0);
  CHECK(run.output.find("401") != std::string::npos);
  CHECK(run.output.find("unauthorized") != std::string::npos);
  CHECK(pg_test::query_value(user_schema.url(), "SELECT count(*) FROM users") == "0");
}
