// The gateway ledger's schema against the real server: the database itself enforces the
// idempotency key (per API key) and the status vocabulary, so no code path can store two
// notifications for one request_id or a status the contract doesn't know.
#include <catch2/catch.hpp>

#include <string>

#include <pqxx/pqxx>

#include "integration/pg_test_support.hpp"
#include "gateway_migrations.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace {

namespace pg_test = notifs::pg_test;

std::string insert(const std::string& id, const std::string& key, const std::string& request_id,
                   const std::string& status = "pending") {
  return "INSERT INTO notifications (notification_id, api_key_id, request_id, fingerprint, "
         "user_id, notification_type, template_code, priority, status) VALUES ('" +
         id + "', '" + key + "', '" + request_id +
         "', 'f', '6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f', 'email', 'welcome_email', 5, '" +
         status + "')";
}

}  // namespace

TEST_CASE("api_gateway ledger: one row per (api key, request_id), and known statuses only",
          "[api_gateway][ledger][pg]") {
  const pg_test::TestSchema schema;
  notifs::storage::PgPoolSettings settings;
  settings.url = schema.url();
  settings.size = 1;
  notifs::storage::PgPool pool(settings, nullptr);
  const auto report =
      notifs::storage::apply_migrations(pool, notifs::api_gateway::migrations(), "api_gateway");
  REQUIRE(report.current_version >= 1);

  schema.exec(insert("00000000-0000-4000-8000-000000000001", "key-a", "order-1"));
  // The same request_id under another API key is another notification.
  schema.exec(insert("00000000-0000-4000-8000-000000000002", "key-b", "order-1"));
  CHECK_THROWS_AS(schema.exec(insert("00000000-0000-4000-8000-000000000003", "key-a", "order-1")),
                  pqxx::unique_violation);
  CHECK_THROWS_AS(
      schema.exec(insert("00000000-0000-4000-8000-000000000004", "key-a", "order-2", "sent")),
      pqxx::check_violation);
  CHECK_THROWS_AS(schema.exec(insert("00000000-0000-4000-8000-000000000005", "key-a",
                                     std::string(129, 'x'))),
                  pqxx::check_violation);
  CHECK(schema.query_value("SELECT count(*) FROM notifications") == "2");
}
