#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/router.hpp"
#include "notifs/runtime/service_auth.hpp"

namespace http = notifs::messaging::http;
namespace runtime = notifs::runtime;
using http::Method;

namespace {

http::Request with_authorization(std::string value) {
  http::Request request;
  request.headers.set("Authorization", std::move(value));
  return request;
}

// The session's side of a Responder: keeps what the route answered.
class RecordingSink final : public http::detail::ResponseSink {
 public:
  void deliver(http::Response response) override { responses.push_back(std::move(response)); }
  std::vector<http::Response> responses;
};

struct Outcome {
  http::Response response;
  int handler_calls = 0;
};

// A router whose only route counts its calls, guarded by `token`; one request through
// the matched route the way the server runs it.
Outcome call(const std::string& token, std::optional<std::string> authorization,
             Method method = Method::get) {
  auto calls = std::make_shared<int>(0);
  http::Router router;
  router.add(Method::get, "/api/v1/users/{id}", [calls](const http::Request& request) {
    ++*calls;
    return http::ok_response(200, {{"id", std::string(request.path_param("id"))}});
  });
  router.add(
      Method::post, "/api/v1/users",
      [calls](const http::Request&) {
        ++*calls;
        return http::ok_response(201, nlohmann::json::object());
      },
      http::Execution::blocking);
  runtime::require_service_token(router, token);

  const std::string path = method == Method::get ? "/api/v1/users/42" : "/api/v1/users";
  const auto match = router.match(method, path);
  REQUIRE(match.kind == http::Router::MatchKind::found);
  http::Request request;
  request.method = method;
  request.path = path;
  request.path_params = match.params;
  if (authorization) {
    request.headers.set("Authorization", *authorization);
  }
  auto sink = std::make_shared<RecordingSink>();
  match.route->handler(std::move(request), http::Responder(sink));
  REQUIRE(sink->responses.size() == 1);
  return Outcome{sink->responses.front(), *calls};
}

}  // namespace

TEST_CASE("runtime: bearer_token extracts the credential of a Bearer Authorization header",
          "[runtime][auth]") {
  CHECK(runtime::bearer_token(with_authorization("Bearer abc.def-1")) == "abc.def-1");
  CHECK(runtime::bearer_token(with_authorization("bearer abc")) == "abc");
  CHECK(runtime::bearer_token(with_authorization("BEARER   abc  ")) == "abc");
  CHECK(runtime::bearer_token(with_authorization("\tBearer\tabc")) == "abc");
  CHECK(runtime::bearer_token(with_authorization("Bearer dG9rZW4=")) == "dG9rZW4=");

  CHECK_FALSE(runtime::bearer_token(http::Request{}));
  CHECK_FALSE(runtime::bearer_token(with_authorization("")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Bearer")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Bearer    ")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Bearerabc")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Basic dXNlcjpwYXNz")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Token abc")));
  CHECK_FALSE(runtime::bearer_token(with_authorization("Bearer abc def")));
}

TEST_CASE("runtime: constant_time_equals is plain equality on its results", "[runtime][auth]") {
  CHECK(runtime::constant_time_equals("", ""));
  CHECK(runtime::constant_time_equals("secret-token", "secret-token"));
  CHECK_FALSE(runtime::constant_time_equals("secret-token", "secret-tokeN"));
  CHECK_FALSE(runtime::constant_time_equals("secret-token", "Secret-token"));
  CHECK_FALSE(runtime::constant_time_equals("secret-token", "secret-toke"));
  CHECK_FALSE(runtime::constant_time_equals("secret-token", "secret-token "));
  CHECK_FALSE(runtime::constant_time_equals("", "x"));
  CHECK_FALSE(runtime::constant_time_equals("x", ""));
  // Embedded NULs count like any other byte.
  using namespace std::string_view_literals;
  CHECK_FALSE(runtime::constant_time_equals("ab\0c"sv, "ab\0d"sv));
  CHECK(runtime::constant_time_equals("ab\0c"sv, "ab\0c"sv));
  const std::string long_a(100000, 'a');
  std::string long_b = long_a;
  CHECK(runtime::constant_time_equals(long_a, long_b));
  long_b.back() = 'b';
  CHECK_FALSE(runtime::constant_time_equals(long_a, long_b));
}

