#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/router.hpp"

namespace http = notifs::messaging::http;
using http::Method;
using MatchKind = http::Router::MatchKind;

namespace {

// The session's side of a Responder, recording what reaches it.
class RecordingSink final : public http::detail::ResponseSink {
 public:
  void deliver(http::Response response) override {
    ++deliveries;
    responses.push_back(std::move(response));
  }
  std::atomic<int> deliveries{0};
  std::vector<http::Response> responses;
};

http::AsyncHandler noop() {
  return [](http::Request&&, http::Responder responder) { responder.send({}); };
}

// Runs the matched route's handler the way the server does and returns what it answered.
std::shared_ptr<RecordingSink> run(const http::Router& router, Method method,
                                   std::string_view path, std::string body = {}) {
  auto sink = std::make_shared<RecordingSink>();
  const auto match = router.match(method, path);
  REQUIRE(match.kind == MatchKind::found);
  http::Request request;
  request.method = method;
  request.path = std::string(path);
  request.path_params = match.params;
  request.body = std::move(body);
  match.route->handler(std::move(request), http::Responder(sink));
  return sink;
}

nlohmann::json body_of(const http::Response& response) {
  return nlohmann::json::parse(response.body);
}

}  // namespace

TEST_CASE("Router matches literal segments and extracts parameters", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/api/v1/users/{id}/push_tokens/{token}", noop());
  router.add_async(Method::get, "/api/v1/users", noop());

  auto match = router.match(Method::get, "/api/v1/users/u-1/push_tokens/tok");
  REQUIRE(match.kind == MatchKind::found);
  CHECK(match.route->pattern == "/api/v1/users/{id}/push_tokens/{token}");
  using Params = std::vector<std::pair<std::string, std::string>>;
  CHECK(match.params == Params{{"id", "u-1"}, {"token", "tok"}});

  match = router.match(Method::get, "/api/v1/users");
  REQUIRE(match.kind == MatchKind::found);
  CHECK(match.params.empty());

  CHECK(router.match(Method::get, "/api/v1/user").kind == MatchKind::not_found);
  CHECK(router.match(Method::get, "/api/v1/users/u-1/push_tokens").kind == MatchKind::not_found);
  CHECK(router.match(Method::get, "/api/v1/users/u-1/push_tokens/a/b").kind ==
        MatchKind::not_found);
  // A parameter never matches an empty segment.
  CHECK(router.match(Method::get, "/api/v1/users//push_tokens/tok").kind == MatchKind::not_found);
  CHECK(router.match(Method::get, "/API/v1/users").kind == MatchKind::not_found);
}

TEST_CASE("Router ignores a trailing slash on paths and patterns", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/items/", noop());
  router.add_async(Method::get, "/", noop());

  CHECK(router.match(Method::get, "/items").kind == MatchKind::found);
  CHECK(router.match(Method::get, "/items/").kind == MatchKind::found);
  CHECK(router.match(Method::get, "/").kind == MatchKind::found);
  CHECK(router.match(Method::get, "/items//").kind == MatchKind::not_found);
}

TEST_CASE("Router answers 405 data: the methods the path allows, HEAD with GET", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::delete_, "/users/{id}", noop());
  router.add_async(Method::get, "/users/{id}", noop());
  router.add_async(Method::patch, "/users/{id}", noop());
  router.add_async(Method::post, "/users", noop());

  auto match = router.match(Method::put, "/users/7");
  CHECK(match.kind == MatchKind::method_not_allowed);
  CHECK(match.route == nullptr);
  CHECK(match.allowed == std::vector<Method>{Method::get, Method::head, Method::patch,
                                             Method::delete_});

  match = router.match(Method::other, "/users");
  CHECK(match.kind == MatchKind::method_not_allowed);
  CHECK(match.allowed == std::vector<Method>{Method::post});

  CHECK(router.match(Method::put, "/nothing").kind == MatchKind::not_found);
  CHECK(router.match(Method::put, "/nothing").allowed.empty());
}

TEST_CASE("HEAD uses the GET route unless a HEAD route exists", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/a", noop());
  router.add_async(Method::get, "/b", noop());
  router.add_async(Method::head, "/b", noop());
  router.add_async(Method::post, "/c", noop());

  auto match = router.match(Method::head, "/a");
  REQUIRE(match.kind == MatchKind::found);
  CHECK(match.route->method == Method::get);

  match = router.match(Method::head, "/b");
  REQUIRE(match.kind == MatchKind::found);
  CHECK(match.route->method == Method::head);

  CHECK(router.match(Method::head, "/c").kind == MatchKind::method_not_allowed);
}

