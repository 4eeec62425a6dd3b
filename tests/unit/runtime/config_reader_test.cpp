#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "notifs/runtime/config_reader.hpp"

namespace runtime = notifs::runtime;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

// The environment as a map, so tests never touch the process's real one.
runtime::ConfigReader::Lookup fake_env(std::map<std::string, std::string> values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    const auto found = values.find(std::string(name));
    if (found == values.end()) {
      return std::nullopt;
    }
    return found->second;
  };
}

// argv as the OS hands it over, argv[0] included.
struct Args {
  explicit Args(const std::vector<std::string>& flags) {
    storage.reserve(flags.size() + 1);
    storage.emplace_back("service");
    storage.insert(storage.end(), flags.begin(), flags.end());
    for (const auto& item : storage) {
      pointers.push_back(item.c_str());
    }
  }
  int argc() const { return static_cast<int>(pointers.size()); }
  const char* const* argv() const { return pointers.data(); }

  std::vector<std::string> storage;
  std::vector<const char*> pointers;
};

runtime::ConfigReader reader(std::map<std::string, std::string> env,
                             std::vector<std::string> flags = {}) {
  const Args args(flags);
  // ConfigReader copies what it keeps; the argv storage may go away afterwards.
  return runtime::ConfigReader(args.argc(), args.argv(), fake_env(std::move(env)));
}

std::string finish_message(const runtime::ConfigReader& config) {
  try {
    config.finish();
  } catch (const runtime::ConfigError& error) {
    return error.what();
  }
  return {};
}

std::string printed(const runtime::ConfigReader& config, const std::string& name) {
  for (const auto& [key, value] : config.effective()) {
    if (key == name) {
      return value;
    }
  }
  FAIL("no effective value for " << name);
  return {};
}

}  // namespace

TEST_CASE("runtime: ConfigReader reads the environment and falls back to defaults",
          "[runtime][config]") {
  auto config = reader({{"PORT", "4001"}, {"NAME", "users"}, {"EMPTY", ""}});
  CHECK(config.port("PORT", 80) == 4001);
  CHECK(config.text("NAME", "x") == "users");
  CHECK(config.text("MISSING", "fallback") == "fallback");
  // Set but empty counts as absent.
  CHECK(config.text("EMPTY", "fallback") == "fallback");
  CHECK_FALSE(config.optional_text("EMPTY"));
  CHECK(config.integer("RETRIES", 3, 0, 10) == 3);
  CHECK(config.milliseconds("TIMEOUT_MS", 250ms, 1ms, 1000ms) == 250ms);
  CHECK(config.boolean("ENABLED", true));
  CHECK_NOTHROW(config.finish());
  CHECK(config.problems().empty());
}

TEST_CASE("runtime: Flags override the environment in every spelling", "[runtime][config]") {
  auto config = reader({{"PORT", "4001"}, {"DATABASE_URL", "postgresql://env@db/x"},
                        {"LOG_LEVEL", "info"}, {"SERVICE_TOKEN", "from-env"}},
                       {"--port=5000", "--database-url", "postgresql://flag@db/y",
                        "--LOG_LEVEL=debug", "--Service-Token="});
  CHECK(config.port("PORT", 1) == 5000);
  CHECK(config.url("DATABASE_URL", "", {"postgresql"}) == "postgresql://flag@db/y");
  const auto logging = config.logging("svc");
  CHECK(logging.level == spdlog::level::debug);
  // An empty flag still overrides: it switches the token off for this run.
  CHECK(config.secret("SERVICE_TOKEN").empty());
  CHECK_NOTHROW(config.finish());
}

TEST_CASE("runtime: The last of repeated flags wins", "[runtime][config]") {
  auto config = reader({}, {"--port=1000", "--port", "2000"});
  CHECK(config.port("PORT", 1) == 2000);
  CHECK_NOTHROW(config.finish());
}

