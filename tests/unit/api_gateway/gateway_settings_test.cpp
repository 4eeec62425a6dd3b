#include "gateway_settings.hpp"

#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "notifs/runtime/config_reader.hpp"

namespace gw = notifs::api_gateway;
namespace runtime = notifs::runtime;
using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

const std::string kKeyA = "key-aaaaaaaaaaaaaaaa";  // 20 characters
const std::string kKeyB = "key-bbbbbbbbbbbbbbbbbbbb";
const std::string kToken = "service-token-secret-xyz";

using Env = std::map<std::string, std::string>;

runtime::ConfigReader::Lookup fake_env(Env values) {
  return [values = std::move(values)](std::string_view name) -> std::optional<std::string> {
    const auto found = values.find(std::string(name));
    if (found == values.end()) {
      return std::nullopt;
    }
    return found->second;
  };
}

runtime::ConfigReader reader(Env env) {
  const char* argv[] = {"api_gateway"};
  return runtime::ConfigReader(1, argv, fake_env(std::move(env)));
}

// The required variables only.
Env minimal() {
  return {
      {"GATEWAY_API_KEYS", kKeyA + "," + kKeyB},
      {"RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"},
      {"DATABASE_URL", "postgresql://app:dbpass@127.0.0.1:5432/gateway"},
      {"USER_SERVICE_URL", "http://127.0.0.1:4001"},
      {"TEMPLATE_SERVICE_URL", "http://127.0.0.1:4002"},
  };
}

Env with(Env env, const Env& changes) {
  for (const auto& [name, value] : changes) {
    env[name] = value;
  }
  return env;
}

std::string finish_message(const runtime::ConfigReader& config) {
  try {
    config.finish();
  } catch (const runtime::ConfigError& error) {
    return error.what();
  }
  return {};
}

}  // namespace

TEST_CASE("gateway_settings: defaults with only the required variables", "[gateway_settings]") {
  auto config = reader(minimal());
  const auto settings = gw::read_gateway_settings(config);
  REQUIRE(finish_message(config).empty());

  CHECK(settings.api_keys == std::vector<std::string>{kKeyA, kKeyB});
  CHECK(settings.service.server.port == 8080);
  CHECK(settings.service.server.service_name == "api_gateway");
  CHECK(settings.amqp.url == "amqp://guest:guest@127.0.0.1:5672/%2f");
  CHECK(settings.topology.queue_type == notifs::messaging::amqp::QueueType::quorum);
  CHECK(settings.publish_timeout == 5000ms);
  CHECK(settings.publisher.confirm_timeout == 5000ms);
  CHECK(settings.publisher.connection.url == settings.amqp.url);
  REQUIRE(settings.publisher.topology.has_value());
  CHECK(settings.publisher.topology->queue_type == settings.topology.queue_type);
  CHECK(settings.user_service.name == "user_service");
  CHECK(settings.user_service.base_url == "http://127.0.0.1:4001");
  CHECK(settings.user_service.attempt_timeout == 2000ms);
  CHECK(settings.template_service.name == "template_service");
  CHECK(settings.template_service.base_url == "http://127.0.0.1:4002");
  CHECK(settings.template_service.attempt_timeout == 2000ms);
  CHECK(settings.user_service.service_token.empty());
  for (const auto* cache : {&settings.directory.users, &settings.directory.templates}) {
    CHECK(cache->ttl == 30000ms);
    CHECK(cache->stale_ttl == 600000ms);
    CHECK(cache->max_entries == 100000);
    CHECK(cache->negative_ttl == 5000ms);
  }
  CHECK(settings.rate_limit.requests_per_second == 0.0);
  CHECK(settings.rate_limit.burst == 0.0);
  CHECK(settings.ledger.writers == 1);
  CHECK(settings.ledger.max_batch == 256);
  CHECK(settings.ledger.pending_takeover == 30000ms);
  // Unset pool: sized for every writer and every HTTP worker at once.
  CHECK(settings.service.database.size ==
        settings.ledger.writers + settings.service.server.blocking_threads);
}

