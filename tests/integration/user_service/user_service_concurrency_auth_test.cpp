// user_service under concurrent duplicate creates, with SERVICE_TOKEN auth, and across a
// PostgreSQL restart.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/user_service/user_service_support.hpp"

using nlohmann::json;
using notifs::user_service_test::UserServiceFixture;

TEST_CASE("user_service: concurrent creates with one email: one 201, the rest 409",
          "[user_service]") {
  UserServiceFixture service;
  constexpr int kThreads = 8;
  // Several rounds: one round rarely lines the inserts up closely enough to collide.
  for (int round = 0; round < 5; ++round) {
    const std::string email = "race" + std::to_string(round) + "@example.com";
    std::atomic<int> ready{0};
    std::vector<unsigned> statuses(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        // Same address in a different case per thread: uniqueness is case-insensitive.
        std::string variant = email;
        if (i % 2 == 1) {
          variant[0] = 'R';
        }
        const auto request = notifs::tests::json_post(
            "/api/v1/users",
            json{{"name", "Racer " + std::to_string(i)}, {"email", variant}}.dump());
        notifs::tests::RawClient client(service.port());
        ++ready;
        while (ready.load() < kThreads) {
          std::this_thread::yield();
        }
        if (client.send(request)) {
          if (const auto response = client.read()) {
            statuses[static_cast<std::size_t>(i)] = response->status;
          }
        }
      });
    }
    for (auto& thread : threads) {
      thread.join();
    }
    int created = 0;
    int conflicts = 0;
    for (const auto status : statuses) {
      created += status == 201 ? 1 : 0;
      conflicts += status == 409 ? 1 : 0;
    }
    INFO("round " << round);
    CHECK(created == 1);
    CHECK(conflicts == kThreads - 1);
    CHECK(service.schema().query_value("SELECT count(*) FROM users WHERE lower(email) = '" + email +
                                       "'") == "1");
  }
}

TEST_CASE("user_service: SERVICE_TOKEN guards every API route but not health", "[user_service]") {
  UserServiceFixture service("s3cret-token");

  auto response = service.request("GET", "/api/v1/users", {}, {}, false);
  REQUIRE(response.status == 401);
  CHECK(response.json()["error"]["code"] == "unauthorized");

  response =
      service.request("GET", "/api/v1/users", {}, {{"Authorization", "Bearer wrong"}}, false);
  CHECK(response.status == 401);
  response = service.request("POST", "/api/v1/users", R"({"name":"A","email":"a@example.com"})",
                             {{"Authorization", "Bearer s3cret-token-but-longer"}}, false);
  CHECK(response.status == 401);
  response = service.request("GET", "/api/v1/users/00000000-0000-4000-8000-000000000000", {},
                             {{"Authorization", "Basic s3cret-token"}}, false);
  CHECK(response.status == 401);
  CHECK(service.schema().query_value("SELECT count(*) FROM users") == "0");

  // With the token (request() presents it).
  const auto user = service.create_user("Authorized", "auth@example.com");
  response = service.get("/api/v1/users/" + user["id"].get<std::string>());
  CHECK(response.status == 200);
  CHECK(service.get("/api/v1/users").status == 200);

  CHECK(service.request("GET", "/health", {}, {}, false).status == 200);
  CHECK(service.request("GET", "/ready", {}, {}, false).status == 200);
}

TEST_CASE("user_service: the first requests after a PostgreSQL restart succeed",
          "[user_service][recovery]") {
  UserServiceFixture service;
  const auto user = service.create_user("Before", "before@example.com");
  const std::string path = "/api/v1/users/" + user["id"].get<std::string>();
  // Requests in parallel, so that several pooled connections are open (and prepared)
  // when the restart cuts them all.
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < 5; ++j) {
        if (const auto response =
                notifs::tests::round_trip(service.port(), notifs::tests::make_request("GET", path));
            response && response->status == 200) {
          ++ok;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  REQUIRE(ok == 20);

  notifs::pg_test::restart_postgres();

  const auto fetched = service.get(path);
  INFO(fetched.body);
  REQUIRE(fetched.status == 200);
  CHECK(fetched.json()["data"] == user);
  const auto created =
      service.post("/api/v1/users", {{"name", "After"}, {"email", "after@example.com"}});
  INFO(created.body);
  REQUIRE(created.status == 201);
  CHECK(service.get("/api/v1/users").json()["meta"]["total"] == 2);
}