TEST_CASE("A literal segment beats a parameter, whatever the order of add", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/users/{id}", noop());
  router.add_async(Method::get, "/users/me", noop());
  router.add_async(Method::get, "/{kind}/me", noop());

  CHECK(router.match(Method::get, "/users/me").route->pattern == "/users/me");
  CHECK(router.match(Method::get, "/users/42").route->pattern == "/users/{id}");
  CHECK(router.match(Method::get, "/groups/me").route->pattern == "/{kind}/me");
}

TEST_CASE("Router decodes each path segment after splitting", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/files/{name}", noop());
  router.add_async(Method::get, "/caf\xc3\xa9", noop());

  auto match = router.match(Method::get, "/files/a%20b%2Fc%25");
  REQUIRE(match.kind == MatchKind::found);
  REQUIRE(match.params.size() == 1);
  CHECK(match.params[0].second == "a b/c%");  // %2F stays inside the parameter

  CHECK(router.match(Method::get, "/caf%C3%A9").kind == MatchKind::found);
  CHECK(router.match(Method::get, "/files/bad%zz").kind == MatchKind::not_found);
  CHECK(router.match(Method::get, "/files/cut%2").kind == MatchKind::not_found);
  // '+' is a literal plus in a path (only query strings use it for space).
  CHECK(router.match(Method::get, "/files/a+b").params[0].second == "a+b");
}

TEST_CASE("Router refuses malformed patterns and duplicates", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/users/{id}", noop());
  CHECK_THROWS_AS(router.add_async(Method::get, "/users/{user_id}/", noop()),
                  std::invalid_argument);
  CHECK_NOTHROW(router.add_async(Method::put, "/users/{id}", noop()));
  CHECK_THROWS_AS(router.add_async(Method::get, "users", noop()), std::invalid_argument);
  CHECK_THROWS_AS(router.add_async(Method::get, "/a/{}", noop()), std::invalid_argument);
  CHECK_THROWS_AS(router.add_async(Method::get, "/a/{b", noop()), std::invalid_argument);
  CHECK_THROWS_AS(router.add_async(Method::get, "/a/x{b}", noop()), std::invalid_argument);
  CHECK_THROWS_AS(router.add_async(Method::get, "/a//b", noop()), std::invalid_argument);
  CHECK_THROWS_AS(router.add_async(Method::get, "/empty", http::AsyncHandler{}),
                  std::invalid_argument);
}

TEST_CASE("A moved Router keeps its routes", "[http][server][router]") {
  http::Router original;
  original.add_async(Method::get, "/x/{id}", noop());
  http::Router moved(std::move(original));
  http::Router assigned;
  assigned = std::move(moved);
  CHECK(assigned.match(Method::get, "/x/1").kind == MatchKind::found);
}

TEST_CASE("Sync handlers answer, and their exceptions become envelopes", "[http][server][router]") {
  http::Router router;
  router.add(Method::get, "/ok/{id}", [](const http::Request& request) {
    return http::ok_response(200, {{"id", std::string(request.path_param("id"))}});
  });
  router.add(Method::get, "/http-error", [](const http::Request&) -> http::Response {
    http::HttpError error(429, "rate_limited", "slow down", {{"key", "too many calls"}});
    error.headers().set("Retry-After", "3");
    throw error;
  });
  router.add(Method::get, "/bug", [](const http::Request&) -> http::Response {
    throw std::runtime_error("secret internal detail");
  });
  router.add(Method::get, "/not-std", [](const http::Request&) -> http::Response { throw 42; });

  auto sink = run(router, Method::get, "/ok/7");
  REQUIRE(sink->responses.size() == 1);
  CHECK(body_of(sink->responses[0])["data"]["id"] == "7");

  sink = run(router, Method::get, "/http-error");
  REQUIRE(sink->responses.size() == 1);
  CHECK(sink->responses[0].status == 429);
  CHECK(sink->responses[0].headers.get("Retry-After") == "3");
  CHECK(body_of(sink->responses[0])["error"]["code"] == "rate_limited");
  CHECK(body_of(sink->responses[0])["error"]["details"][0]["field"] == "key");

  sink = run(router, Method::get, "/bug");
  REQUIRE(sink->responses.size() == 1);
  CHECK(sink->responses[0].status == 500);
  CHECK(body_of(sink->responses[0])["error"]["code"] == "internal_error");
  CHECK(sink->responses[0].body.find("secret") == std::string::npos);

  sink = run(router, Method::get, "/not-std");
  REQUIRE(sink->responses.size() == 1);
  CHECK(sink->responses[0].status == 500);
}