TEST_CASE("gateway_settings: every variable is read", "[gateway_settings]") {
  auto config = reader(with(minimal(), {
                                           {"PORT", "9090"},
                                           {"SERVICE_TOKEN", kToken},
                                           {"RABBITMQ_URL", "amqps://u:p@broker.example:5671/v"},
                                           {"RABBITMQ_QUEUE_TYPE", "classic"},
                                           {"PUBLISH_TIMEOUT_MS", "3000"},
                                           {"USER_SERVICE_URL", "https://users.example:443"},
                                           {"TEMPLATE_SERVICE_URL", "https://tpl.example"},
                                           {"UPSTREAM_TIMEOUT_MS", "7000"},
                                           {"CACHE_TTL_MS", "1000"},
                                           {"CACHE_STALE_TTL_MS", "2000"},
                                           {"CACHE_MAX_ENTRIES", "50"},
                                           {"NEGATIVE_CACHE_TTL_MS", "0"},
                                           {"RATE_LIMIT_PER_SECOND", "2.5"},
                                           {"RATE_LIMIT_BURST", "10"},
                                           {"LEDGER_WRITERS", "3"},
                                           {"LEDGER_MAX_BATCH", "64"},
                                           {"PENDING_TAKEOVER_MS", "6000"},
                                           {"HTTP_WORKER_THREADS", "5"},
                                       }));
  const auto settings = gw::read_gateway_settings(config);
  REQUIRE(finish_message(config).empty());

  CHECK(settings.service.server.port == 9090);
  CHECK(settings.service.service_token == kToken);
  CHECK(settings.user_service.service_token == kToken);
  CHECK(settings.template_service.service_token == kToken);
  CHECK(settings.amqp.url == "amqps://u:p@broker.example:5671/v");
  CHECK(settings.publisher.connection.url == settings.amqp.url);
  CHECK(settings.topology.queue_type == notifs::messaging::amqp::QueueType::classic);
  REQUIRE(settings.publisher.topology.has_value());
  CHECK(settings.publisher.topology->queue_type == notifs::messaging::amqp::QueueType::classic);
  CHECK(settings.publish_timeout == 3000ms);
  CHECK(settings.publisher.confirm_timeout == 3000ms);
  CHECK(settings.user_service.base_url == "https://users.example:443");
  CHECK(settings.template_service.base_url == "https://tpl.example");
  CHECK(settings.user_service.attempt_timeout == 7000ms);
  CHECK(settings.template_service.attempt_timeout == 7000ms);
  // The whole-call deadline never cuts one attempt short of its configured timeout.
  CHECK(settings.user_service.deadline >= 7000ms);
  for (const auto* cache : {&settings.directory.users, &settings.directory.templates}) {
    CHECK(cache->ttl == 1000ms);
    CHECK(cache->stale_ttl == 2000ms);
    CHECK(cache->max_entries == 50);
    CHECK(cache->negative_ttl == 0ms);
  }
  CHECK(settings.rate_limit.requests_per_second == 2.5);
  CHECK(settings.rate_limit.burst == 10.0);
  CHECK(settings.ledger.writers == 3);
  CHECK(settings.ledger.max_batch == 64);
  CHECK(settings.ledger.pending_takeover == 6000ms);
  CHECK(settings.service.server.blocking_threads == 5);
  CHECK(settings.service.database.size == 8);
}

TEST_CASE("gateway_settings: every malformed value is reported at once", "[gateway_settings]") {
  auto config = reader({
      {"GATEWAY_API_KEYS", "short," + kKeyA},
      {"RABBITMQ_URL", "http://broker:5672"},
      {"RABBITMQ_QUEUE_TYPE", "stream"},
      {"PUBLISH_TIMEOUT_MS", "soon"},
      {"DATABASE_URL", "postgresql://app:dbpass@127.0.0.1:5432/gateway"},
      {"USER_SERVICE_URL", "ftp://users"},
      {"UPSTREAM_TIMEOUT_MS", "-5"},
      {"CACHE_TTL_MS", "x"},
      {"CACHE_STALE_TTL_MS", "1.5"},
      {"CACHE_MAX_ENTRIES", "many"},
      {"NEGATIVE_CACHE_TTL_MS", "-1"},
      {"RATE_LIMIT_PER_SECOND", "fast"},
      {"RATE_LIMIT_BURST", "-3"},
      {"LEDGER_WRITERS", "0"},
      {"LEDGER_MAX_BATCH", "big"},
      {"PENDING_TAKEOVER_MS", "later"},
  });
  (void)gw::read_gateway_settings(config);
  const auto message = finish_message(config);
  for (const char* name :
       {"GATEWAY_API_KEYS", "RABBITMQ_URL", "RABBITMQ_QUEUE_TYPE", "PUBLISH_TIMEOUT_MS",
        "USER_SERVICE_URL", "TEMPLATE_SERVICE_URL", "UPSTREAM_TIMEOUT_MS", "CACHE_TTL_MS",
        "CACHE_STALE_TTL_MS", "CACHE_MAX_ENTRIES", "NEGATIVE_CACHE_TTL_MS",
        "RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "LEDGER_WRITERS", "LEDGER_MAX_BATCH",
        "PENDING_TAKEOVER_MS"}) {
    INFO(name);
    CHECK_THAT(message, Contains(name));
  }
  CHECK(config.problems().size() >= 16);
}

