#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"

#include <array>
#include <chrono>
#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <prometheus/registry.h>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/database_service.hpp"

namespace http = notifs::messaging::http;
namespace runtime = notifs::runtime;
namespace storage = notifs::storage;
namespace pg_test = notifs::pg_test;
using notifs::tests::make_request;
using notifs::tests::round_trip;
using namespace std::chrono_literals;

namespace {

// One migration that creates a table and a row: applying it twice would fail on the
// primary key, so a second start proves it ran once.
const std::array<storage::Migration, 1> kMigrations{storage::Migration{
    1, "create_things",
    "CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL);\n"
    "INSERT INTO things (id, name) VALUES (1, 'one');\n"}};

runtime::DatabaseServiceSettings settings_for(const std::string& url) {
  runtime::DatabaseServiceSettings settings;
  settings.server.service_name = "runtime_test";
  settings.server.address = "127.0.0.1";
  settings.server.port = 0;
  settings.server.io_threads = 1;
  settings.server.blocking_threads = 2;
  settings.server.shutdown_grace = 2000ms;
  settings.database.url = url;
  settings.database.size = 2;
  settings.database.application_name = "runtime_test";
  settings.database.statement_timeout = 300ms;
  settings.startup_timeout = 20000ms;
  return settings;
}

// GET /things/{id} reads a row; GET /sleep runs past the statement timeout.
http::Router thing_routes(runtime::DatabaseService& service) {
  http::Router router;
  router.add(
      http::Method::get, "/things/{id}",
      [&service](const http::Request& request) {
        const std::string id(request.path_param("id"));
        const auto name = service.pool().run([&](pqxx::connection_base& connection) {
          pqxx::read_transaction tx(connection);
          const auto rows = tx.exec_params("SELECT name FROM things WHERE id = $1::integer", id);
          return rows.empty() ? std::optional<std::string>()
                              : std::optional<std::string>(rows[0][0].as<std::string>());
        });
        if (!name) {
          throw http::HttpError(404, "thing_not_found", "no such thing");
        }
        return http::ok_response(200, {{"id", id}, {"name", *name}});
      },
      http::Execution::blocking);
  router.add(
      http::Method::get, "/sleep",
      [&service](const http::Request&) {
        service.pool().run([](pqxx::connection_base& connection) {
          pqxx::read_transaction tx(connection);
          tx.exec("SELECT pg_sleep(5)");
        });
        return http::ok_response(200, nullptr);
      },
      http::Execution::blocking);
  return router;
}

std::string bearer(const std::string& token) { return "Bearer " + token; }

}  // namespace

TEST_CASE("runtime: DatabaseService migrates once, serves queries and reports ready",
          "[runtime][database_service][integration]") {
  pg_test::TestSchema schema;
  auto registry = std::make_shared<prometheus::Registry>();
  {
    runtime::DatabaseService service(settings_for(schema.url()), registry, kMigrations,
                                     "runtime_test");
    CHECK(service.port() == 0);
    service.start(thing_routes(service));
    REQUIRE(service.port() != 0);
    CHECK(service.registry() == registry);

    auto response = round_trip(service.port(), make_request("GET", "/things/1"));
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->json()["data"]["name"] == "one");

    response = round_trip(service.port(), make_request("GET", "/things/2"));
    REQUIRE(response);
    CHECK(response->status == 404);
    CHECK(response->json()["error"]["code"] == "thing_not_found");

    response = round_trip(service.port(), make_request("GET", "/ready"));
    REQUIRE(response);
    CHECK(response->status == 200);
    const auto dependencies = response->json()["data"]["dependencies"];
    REQUIRE(dependencies.size() == 1);
    CHECK(dependencies[0]["name"] == "postgres");
    CHECK(dependencies[0]["state"] == "up");

    // The pool's metrics land in the registry the service was given.
    response = round_trip(service.port(), make_request("GET", "/metrics"));
    REQUIRE(response);
    CHECK(response->status == 200);
    CHECK(response->body.find("notifs_db_connections_open{pool=\"postgres\"}") !=
          std::string::npos);

    service.stop();
    service.stop();  // idempotent; the destructor stops once more
  }
  CHECK(schema.query_value("SELECT count(*) FROM schema_migrations") == "1");

  // A second start on the same schema finds nothing to do (the INSERT would collide).
  runtime::DatabaseService again(settings_for(schema.url()), registry, kMigrations,
                                 "runtime_test");
  again.start(thing_routes(again));
  const auto response = round_trip(again.port(), make_request("GET", "/things/1"));
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(schema.query_value("SELECT count(*) FROM things") == "1");
}

