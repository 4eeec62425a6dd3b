#include "integration/pg_test_support.hpp"

#include "integration/test_process.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>

namespace notifs::pg_test {

using test_support::require_env;
using test_support::shell_quote;

namespace {

std::string random_schema_name() {
  std::random_device device;
  std::uniform_int_distribution<std::uint64_t> dist;
  std::ostringstream out;
  out << "t_" << std::hex << dist(device);
  return out.str();
}

}  // namespace

std::string database_url() { return require_env("NOTIFS_TEST_DATABASE_URL"); }

std::string url_with_search_path(const std::string& url, const std::string& schema) {
  // A fragment cannot occur in a libpq URL, so the query string is everything after '?'.
  const bool has_query = url.find('?') != std::string::npos;
  std::string joined = url;
  if (has_query) {
    if (joined.back() != '?' && joined.back() != '&') joined += '&';
  } else {
    joined += '?';
  }
  // "-c search_path=<schema>" percent-encoded: libpq decodes the value before passing it
  // to the server as command-line options.
  return joined + "options=-csearch_path%3D" + schema;
}

std::string query_value(const std::string& url, const std::string& sql) {
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  const pqxx::result rows = tx.exec(sql);
  if (rows.empty() || rows[0].empty() || rows[0][0].is_null()) return {};
  return rows[0][0].c_str();
}

TestSchema::TestSchema() : name_(random_schema_name()) {
  const std::string base = database_url();
  pqxx::connection connection(base);
  pqxx::nontransaction tx(connection);
  tx.exec("CREATE SCHEMA " + tx.quote_name(name_));
  url_ = url_with_search_path(base, name_);
}

TestSchema::~TestSchema() {
  try {
    pqxx::connection connection(database_url());
    pqxx::nontransaction tx(connection);
    tx.exec("DROP SCHEMA IF EXISTS " + tx.quote_name(name_) + " CASCADE");
  } catch (...) {
    // A schema left behind dies with the throwaway cluster; a destructor must not throw.
  }
}

std::string TestSchema::query_value(const std::string& sql) const {
  return pg_test::query_value(url_, sql);
}

std::vector<std::string> TestSchema::query_column(const std::string& sql) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  std::vector<std::string> values;
  for (const auto& row : tx.exec(sql)) {
    values.emplace_back(row[0].is_null() ? "" : row[0].c_str());
  }
  return values;
}

void TestSchema::exec(const std::string& sql) const {
  pqxx::connection connection(url_);
  pqxx::nontransaction tx(connection);
  tx.exec(sql);
}

void restart_postgres(std::chrono::seconds timeout) {
  const std::string pg_ctl = require_env("NOTIFS_TEST_PG_CTL");
  const std::string url = database_url();
  // The wrapper scripts/test wrote already runs pg_ctl as the cluster's owner with its
  // data folder and log file; the port lives in postgresql.conf, so it is unchanged.
  const auto result = test_support::run_command(shell_quote(pg_ctl) + " restart -m fast -w -t " +
                                                std::to_string(timeout.count()) + " 2>&1");
  if (result.exit_code != 0) {
    FAIL("pg_ctl restart exited with " << result.exit_code << ": " << result.output);
  }
  // pg_ctl -w waits for the server to accept connections; a real connection to the test
  // database is the proof the tests need.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      pqxx::connection connection(url);
      pqxx::nontransaction tx(connection);
      tx.exec("SELECT 1");
      return;
    } catch (const std::exception& error) {
      last_error = error.what();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  FAIL("PostgreSQL did not accept connections within " << timeout.count()
                                                       << " s of a restart: " << last_error);
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

}  // namespace notifs::pg_test