TEST_CASE("gateway_settings: required variables", "[gateway_settings]") {
  auto config = reader({{"DATABASE_URL", "postgresql://127.0.0.1/gateway"}});
  (void)gw::read_gateway_settings(config);
  const auto message = finish_message(config);
  for (const char* name :
       {"GATEWAY_API_KEYS", "RABBITMQ_URL", "USER_SERVICE_URL", "TEMPLATE_SERVICE_URL"}) {
    INFO(name);
    CHECK_THAT(message, Contains(name) && Contains("required"));
  }
}

TEST_CASE("gateway_settings: api key rules name the position, never the key",
          "[gateway_settings]") {
  const std::string too_short = "abc123";
  const std::string too_long(257, 'k');
  const std::string with_control = "key-with-tab\tinside-xx";
  const std::string with_non_ascii = "key-caf\xc3\xa9-aaaaaaaaaaaa";
  const std::string exactly_16(16, 'a');
  const std::string exactly_256(256, 'b');
  auto config = reader(with(minimal(), {{"GATEWAY_API_KEYS",
                                         exactly_16 + "," + too_short + "," + too_long + "," +
                                             with_control + "," + with_non_ascii + "," +
                                             exactly_256}}));
  (void)gw::read_gateway_settings(config);
  const auto message = finish_message(config);
  CHECK_THAT(message, Contains("key 2") && Contains("key 3") && Contains("key 4") &&
                          Contains("key 5"));
  CHECK_THAT(message, !Contains("key 1 ") && !Contains("key 6"));
  for (const auto& key : {too_short, too_long, with_control, with_non_ascii, exactly_16,
                          exactly_256}) {
    CHECK_THAT(message, !Contains(key));
  }
  CHECK(config.problems().size() == 4);
}

TEST_CASE("gateway_settings: secrets never appear in the effective line",
          "[gateway_settings]") {
  auto config = reader(with(minimal(), {{"SERVICE_TOKEN", kToken}}));
  const auto settings = gw::read_gateway_settings(config);
  REQUIRE(finish_message(config).empty());
  REQUIRE(settings.api_keys.size() == 2);
  const auto line = config.effective_line();
  CHECK_THAT(line, Contains("GATEWAY_API_KEYS=") && Contains("SERVICE_TOKEN="));
  CHECK_THAT(line, !Contains(kKeyA) && !Contains(kKeyB) && !Contains(kToken));
  CHECK_THAT(line, !Contains("dbpass") && !Contains("guest:guest"));
}

TEST_CASE("gateway_settings: fractional rate parsed strictly", "[gateway_settings]") {
  SECTION("accepted") {
    for (const auto& [text, expected] : std::vector<std::pair<std::string, double>>{
             {"0", 0.0}, {"0.5", 0.5}, {"100", 100.0}, {"12.25", 12.25}}) {
      INFO(text);
      auto config = reader(with(minimal(), {{"RATE_LIMIT_PER_SECOND", text}}));
      const auto settings = gw::read_gateway_settings(config);
      CHECK(finish_message(config).empty());
      CHECK(settings.rate_limit.requests_per_second == expected);
    }
  }
  SECTION("refused") {
    for (const std::string text :
         {"abc", "-1", "1.5x", " 2", "nan", "inf", "1e3", "0x10", "2000000", "1,5", "."}) {
      INFO(text);
      auto config = reader(with(minimal(), {{"RATE_LIMIT_PER_SECOND", text}}));
      (void)gw::read_gateway_settings(config);
      CHECK_THAT(finish_message(config), Contains("RATE_LIMIT_PER_SECOND"));
    }
  }
}

