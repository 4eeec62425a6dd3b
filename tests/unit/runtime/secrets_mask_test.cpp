// Printed URLs never carry a password (issue 8): the three maskers (configuration echo,
// AMQP, PostgreSQL) on passwords that hold the characters which end a URL's authority when
// left unescaped ('/', '?', '#', '@'), and ConfigReader's problem line and effective
// configuration for such values.
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/runtime/config_reader.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace runtime = notifs::runtime;

namespace {

constexpr const char* kSecret = "Sup3rS3cret";

// Passwords around kSecret with each troublesome character, as users paste them.
std::vector<std::string> awkward_passwords() {
  const std::string s = kSecret;
  return {s, s + "/tail", "head/" + s, s + "?q=1", s + "#frag", "p@" + s, s + ":x",
          "a/b?c#d@" + s, s + "%2F"};
}

}  // namespace

TEST_CASE("secrets: every URL masker hides a password holding / ? # @ or :",
          "[runtime][secrets]") {
  for (const auto& password : awkward_passwords()) {
    for (const std::string scheme : {"postgresql", "amqp", "smtp"}) {
      const std::string url = scheme + "://app:" + password + "@db.example:5432/name";
      CAPTURE(url);
      const auto config_masked = runtime::mask_url_password(url);
      CHECK(config_masked.find(kSecret) == std::string::npos);
      CHECK_THAT(config_masked, Catch::StartsWith(scheme + "://app:***"));
      CHECK(notifs::storage::mask_database_url(url).find(kSecret) == std::string::npos);
      CHECK(notifs::messaging::amqp::mask_url(url).find(kSecret) == std::string::npos);
    }
  }
}

TEST_CASE("secrets: masking leaves URLs without a password alone", "[runtime][secrets]") {
  CHECK(runtime::mask_url_password("postgresql://db:5432/x@y") == "postgresql://db:5432/x@y");
  CHECK(runtime::mask_url_password("amqp://app@host:5672/%2f") == "amqp://app@host:5672/%2f");
  CHECK(runtime::mask_url_password("http://host/a:b@c") == "http://host/a:b@c");
}

TEST_CASE("secrets: ConfigReader echoes a malformed URL and prints a good one without its "
          "password",
          "[runtime][secrets]") {
  for (const auto& password : awkward_passwords()) {
    CAPTURE(password);
    const std::string secret_url = "amqp://app:" + password + "@127.0.0.1:5672/%2f";
    const std::string bad_url = "postgresql://app:" + password + "@127.0.0.1:notaport/db";
    const auto lookup = [&](std::string_view name) -> std::optional<std::string> {
      if (name == "RABBITMQ_URL") return secret_url;
      if (name == "DATABASE_URL") return bad_url;
      if (name == "SERVICE_TOKEN") return std::string(kSecret) + "-token";
      return std::nullopt;
    };
    const char* argv[] = {"service"};
    runtime::ConfigReader config(1, argv, lookup);
    config.url("RABBITMQ_URL", "", {"amqp", "amqps"});
    config.url("DATABASE_URL", "", {"postgresql"});
    config.secret("SERVICE_TOKEN");
    std::string problems;
    try {
      config.finish();
    } catch (const runtime::ConfigError& error) {
      problems = error.what();
    }
    CHECK_FALSE(problems.empty());  // DATABASE_URL's port, at least
    CHECK(problems.find(kSecret) == std::string::npos);
    CHECK(config.effective_line().find(kSecret) == std::string::npos);
  }
}
