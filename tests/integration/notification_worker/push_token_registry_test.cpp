// PushTokenRegistry against the real user_service (in-process, its own schema, service token
// on): removal of an unregistered device token, the answers that count as "gone", and an
// outage. A scripted upstream shows the exact request and a 404 that is not user_service's.

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "fakes/scripted_http_server.hpp"
#include "integration/user_service/user_service_support.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "push_token_registry.hpp"

namespace {

namespace http = notifs::messaging::http;
using nlohmann::json;
using notifs::fakes::Reaction;
using notifs::fakes::ScriptedHttpServer;
using notifs::user_service_test::UserServiceFixture;
using notifs::worker::PushTokenRegistry;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kServiceToken = "worker-test-service-token";
// An FCM-like token with the characters a path must not carry as they are.
constexpr const char* kOddToken = "fcm:APA91b/abc%2Fdef+x=?#\xc3\xa9";

http::ServiceClientSettings client_settings(const std::string& base_url,
                                            std::string token = kServiceToken) {
  http::ServiceClientSettings settings;
  settings.name = "user_service";
  settings.base_url = base_url;
  settings.service_token = std::move(token);
  settings.connect_timeout = 1000ms;
  settings.attempt_timeout = 1000ms;
  settings.deadline = 3000ms;
  settings.max_attempts = 3;
  settings.backoff = {5ms, 20ms, 2.0};
  return settings;
}

std::string url_of(const UserServiceFixture& users) {
  return "http://127.0.0.1:" + std::to_string(users.port());
}

// The registry's answer; FAILs when none comes within 20 s.
bool remove_now(PushTokenRegistry& registry, const std::string& user_id, const std::string& token) {
  auto promise = std::make_shared<std::promise<bool>>();
  auto future = promise->get_future();
  registry.remove(user_id, token, [promise](bool removed) { promise->set_value(removed); });
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  return future.get();
}

std::vector<std::string> tokens_of(UserServiceFixture& users, const std::string& id) {
  const auto response = users.get("/api/v1/users/" + id);
  INFO(response.body);
  REQUIRE(response.status == 200);
  return response.json()["data"]["push_tokens"].get<std::vector<std::string>>();
}

}  // namespace

TEST_CASE("worker push tokens: removing one of two tokens leaves the other",
          "[worker][push_tokens]") {
  UserServiceFixture users(kServiceToken);
  const auto user =
      users.create_user("Ada", "ada-tokens@example.com", {{"push_tokens", {kOddToken, "tok-2"}}});
  const auto id = user["id"].get<std::string>();
  REQUIRE(tokens_of(users, id).size() == 2);

  http::ServiceClient client(client_settings(url_of(users)));
  PushTokenRegistry registry(client);
  CHECK(remove_now(registry, id, kOddToken));
  CHECK(tokens_of(users, id) == std::vector<std::string>{"tok-2"});

  CHECK(remove_now(registry, id, "tok-2"));
  CHECK(tokens_of(users, id).empty());
}

TEST_CASE("worker push tokens: a token or user already gone counts as removed",
          "[worker][push_tokens]") {
  UserServiceFixture users(kServiceToken);
  const auto id =
      users.create_user("Bob", "bob-tokens@example.com", {{"push_tokens", {"tok-1"}}})["id"]
          .get<std::string>();
  http::ServiceClient client(client_settings(url_of(users)));
  PushTokenRegistry registry(client);

  CHECK(remove_now(registry, id, "never-registered"));
  CHECK(tokens_of(users, id) == std::vector<std::string>{"tok-1"});
  CHECK(remove_now(registry, "0f0e0d0c-0b0a-4908-8706-050403020100", "tok-1"));  // no such user
  CHECK(remove_now(registry, id, "tok-1"));
  CHECK(remove_now(registry, id, "tok-1"));  // twice: already gone
  CHECK(tokens_of(users, id).empty());
}

TEST_CASE("worker push tokens: refused credentials are not a removal", "[worker][push_tokens]") {
  UserServiceFixture users(kServiceToken);
  const auto id =
      users.create_user("Cy", "cy-tokens@example.com", {{"push_tokens", {"tok-1"}}})["id"]
          .get<std::string>();
  http::ServiceClient client(client_settings(url_of(users), "not-the-service-token"));
  PushTokenRegistry registry(client);

  CHECK_FALSE(remove_now(registry, id, "tok-1"));
  CHECK(tokens_of(users, id) == std::vector<std::string>{"tok-1"});
}

TEST_CASE("worker push tokens: user_service stopped means not removed, without a hang",
          "[worker][push_tokens]") {
  UserServiceFixture users(kServiceToken);
  const auto port = users.port();
  users.stop();
  http::ServiceClient client(client_settings("http://127.0.0.1:" + std::to_string(port)));
  PushTokenRegistry registry(client);

  const auto started = SteadyClock::now();
  CHECK_FALSE(remove_now(registry, "0f0e0d0c-0b0a-4908-8706-050403020100", "tok-1"));
  // Usually three refused connects at once; but on a busy machine another test's server
  // may already listen on the freed port and never answer this request. Either way the
  // call ends by its 3 s deadline: no hang.
  CHECK(SteadyClock::now() - started < 5000ms);
}

TEST_CASE(
    "worker push tokens: the request names user and token encoded, and only "
    "user_service's own 404 means gone",
    "[worker][push_tokens]") {
  ScriptedHttpServer upstream;
  http::ServiceClient client(client_settings(upstream.url()));
  PushTokenRegistry registry(client);
  const std::string id = "0f0e0d0c-0b0a-4908-8706-050403020100";

  upstream.respond(200, R"({"success": true, "data": {"id": "x", "push_tokens": []}})");
  CHECK(remove_now(registry, id, kOddToken));
  const auto requests = upstream.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "DELETE");
  CHECK(requests[0].target ==
        "/api/v1/users/" + id + "/push_tokens/fcm%3AAPA91b%2Fabc%252Fdef%2Bx%3D%3F%23%C3%A9");
  CHECK(requests[0].headers.get("Authorization") == std::string("Bearer ") + kServiceToken);

  upstream.respond(404, R"({"success": false, "error": {"code": "push_token_not_found"}})");
  CHECK(remove_now(registry, id, "a"));
  upstream.respond(404, R"({"success": false, "error": {"code": "user_not_found"}})");
  CHECK(remove_now(registry, id, "a"));
  // A 404 from something that is not user_service (a wrong base URL) removed nothing.
  upstream.respond(404, R"({"success": false, "error": {"code": "route_not_found"}})");
  CHECK_FALSE(remove_now(registry, id, "a"));
  upstream.respond(404, "<html>Not Found</html>");
  CHECK_FALSE(remove_now(registry, id, "a"));
  upstream.respond(400, R"({"success": false, "error": {"code": "validation_failed"}})");
  CHECK_FALSE(remove_now(registry, id, "a"));

  // A stalled upstream ends at the client's deadline with "not removed".
  upstream.set_default(Reaction::respond(200).after(10s));
  const auto started = SteadyClock::now();
  CHECK_FALSE(remove_now(registry, id, "a"));
  CHECK(SteadyClock::now() - started < 6s);
}