TEST_CASE("Blocking sync handlers run on the executor the server sets", "[http][server][router]") {
  http::Router router;
  std::atomic<int> calls{0};
  router.add(
      Method::post, "/work",
      [&calls](const http::Request& request) {
        ++calls;
        return http::ok_response(200, {{"body", request.body}});
      },
      http::Execution::blocking);

  // Without a server there is no pool: the handler runs inline.
  auto sink = run(router, Method::post, "/work", "inline");
  CHECK(calls == 1);
  REQUIRE(sink->responses.size() == 1);

  std::vector<std::function<void()>> queued;
  router.set_blocking_executor([&queued](std::function<void()> task) {
    queued.push_back(std::move(task));
  });
  sink = run(router, Method::post, "/work", "queued");
  CHECK(calls == 1);  // not run on the calling (io) thread
  CHECK(sink->responses.empty());
  REQUIRE(queued.size() == 1);
  queued.front()();
  CHECK(calls == 2);
  REQUIRE(sink->responses.size() == 1);
  CHECK(body_of(sink->responses[0])["data"]["body"] == "queued");  // the request outlived the call
}

TEST_CASE("Responder: the first send wins, from any copy", "[http][server][router]") {
  auto sink = std::make_shared<RecordingSink>();
  {
    http::Responder first(sink);
    http::Responder copy = first;
    copy.send(http::Response::json(201, "{}"));
    first.send(http::Response::json(202, "{}"));
    copy.send(http::Response::json(203, "{}"));
  }
  REQUIRE(sink->responses.size() == 1);
  CHECK(sink->responses[0].status == 201);
}

TEST_CASE("Responder: dropping every copy without a send answers 500", "[http][server][router]") {
  auto sink = std::make_shared<RecordingSink>();
  {
    http::Responder responder(sink);
    http::Responder copy = responder;
    CHECK(sink->responses.empty());
  }
  REQUIRE(sink->responses.size() == 1);
  CHECK(sink->responses[0].status == 500);
  CHECK(body_of(sink->responses[0])["error"]["code"] == "internal_error");
}

TEST_CASE("Responder: concurrent sends deliver exactly once", "[http][server][router]") {
  for (int round = 0; round < 50; ++round) {
    auto sink = std::make_shared<RecordingSink>();
    {
      http::Responder responder(sink);
      std::vector<std::thread> threads;
      for (unsigned i = 0; i < 4; ++i) {
        threads.emplace_back([responder, i] { responder.send(http::Response::json(200 + i, "{}")); });
      }
      for (auto& thread : threads) {
        thread.join();
      }
    }
    CHECK(sink->deliveries == 1);
  }
}

TEST_CASE("Routes are numbered in the order they were added", "[http][server][router]") {
  http::Router router;
  CHECK(router.size() == 0);
  router.add_async(Method::get, "/a", noop());
  router.add_async(Method::post, "/a", noop());
  router.add_async(Method::get, "/b/{id}", noop());
  http::Router moved = std::move(router);
  REQUIRE(moved.size() == 3);
  CHECK(moved.match(Method::get, "/a").route->index == 0);
  CHECK(moved.match(Method::post, "/a").route->index == 1);
  CHECK(moved.match(Method::get, "/b/7").route->index == 2);
  CHECK(moved.match(Method::head, "/b/7").route->index == 2);  // HEAD served by GET's route
}

TEST_CASE("Router decodes escaped segments among plain ones, many of them", "[http][server][router]") {
  http::Router router;
  router.add_async(Method::get, "/a/b/c/d/e/f/g/h/i/{x}/{y}", noop());
  // Ten segments (past any small inline buffer), two of them escaped and long.
  const auto match = router.match(
      Method::get, "/a/b/c/d/e/f/g/h/i/" + std::string("%41") + std::string(40, 'x') +
                       "/y%2Fz" + std::string(30, 'q'));
  REQUIRE(match.kind == MatchKind::found);
  CHECK(match.route->pattern == "/a/b/c/d/e/f/g/h/i/{x}/{y}");
  CHECK(std::string(match.params[0].second) == "A" + std::string(40, 'x'));
  CHECK(std::string(match.params[1].second) == "y/z" + std::string(30, 'q'));
  CHECK(router.match(Method::get, "/a/b/c/d/e/f/g/h/i/%4/x").kind == MatchKind::not_found);
}