TEST_CASE("gateway_settings: pending takeover must be at least twice the publish timeout",
          "[gateway_settings]") {
  SECTION("default takeover with a long publish timeout") {
    auto config = reader(with(minimal(), {{"PUBLISH_TIMEOUT_MS", "20000"}}));
    (void)gw::read_gateway_settings(config);
    const auto message = finish_message(config);
    CHECK_THAT(message, Contains("PENDING_TAKEOVER_MS") && Contains("PUBLISH_TIMEOUT_MS") &&
                            Contains("never taken over") && Contains("40000"));
  }
  SECTION("one millisecond short") {
    auto config = reader(
        with(minimal(), {{"PUBLISH_TIMEOUT_MS", "4000"}, {"PENDING_TAKEOVER_MS", "7999"}}));
    (void)gw::read_gateway_settings(config);
    CHECK_THAT(finish_message(config), Contains("PENDING_TAKEOVER_MS"));
  }
  SECTION("exactly twice is enough") {
    auto config = reader(
        with(minimal(), {{"PUBLISH_TIMEOUT_MS", "4000"}, {"PENDING_TAKEOVER_MS", "8000"}}));
    const auto settings = gw::read_gateway_settings(config);
    CHECK(finish_message(config).empty());
    CHECK(settings.ledger.pending_takeover == 8000ms);
  }
}

TEST_CASE("gateway_settings: the pool holds every writer and worker", "[gateway_settings]") {
  SECTION("unset pool is sized from writers and workers") {
    auto config = reader(
        with(minimal(), {{"LEDGER_WRITERS", "4"}, {"HTTP_WORKER_THREADS", "6"}}));
    const auto settings = gw::read_gateway_settings(config);
    REQUIRE(finish_message(config).empty());
    CHECK(settings.service.database.size == 10);
    CHECK(settings.service.server.blocking_threads == 6);
  }
  SECTION("explicit pool and workers that fit") {
    auto config = reader(with(minimal(), {{"DATABASE_POOL_SIZE", "12"},
                                          {"LEDGER_WRITERS", "4"},
                                          {"HTTP_WORKER_THREADS", "6"}}));
    const auto settings = gw::read_gateway_settings(config);
    REQUIRE(finish_message(config).empty());
    CHECK(settings.service.database.size == 12);
    CHECK(settings.service.server.blocking_threads == 6);
  }
  SECTION("explicit pool too small for explicit workers") {
    auto config = reader(with(minimal(), {{"DATABASE_POOL_SIZE", "9"},
                                          {"LEDGER_WRITERS", "4"},
                                          {"HTTP_WORKER_THREADS", "6"}}));
    (void)gw::read_gateway_settings(config);
    CHECK_THAT(finish_message(config),
               Contains("DATABASE_POOL_SIZE") && Contains("10") && Contains("got 9"));
  }
  SECTION("explicit pool without workers: the workers get what the writers leave") {
    auto config =
        reader(with(minimal(), {{"DATABASE_POOL_SIZE", "8"}, {"LEDGER_WRITERS", "3"}}));
    const auto settings = gw::read_gateway_settings(config);
    REQUIRE(finish_message(config).empty());
    CHECK(settings.service.database.size == 8);
    CHECK(settings.service.server.blocking_threads == 5);
  }
  SECTION("explicit pool that leaves no connection for the workers") {
    auto config =
        reader(with(minimal(), {{"DATABASE_POOL_SIZE", "2"}, {"LEDGER_WRITERS", "2"}}));
    (void)gw::read_gateway_settings(config);
    CHECK_THAT(finish_message(config), Contains("DATABASE_POOL_SIZE") && Contains("got 2"));
  }
}

TEST_CASE("gateway_settings: RABBITMQ_URL may list a cluster's nodes", "[gateway_settings]") {
  SECTION("a list is kept in order and printed without passwords") {
    auto config = reader(with(
        minimal(), {{"RABBITMQ_URL", "amqp://u:pw1@n1:5701/%2f, amqp://u:pw2@n2:5702/%2f"}}));
    const auto settings = gw::read_gateway_settings(config);
    REQUIRE(finish_message(config).empty());
    CHECK(settings.amqp.url == "amqp://u:pw1@n1:5701/%2f,amqp://u:pw2@n2:5702/%2f");
    CHECK(settings.publisher.connection.url == settings.amqp.url);
    CHECK(config.effective_line().find("pw1") == std::string::npos);
    CHECK(config.effective_line().find("pw2") == std::string::npos);
  }
  SECTION("a bad address is named by position, its password masked") {
    auto config = reader(with(
        minimal(), {{"RABBITMQ_URL", "amqp://u:pw1@n1:5701/%2f,http://u:secretpw@n2:5702"}}));
    (void)gw::read_gateway_settings(config);
    const auto message = finish_message(config);
    CHECK_THAT(message, Contains("RABBITMQ_URL") && Contains("address 2 of 2"));
    CHECK(message.find("secretpw") == std::string::npos);
  }
}