TEST_CASE("runtime: ConfigReader reports every malformed value at once", "[runtime][config]") {
  auto config = reader({
      {"PORT", "abc"},
      {"ADMIN_PORT", "0"},
      {"HIGH_PORT", "65536"},
      {"SIGNED_PORT", "+80"},
      {"SPACED", " 5"},
      {"EXPONENT", "1e3"},
      {"HUGE", "99999999999999999999999"},
      {"BELOW", "-1"},
      {"TIMEOUT_MS", "1.5"},
      {"FLAG", "maybe"},
      {"FORMAT", "xml"},
      {"LOG_LEVEL", "loud"},
  });
  CHECK(config.port("PORT", 4001) == 4001);  // the fallback after a problem
  config.port("ADMIN_PORT", 1);
  config.port("HIGH_PORT", 1);
  config.port("SIGNED_PORT", 1);
  CHECK(config.integer("SPACED", 7, 0, 10) == 7);
  config.integer("EXPONENT", 0, 0, 100000);
  config.integer("HUGE", 0, 0, 100);
  config.integer("BELOW", 0, 0, 100);
  config.milliseconds("TIMEOUT_MS", 10ms, 1ms, 100ms);
  CHECK(config.boolean("FLAG", false) == false);
  CHECK(config.choice("FORMAT", "json", {"json", "text"}) == "json");
  config.logging("svc");
  config.required_text("REQUIRED");

  const auto& problems = config.problems();
  REQUIRE(problems.size() == 13);
  CHECK(problems[0] == "PORT: must be an integer in 1..65535 (got \"abc\")");
  CHECK(problems[1] == "ADMIN_PORT: must be an integer in 1..65535 (got \"0\")");
  CHECK(problems[2] == "HIGH_PORT: must be an integer in 1..65535 (got \"65536\")");
  CHECK(problems[3] == "SIGNED_PORT: must be an integer in 1..65535 (got \"+80\")");
  CHECK(problems[4] == "SPACED: must be an integer in 0..10 (got \" 5\")");
  CHECK_THAT(problems[5], Contains("EXPONENT: must be an integer"));
  CHECK_THAT(problems[6], Contains("HUGE: must be an integer in 0..100"));
  CHECK_THAT(problems[7], Contains("BELOW: must be an integer in 0..100 (got \"-1\")"));
  CHECK(problems[8] ==
        "TIMEOUT_MS: must be a whole number of milliseconds in 1..100 (got \"1.5\")");
  CHECK_THAT(problems[9], Contains("FLAG: must be one of true, false"));
  CHECK(problems[10] == "FORMAT: must be one of json, text (got \"xml\")");
  CHECK_THAT(problems[11], Contains("LOG_LEVEL: must be one of trace"));
  CHECK(problems[12] == "REQUIRED: is required");

  const auto message = finish_message(config);
  CHECK_THAT(message, Contains("PORT: must be an integer in 1..65535 (got \"abc\"); ADMIN_PORT"));
  CHECK_THAT(message, Contains("REQUIRED: is required"));
  CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("runtime: ConfigReader accepts negative integers and bounds inclusively",
          "[runtime][config]") {
  auto config = reader({{"A", "-5"}, {"B", "10"}, {"C", "65535"}, {"D", "1"}});
  CHECK(config.integer("A", 0, -5, 5) == -5);
  CHECK(config.integer("B", 0, -5, 10) == 10);
  CHECK(config.port("C", 1) == 65535);
  CHECK(config.port("D", 2) == 1);
  CHECK(config.problems().empty());
}

TEST_CASE("runtime: Booleans take the usual spellings in any case", "[runtime][config]") {
  auto config = reader({{"A", "TRUE"}, {"B", "0"}, {"C", "Yes"}, {"D", "off"}, {"E", "On"}});
  CHECK(config.boolean("A", false));
  CHECK_FALSE(config.boolean("B", true));
  CHECK(config.boolean("C", false));
  CHECK_FALSE(config.boolean("D", true));
  CHECK(config.boolean("E", false));
  CHECK(config.problems().empty());
}

TEST_CASE("runtime: Problems echo values on one line, escaped and shortened", "[runtime][config]") {
  auto config = reader({{"PORT", "80\n\"x\""}, {"LONG", std::string(500, '9')}});
  config.port("PORT", 1);
  config.integer("LONG", 0, 0, 1);
  REQUIRE(config.problems().size() == 2);
  CHECK(config.problems()[0] == "PORT: must be an integer in 1..65535 (got \"80\\x0a\\\"x\\\"\")");
  CHECK(config.problems()[1].size() < 200);
  CHECK_THAT(config.problems()[1], Contains("...\")"));
}

TEST_CASE("runtime: Unknown, malformed and valueless flags are problems", "[runtime][config]") {
  SECTION("a typo of a real flag") {
    auto config = reader({}, {"--prot=1", "--port=2"});
    CHECK(config.port("PORT", 1) == 2);
    CHECK(finish_message(config) == "unknown flag --prot");
  }
  SECTION("a flag without a value at the end") {
    auto config = reader({}, {"--port"});
    CHECK(config.port("PORT", 7) == 7);
    CHECK(finish_message(config) == "flag --port needs a value");
  }
  SECTION("a flag followed by another flag") {
    auto config = reader({}, {"--port", "--log-level=info"});
    config.port("PORT", 7);
    config.logging("svc");
    CHECK(finish_message(config) == "flag --port needs a value");
  }
  SECTION("a positional argument and a bad name") {
    auto config = reader({}, {"serve", "--bad name=1", "-p", "--=3"});
    const auto message = finish_message(config);
    CHECK_THAT(message, Contains("unexpected argument \"serve\""));
    CHECK_THAT(message, Contains("malformed flag \"--bad name=1\""));
    CHECK_THAT(message, Contains("unexpected argument \"-p\""));
    CHECK_THAT(message, Contains("malformed flag \"--=3\""));
  }
  SECTION("problems of values and flags together") {
    auto config = reader({{"PORT", "x"}}, {"--colour=red"});
    config.port("PORT", 1);
    CHECK(finish_message(config) ==
          "PORT: must be an integer in 1..65535 (got \"x\"); unknown flag --colour");
  }
}

TEST_CASE("runtime: URLs are checked for scheme and host", "[runtime][config]") {
  const std::vector<std::string> pg{"postgresql", "postgres"};
  struct Case {
    std::string url;
    std::string problem;  // empty: valid
  };
  const std::vector<Case> cases{
      {"postgresql://db/users", ""},
      {"POSTGRES://db:5432/users", ""},
      {"postgresql://app:s3cr:t@db:5432/users?sslmode=disable", ""},
      {"postgresql://app:p%40ss%3Aword@db/users", ""},
      {"postgresql://app:p@ss@db/users", ""},  // an unescaped '@' in the password
      {"postgresql://[::1]:5432/users", ""},
      {"postgresql://h1:5432,h2:5433/users", ""},
      {"postgresql://db", ""},
      {"mysql://db/users", "scheme must be one of postgresql, postgres (got \"mysql\")"},
      {"db:5432/users", "must be a URL (postgresql, postgres://host...)"},
      {"://db", "must be a URL (postgresql, postgres://host...)"},
      {"postgresql:///users", "has no host"},
      {"postgresql://app:pw@/users", "has no host"},
      {"postgresql://app:pw@:5432/users", "has no host"},
      {"postgresql://db:0/users", "has an invalid port (must be 1..65535)"},
      {"postgresql://db:65536/users", "has an invalid port (must be 1..65535)"},
      {"postgresql://db:54a2/users", "has an invalid port (must be 1..65535)"},
      {"postgresql://db:/users", "has an invalid port (must be 1..65535)"},
      {"postgresql://[::1/users", "has an unterminated IPv6 address"},
      {"postgresql://[::1]x/users", "has text after its IPv6 address"},
      {"postgresql://app:100%@db/users", "has a malformed percent escape in its user or password"},
      {"postgresql://app:%zz@db/users", "has a malformed percent escape in its user or password"},
      {"postgresql://db /users", "must not contain spaces or control characters"},
      {"postgresql://h1,/users", "has no host"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.url);
    auto config = reader({{"DATABASE_URL", c.url}});
    const auto value = config.url("DATABASE_URL", "", pg);
    if (c.problem.empty()) {
      CHECK(value == c.url);
      CHECK(config.problems().empty());
    } else {
      CHECK(value.empty());
      REQUIRE(config.problems().size() == 1);
      CHECK_THAT(config.problems()[0], Contains("DATABASE_URL: " + c.problem));
    }
  }
}

TEST_CASE("runtime: A URL problem never echoes the password", "[runtime][config]") {
  auto config = reader({{"DATABASE_URL", "mysql://app:hunter2@db/users"}});
  config.url("DATABASE_URL", "", {"postgresql"});
  REQUIRE(config.problems().size() == 1);
  CHECK(config.problems()[0].find("hunter2") == std::string::npos);
  CHECK_THAT(config.problems()[0], Contains("mysql://app:***@db/users"));
  CHECK(printed(config, "DATABASE_URL").find("hunter2") == std::string::npos);
}

TEST_CASE("runtime: A URL long enough to make a backtracking regex explode is checked at once",
          "[runtime][config]") {
  // Patterns like (a+)+@ backtrack exponentially on many '@'-free repetitions; the hand
  // parser is linear. Catch would time the test out if this regressed badly.
  const std::string url = "postgresql://" + std::string(50000, 'a') + ":" +
                          std::string(50000, 'b') + "!" + "/db";
  auto config = reader({{"DATABASE_URL", url}});
  config.url("DATABASE_URL", "", {"postgresql"});
  REQUIRE(config.problems().size() == 1);
  CHECK_THAT(config.problems()[0], Contains("invalid port"));
}

TEST_CASE("runtime: A URL fallback is used when the variable is absent, and none means required",
          "[runtime][config]") {
  auto config = reader({});
  CHECK(config.url("RABBITMQ_URL", "amqp://guest:guest@localhost:5672/%2f", {"amqp", "amqps"}) ==
        "amqp://guest:guest@localhost:5672/%2f");
  CHECK(config.url("DATABASE_URL", "", {"postgresql"}).empty());
  REQUIRE(config.problems().size() == 1);
  CHECK(config.problems()[0] == "DATABASE_URL: is required");
  CHECK(printed(config, "RABBITMQ_URL") == "amqp://guest:***@localhost:5672/%2f");
  CHECK(printed(config, "DATABASE_URL") == "(unset)");
}

TEST_CASE("runtime: mask_url_password hides userinfo and query passwords only",
          "[runtime][config]") {
  using runtime::mask_url_password;
  CHECK(mask_url_password("postgresql://app:secret@db:5432/users") ==
        "postgresql://app:***@db:5432/users");
  CHECK(mask_url_password("postgresql://app:se:cr%40et@db/users") ==
        "postgresql://app:***@db/users");
  CHECK(mask_url_password("postgresql://app:p@ss@db/users") == "postgresql://app:***@db/users");
  CHECK(mask_url_password("postgresql://app@db/users") == "postgresql://app@db/users");
  CHECK(mask_url_password("postgresql://db/users") == "postgresql://db/users");
  // An '@' in the path is not userinfo.
  CHECK(mask_url_password("http://host/a:b@c") == "http://host/a:b@c");
  CHECK(mask_url_password("postgresql://db/users?user=app&password=secret&sslmode=require") ==
        "postgresql://db/users?user=app&password=***&sslmode=require");
  CHECK(mask_url_password("postgresql://db/users?PASSWORD=secret#frag") ==
        "postgresql://db/users?PASSWORD=***#frag");
  CHECK(mask_url_password("not a url") == "not a url");
  CHECK(mask_url_password("") == "");
}

TEST_CASE("runtime: Secrets and lists print masked", "[runtime][config]") {
  auto config = reader({{"SERVICE_TOKEN", "t0ken"},
                        {"GATEWAY_API_KEYS", " k1 , ,k2,"},
                        {"HOSTS", "a, b"}});
  CHECK(config.secret("SERVICE_TOKEN") == "t0ken");
  CHECK(config.secret("OTHER_TOKEN").empty());
  CHECK(config.list("GATEWAY_API_KEYS", true) == std::vector<std::string>{"k1", "k2"});
  CHECK(config.list("HOSTS") == std::vector<std::string>{"a", "b"});
  CHECK(config.list("NONE").empty());
  CHECK(printed(config, "SERVICE_TOKEN") == "***");
  CHECK(printed(config, "OTHER_TOKEN") == "(unset)");
  CHECK(printed(config, "GATEWAY_API_KEYS") == "***,***");
  CHECK(printed(config, "HOSTS") == "a,b");
  CHECK(printed(config, "NONE") == "(unset)");
  for (const auto& [name, value] : config.effective()) {
    CHECK(value.find("t0ken") == std::string::npos);
    CHECK(value.find("k1") == std::string::npos);
  }
}

TEST_CASE("runtime: effective_line lists every value read, in order, quoted when needed",
          "[runtime][config]") {
  auto config = reader({{"DATABASE_URL", "postgresql://app:pw@db:5432/users"},
                        {"SMTP_FROM", "Notifs <no-reply@example.com>"},
                        {"SERVICE_TOKEN", "abc"}},
                       {"--port=4001"});
  config.port("PORT", 1);
  config.logging("svc");
  config.url("DATABASE_URL", "", {"postgresql"});
  config.text("SMTP_FROM", "");
  config.secret("SERVICE_TOKEN");
  config.optional_text("PUSH_PROVIDER_URL");
  config.text("EMPTY_DEFAULT", "");
  // Reading a name twice keeps one entry, with the last value.
  config.port("PORT", 1);
  CHECK(config.effective_line() ==
        "PORT=4001 LOG_LEVEL=info LOG_FORMAT=text "
        "DATABASE_URL=postgresql://app:***@db:5432/users "
        "SMTP_FROM=\"Notifs <no-reply@example.com>\" SERVICE_TOKEN=*** "
        "PUSH_PROVIDER_URL=(unset) EMPTY_DEFAULT=\"\"");
}

TEST_CASE("runtime: choice compares exactly, and logging reads level and format",
          "[runtime][config]") {
  auto config = reader({{"RABBITMQ_QUEUE_TYPE", "Quorum"}, {"LOG_LEVEL", "WARN"},
                        {"LOG_FORMAT", "json"}});
  CHECK(config.choice("RABBITMQ_QUEUE_TYPE", "quorum", {"quorum", "classic"}) == "quorum");
  REQUIRE(config.problems().size() == 1);
  CHECK(config.problems()[0] ==
        "RABBITMQ_QUEUE_TYPE: must be one of quorum, classic (got \"Quorum\")");
  const auto logging = config.logging("user_service");
  CHECK(logging.level == spdlog::level::warn);
  CHECK(logging.format == notifs::messaging::common::LogFormat::json);
  CHECK(logging.service == "user_service");
}

TEST_CASE("runtime: The real environment is read through getenv", "[runtime][config]") {
  // PATH is set in every environment ctest runs in; a name nobody sets is absent.
  const auto lookup = runtime::ConfigReader::environment();
  CHECK(lookup("PATH").has_value());
  CHECK_FALSE(lookup("NOTIFS_SURELY_UNSET_VARIABLE_4711").has_value());
}