TEST_CASE("runtime: DatabaseService requires the service token on routes, not on /health",
          "[runtime][database_service][integration]") {
  pg_test::TestSchema schema;
  auto settings = settings_for(schema.url());
  settings.service_token = "integration-token";
  runtime::DatabaseService service(settings, std::make_shared<prometheus::Registry>(),
                                   kMigrations, "runtime_test");
  service.start(thing_routes(service));

  auto response = round_trip(service.port(), make_request("GET", "/things/1"));
  REQUIRE(response);
  CHECK(response->status == 401);
  CHECK(response->header("WWW-Authenticate") == "Bearer");
  CHECK(response->json()["error"]["code"] == "unauthorized");
  CHECK_FALSE(response->header("X-Request-ID").empty());

  response = round_trip(service.port(), make_request("GET", "/things/1",
                                                     {{"Authorization", bearer("wrong")}}));
  REQUIRE(response);
  CHECK(response->status == 401);

  response = round_trip(service.port(),
                        make_request("GET", "/things/1",
                                     {{"Authorization", bearer("integration-token")}}));
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->json()["data"]["name"] == "one");

  for (const char* open : {"/health", "/ready", "/metrics"}) {
    CAPTURE(open);
    response = round_trip(service.port(), make_request("GET", open));
    REQUIRE(response);
    CHECK(response->status == 200);
  }
}

TEST_CASE("runtime: A statement past its timeout is answered 503 database_unavailable",
          "[runtime][database_service][integration]") {
  pg_test::TestSchema schema;
  runtime::DatabaseService service(settings_for(schema.url()),
                                   std::make_shared<prometheus::Registry>(), kMigrations,
                                   "runtime_test");
  service.start(thing_routes(service));
  auto response = round_trip(service.port(), make_request("GET", "/sleep"));
  REQUIRE(response);
  CHECK(response->status == 503);
  CHECK(response->header("Retry-After") == "1");
  CHECK(response->json()["error"]["code"] == "database_unavailable");

  // The pool is still good afterwards.
  response = round_trip(service.port(), make_request("GET", "/things/1"));
  REQUIRE(response);
  CHECK(response->status == 200);
}

TEST_CASE("runtime: DatabaseService gives up on an unreachable database after startup_timeout",
          "[runtime][database_service][integration]") {
  // A port that was free a moment ago: connections to it are refused at once, so the
  // time spent is the retry loop's own.
  std::uint16_t closed_port = 0;
  {
    notifs::tests::asio::io_context ioc;
    notifs::tests::tcp::acceptor acceptor(
        ioc, notifs::tests::tcp::endpoint(notifs::tests::asio::ip::address_v4::loopback(), 0));
    closed_port = acceptor.local_endpoint().port();
  }
  auto settings =
      settings_for("postgresql://postgres@127.0.0.1:" + std::to_string(closed_port) + "/nothing");
  settings.startup_timeout = 1000ms;
  settings.database.connect_timeout = 500ms;
  runtime::DatabaseService service(settings, std::make_shared<prometheus::Registry>(),
                                   kMigrations, "runtime_test");

  const auto started = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(service.start(http::Router()), storage::StorageUnavailable);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  // About the timeout: not given up early, and not stuck far past it (generous upper
  // bound for a loaded 2-core machine).
  CHECK(elapsed >= 1000ms);
  CHECK(elapsed < 6000ms);
  CHECK(service.port() == 0);
  service.stop();  // nothing to stop; must not throw
}
