#pragma once

// Shared helpers of the PostgreSQL integration tests: the cluster scripts/test started
// (its URL and pg_ctl), a schema of its own per test, and one-statement queries for
// assertions made independently of the code under test. Everything here blocks; call it
// from the test thread.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace notifs::pg_test {

// NOTIFS_TEST_DATABASE_URL, e.g. postgresql://postgres@127.0.0.1:PORT/notifs_test. FAILs
// the test (saying how to get it) when unset.
std::string database_url();

// `url` with libpq's `options=-csearch_path%3D<schema>` added as a query parameter
// (joined with '?' or '&' as the URL needs), so every connection opened with it works in
// `schema`. The schema name must be a plain identifier ([a-z0-9_]).
std::string url_with_search_path(const std::string& url, const std::string& schema);

// A schema of its own for one test: created (empty) in the constructor under a unique
// name "t_<hex>", dropped with everything in it (CASCADE) in the destructor. Connections
// opened with url() create and find their tables there.
class TestSchema {
 public:
  TestSchema();
  ~TestSchema();  // best effort, never throws
  TestSchema(const TestSchema&) = delete;
  TestSchema& operator=(const TestSchema&) = delete;

  const std::string& name() const { return name_; }
  // database_url() with search_path set to this schema.
  const std::string& url() const { return url_; }

  // Runs one statement (no parameters) in this schema on a connection of its own and
  // returns the first column of the first row as text ("" when there is no row, "NULL"
  // never: a NULL comes back as ""). For assertions: SELECT count(*) FROM users.
  std::string query_value(const std::string& sql) const;
  // Every row's first column, as text.
  std::vector<std::string> query_column(const std::string& sql) const;
  // Runs statements for setup; throws what pqxx throws.
  void exec(const std::string& sql) const;

 private:
  std::string name_;
  std::string url_;
};

// Runs one statement on a fresh connection to `url` and returns the first column of the
// first row as text ("" when there is no row or the value is NULL). Throws pqxx errors.
std::string query_value(const std::string& url, const std::string& sql);

// Restarts the test cluster (`$NOTIFS_TEST_PG_CTL restart -m fast`: every connection is
// cut) and returns once a new connection to database_url() succeeds. FAILs the test when
// the restart fails or the server is not back within `timeout`.
void restart_postgres(std::chrono::seconds timeout = std::chrono::seconds{60});

// Polls `condition` every `poll` until it is true or `timeout` passed; returns the last
// result. Bounded: never waits longer than timeout + one poll.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds{20});

}  // namespace notifs::pg_test