TEST_CASE("runtime: The service token guard answers 401 without the right token",
          "[runtime][auth]") {
  SECTION("no Authorization header") {
    const auto outcome = call("s3cret", std::nullopt);
    CHECK(outcome.handler_calls == 0);
    CHECK(outcome.response.status == 401);
    CHECK(outcome.response.headers.get("WWW-Authenticate") == "Bearer");
    const auto body = nlohmann::json::parse(outcome.response.body);
    CHECK(body["success"] == false);
    CHECK(body["data"].is_null());
    CHECK(body["error"]["code"] == "unauthorized");
    CHECK(body["message"].get<std::string>().find("s3cret") == std::string::npos);
  }
  SECTION("a wrong token") {
    const auto outcome = call("s3cret", "Bearer s3cre");
    CHECK(outcome.handler_calls == 0);
    CHECK(outcome.response.status == 401);
    CHECK(outcome.response.headers.get("WWW-Authenticate") ==
          std::optional<std::string_view>("Bearer error=\"invalid_token\""));
    CHECK(nlohmann::json::parse(outcome.response.body)["error"]["code"] == "unauthorized");
  }
  SECTION("the right token in another scheme") {
    const auto outcome = call("s3cret", "Basic s3cret");
    CHECK(outcome.handler_calls == 0);
    CHECK(outcome.response.status == 401);
  }
  SECTION("a blocking route is guarded too, before it reaches the worker pool") {
    const auto outcome = call("s3cret", "Bearer wrong", Method::post);
    CHECK(outcome.handler_calls == 0);
    CHECK(outcome.response.status == 401);
  }
}

TEST_CASE("runtime: The service token guard lets the right token through", "[runtime][auth]") {
  auto outcome = call("s3cret", "Bearer s3cret");
  CHECK(outcome.handler_calls == 1);
  CHECK(outcome.response.status == 200);
  CHECK(nlohmann::json::parse(outcome.response.body)["data"]["id"] == "42");
  CHECK_FALSE(outcome.response.headers.contains("WWW-Authenticate"));

  outcome = call("s3cret", "bearer s3cret", Method::post);
  CHECK(outcome.handler_calls == 1);
  CHECK(outcome.response.status == 201);
}

TEST_CASE("runtime: An empty service token leaves the router open", "[runtime][auth]") {
  auto outcome = call("", std::nullopt);
  CHECK(outcome.handler_calls == 1);
  CHECK(outcome.response.status == 200);
  outcome = call("", "Bearer anything");
  CHECK(outcome.handler_calls == 1);
}

TEST_CASE("runtime: The guard skips routes added as open, and only those", "[runtime][auth]") {
  // The server registers its /health, /ready and /metrics this way.
  http::Router router;
  for (const char* path : {"/health", "/ready", "/metrics"}) {
    router.add(
        Method::get, path, [](const http::Request&) { return http::ok_response(200, {}); },
        http::Execution::io, http::Access::open);
  }
  router.add(Method::get, "/healthz", [](const http::Request&) {
    return http::ok_response(200, {});
  });
  router.add(Method::post, "/health", [](const http::Request&) {
    return http::ok_response(200, {});
  });
  runtime::require_service_token(router, "s3cret");

  auto status_of = [&router](Method method, std::string path) {
    const auto match = router.match(method, path);
    REQUIRE(match.kind == http::Router::MatchKind::found);
    http::Request request;
    request.method = method;
    request.path = std::move(path);
    auto sink = std::make_shared<RecordingSink>();
    match.route->handler(std::move(request), http::Responder(sink));
    REQUIRE(sink->responses.size() == 1);
    return sink->responses.front().status;
  };
  CHECK(status_of(Method::get, "/health") == 200);
  CHECK(status_of(Method::get, "/health/") == 200);
  CHECK(status_of(Method::head, "/health") == 200);
  CHECK(status_of(Method::get, "/ready") == 200);
  CHECK(status_of(Method::get, "/metrics") == 200);
  // A guarded route on a similar path, or another method on an open path, stays closed.
  CHECK(status_of(Method::get, "/healthz") == 401);
  CHECK(status_of(Method::post, "/health") == 401);
}
