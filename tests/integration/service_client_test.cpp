// ServiceClient against a scripted fake upstream on loopback: retries, deadlines, keep-alive,
// the breaker, propagation and metrics, with real sockets.

#include <atomic>
#include <chrono>
#include <ctime>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "detail/asio.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_random.hpp"
#include "fakes/scripted_http_server.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/common/trace_context.hpp"
#include "notifs/messaging/http/service_client.hpp"

using namespace std::chrono_literals;
using notifs::fakes::FakeClock;
using notifs::fakes::FakeRandom;
using notifs::fakes::Reaction;
using notifs::fakes::ScriptedHttpServer;
using notifs::messaging::common::TraceContext;
using notifs::messaging::http::CallContext;
using notifs::messaging::http::CircuitOpenError;
using notifs::messaging::http::ClientErrc;
using notifs::messaging::http::ClientRequest;
using notifs::messaging::http::ClientResponse;
using notifs::messaging::http::ClientResult;
using notifs::messaging::http::Method;
using notifs::messaging::http::ServiceClient;
using notifs::messaging::http::ServiceClientSettings;
using notifs::messaging::http::UpstreamError;
using notifs::messaging::resilience::BreakerState;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Small waits so retries are quick, and a breaker that never opens unless a test asks.
ServiceClientSettings settings_for(const std::string& url, std::string name = "users") {
  ServiceClientSettings settings;
  settings.name = std::move(name);
  settings.base_url = url;
  settings.connect_timeout = 1000ms;
  settings.attempt_timeout = 2000ms;
  settings.deadline = 5000ms;
  settings.max_attempts = 3;
  settings.backoff = {milliseconds(5), milliseconds(20), 2.0};
  settings.retry_budget = {1000.0, 0.1};
  settings.breaker.window_size = 1000;
  settings.breaker.minimum_calls = 1000;
  return settings;
}

ClientRequest get(std::string target) {
  ClientRequest request;
  request.method = Method::get;
  request.target = std::move(target);
  return request;
}

ClientRequest with_method(Method method, std::string target, std::string body = {}) {
  ClientRequest request;
  request.method = method;
  request.target = std::move(target);
  request.body = std::move(body);
  return request;
}

// Runs async_call and waits for its callback.
ClientResult call_and_wait(ServiceClient& client, ClientRequest request, CallContext context = {}) {
  std::promise<ClientResult> promise;
  auto future = promise.get_future();
  client.async_call(std::move(request), std::move(context),
                    [&promise](ClientResult result) { promise.set_value(std::move(result)); });
  REQUIRE(future.wait_for(30s) == std::future_status::ready);
  return future.get();
}

long long elapsed_ms(SteadyClock::time_point since) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - since).count();
}

std::string metrics_text(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The fast-fail bound of the breaker test. AddressSanitizer records a stack trace for every
// allocation, which makes a refused call (a dozen small allocations) ~20x slower; the bound
// is about our code, so it scales with the instrumentation.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr auto kThousandRefusalsBound = std::chrono::milliseconds(250);
#else
constexpr auto kThousandRefusalsBound = std::chrono::milliseconds(50);
#endif

// A port nobody listens on: bound, read back and released.
std::uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(
      ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acceptor.local_endpoint().port();
  acceptor.close();
  return port;
}

}  // namespace

TEST_CASE("client: a GET returns the upstream's response", "[http][client]") {
  ScriptedHttpServer server;
  server.respond(200, R"({"success":true,"data":{"id":42}})", {{"X-Upstream", "yes"}});
  ServiceClient client(settings_for(server.url()));

  const auto result = call_and_wait(client, get("/api/v1/users/42?fields=name"));
  REQUIRE(result);
  CHECK(result.response.status == 200);
  CHECK(result.response.body == R"({"success":true,"data":{"id":42}})");
  CHECK(result.response.headers.get("x-upstream") == "yes");
  CHECK(result.response.attempts == 1);
  const auto requests = server.requests();
  REQUIRE(requests.size() == 1);
  CHECK(requests[0].method == "GET");
  CHECK(requests[0].target == "/api/v1/users/42?fields=name");
  CHECK(requests[0].headers.get("Host") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(requests[0].body.empty());
}

TEST_CASE("client: a base url path prefix goes before every target", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url() + "/internal/"));
  REQUIRE(call_and_wait(client, get("/users")));
  CHECK(server.requests().at(0).target == "/internal/users");
}

TEST_CASE("client: 503, 503, 200 gives the 200 after three attempts", "[http][client]") {
  ScriptedHttpServer server;
  server.respond(503);
  server.respond(503);
  server.respond(200, R"({"ok":true})");
  auto registry = std::make_shared<prometheus::Registry>();
  ServiceClient client(settings_for(server.url()), registry);

  const auto result = call_and_wait(client, get("/flaky"));
  REQUIRE(result);
  CHECK(result.response.status == 200);
  CHECK(result.response.body == R"({"ok":true})");
  CHECK(result.response.attempts == 3);
  CHECK(server.request_count() == 3);
  const auto text = metrics_text(*registry);
  CHECK(contains(text, R"(upstream_attempts_total{upstream="users"} 3)"));
  CHECK(contains(text, R"(upstream_retries_total{upstream="users"} 2)"));
  CHECK(contains(text, R"(upstream_calls_total{outcome="success",upstream="users"} 1)"));
}

TEST_CASE("client: a POST is retried and every attempt carries the same X-Request-ID",
          "[http][client]") {
  ScriptedHttpServer server;
  server.respond(500);
  server.respond(500);
  server.respond(201, R"({"created":true})");
  ServiceClient client(settings_for(server.url()));

  const auto result =
      call_and_wait(client, with_method(Method::post, "/api/v1/things", R"({"a":1})"), {"call-7", ""});
  REQUIRE(result);
  CHECK(result.response.status == 201);
  CHECK(result.response.attempts == 3);
  const auto requests = server.requests();
  REQUIRE(requests.size() == 3);
  for (const auto& request : requests) {
    CHECK(request.method == "POST");
    CHECK(request.body == R"({"a":1})");
    CHECK(request.headers.get("X-Request-ID") == "call-7");
    CHECK(request.headers.get("Content-Type") == "application/json");
  }
}

TEST_CASE("client: a generated X-Request-ID is also the same on every attempt", "[http][client]") {
  ScriptedHttpServer server;
  server.respond(502);
  server.respond(200);
  ServiceClient client(settings_for(server.url()));
  REQUIRE(call_and_wait(client, with_method(Method::post, "/x", "{}")));
  const auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  const auto id = requests[0].headers.get("X-Request-ID");
  REQUIRE(id);
  CHECK(notifs::messaging::common::is_uuid(*id));
  CHECK(requests[1].headers.get("X-Request-ID") == id);
  CHECK(requests[0].headers.get("traceparent") == requests[1].headers.get("traceparent"));
}

TEST_CASE("client: PATCH is not retried", "[http][client]") {
  ScriptedHttpServer server;
  server.respond(500);
  ServiceClient client(settings_for(server.url()));

  const auto result = call_and_wait(client, with_method(Method::patch, "/api/v1/users/1", "{}"));
  REQUIRE(result);
  CHECK(result.response.status == 500);
  CHECK(result.response.attempts == 1);
  CHECK(server.request_count() == 1);

  SECTION("unless the caller says it may be") {
    auto request = with_method(Method::patch, "/api/v1/users/1", "{}");
    request.retryable = true;
    server.respond(503);
    server.respond(200);
    const auto retried = call_and_wait(client, std::move(request));
    REQUIRE(retried);
    CHECK(retried.response.status == 200);
    CHECK(retried.response.attempts == 2);
  }
  SECTION("and a GET the caller marks not retryable is not either") {
    auto request = get("/once");
    request.retryable = false;
    server.respond(503);
    const auto once = call_and_wait(client, std::move(request));
    REQUIRE(once);
    CHECK(once.response.status == 503);
    CHECK(once.response.attempts == 1);
  }
}

TEST_CASE("client: a PATCH never rides a pooled connection", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  REQUIRE(call_and_wait(client, get("/warm")));
  REQUIRE(server.connection_count() == 1);
  REQUIRE(call_and_wait(client, with_method(Method::patch, "/p", "{}")));
  CHECK(server.connection_count() == 2);
  // Its connection joins the pool afterwards and later GETs reuse one of the two.
  REQUIRE(call_and_wait(client, get("/after")));
  CHECK(server.connection_count() == 2);
}

TEST_CASE("client: 4xx answers are responses, never retried", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  for (unsigned status : {400U, 401U, 404U, 409U, 422U}) {
    INFO(status);
    const auto before = server.request_count();
    server.respond(status, R"({"success":false})");
    const auto result = call_and_wait(client, get("/missing"));
    REQUIRE(result);
    CHECK(result.response.status == status);
    CHECK(result.response.body == R"({"success":false})");
    CHECK(result.response.attempts == 1);
    CHECK(server.request_count() == before + 1);
  }
  // The future form resolves with a non-2xx response instead of throwing.
  server.respond(404);
  CHECK(client.call(get("/missing")).get().status == 404);
  server.respond(404);
  CHECK(client.call_sync(get("/missing")).status == 404);
}

TEST_CASE("client: retries stop at max_attempts", "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(503));
  auto settings = settings_for(server.url());
  settings.max_attempts = 4;
  ServiceClient client(settings);

  const auto result = call_and_wait(client, get("/down"));
  REQUIRE(result);
  CHECK(result.response.status == 503);
  CHECK(result.response.attempts == 4);
  CHECK(server.request_count() == 4);

  SECTION("max_attempts 1 sends once") {
    auto once_settings = settings_for(server.url(), "once");
    once_settings.max_attempts = 1;
    ServiceClient once(once_settings);
    const auto before = server.request_count();
    CHECK(call_and_wait(once, get("/down")).response.attempts == 1);
    CHECK(server.request_count() == before + 1);
  }
}

TEST_CASE("client: the retry budget keeps an outage from multiplying load", "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(503));
  auto settings = settings_for(server.url());
  settings.max_attempts = 3;
  settings.retry_budget = {10.0, 0.1};
  auto registry = std::make_shared<prometheus::Registry>();
  ServiceClient client(settings, registry);

  constexpr std::size_t kCalls = 50;
  for (std::size_t i = 0; i < kCalls; ++i) {
    const auto result = call_and_wait(client, get("/down"));
    REQUIRE(result);
    CHECK(result.response.status == 503);
  }
  // Without a budget: kCalls * 3 = 150 requests. With 10 tokens and retries only while more
  // than half remain, a handful of retries go out and then every call is sent once.
  const auto requests = server.request_count();
  const auto retries = requests - kCalls;
  INFO("requests " << requests);
  CHECK(retries >= 1);
  CHECK(retries <= 10);
  CHECK(contains(metrics_text(*registry),
                 R"(upstream_retries_total{upstream="users"} )" + std::to_string(retries)));
}

TEST_CASE("client: Retry-After within the deadline is waited for", "[http][client]") {
  ScriptedHttpServer server;
  server.push(Reaction::retry_after(503, "1"));
  server.respond(200);
  ServiceClient client(settings_for(server.url()));

  const auto start = SteadyClock::now();
  const auto result = call_and_wait(client, get("/busy"));
  const auto took = elapsed_ms(start);
  REQUIRE(result);
  CHECK(result.response.status == 200);
  CHECK(result.response.attempts == 2);
  CHECK(took >= 1000);  // the advertised wait, not the 5-20 ms backoff
  CHECK(took < 4000);
}

TEST_CASE("client: 429 with Retry-After is retried too", "[http][client]") {
  ScriptedHttpServer server;
  server.push(Reaction::retry_after(429, "0"));
  server.respond(200);
  ServiceClient client(settings_for(server.url()));
  const auto result = call_and_wait(client, get("/throttled"));
  REQUIRE(result);
  CHECK(result.response.status == 200);
  CHECK(result.response.attempts == 2);
}

TEST_CASE("client: the backoff's jitter comes from the injected Random", "[http][client]") {
  ScriptedHttpServer server;
  auto settings = settings_for(server.url());
  settings.backoff = {milliseconds(150), milliseconds(1000), 2.0};

  SECTION("the largest draw waits the whole ceiling: 150 ms, then 300 ms") {
    server.respond(503);
    server.respond(503);
    server.respond(200);
    ServiceClient client(settings, nullptr, notifs::messaging::common::SystemClock::instance(),
                         std::make_shared<FakeRandom>(FakeRandom::kMax));
    const auto start = SteadyClock::now();
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.attempts == 3);
    CHECK(elapsed_ms(start) >= 450);
  }
  SECTION("the smallest draw does not wait at all") {
    server.respond(503);
    server.respond(503);
    server.respond(200);
    ServiceClient client(settings, nullptr, notifs::messaging::common::SystemClock::instance(),
                         std::make_shared<FakeRandom>(1));
    const auto start = SteadyClock::now();
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.attempts == 3);
    CHECK(elapsed_ms(start) < 400);  // would be >= 450 with the largest draw
  }
}

TEST_CASE("client: Retry-After as an HTTP-date", "[http][client]") {
  const auto http_date = [](std::chrono::system_clock::time_point when) {
    const std::time_t t = std::chrono::system_clock::to_time_t(when);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[64];
    std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(text);
  };
  ScriptedHttpServer server;
  auto settings = settings_for(server.url());
  settings.deadline = 2000ms;
  ServiceClient client(settings);

  SECTION("an hour ahead is beyond the deadline: the 503 comes back at once") {
    server.push(Reaction::retry_after(503, http_date(std::chrono::system_clock::now() + 1h)));
    const auto start = SteadyClock::now();
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.status == 503);
    CHECK(result.response.attempts == 1);
    CHECK(elapsed_ms(start) < 1000);
  }
  SECTION("a date already past means retry now") {
    server.push(Reaction::retry_after(503, http_date(std::chrono::system_clock::now() - 1h)));
    server.respond(200);
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.status == 200);
    CHECK(result.response.attempts == 2);
  }
}

TEST_CASE("client: Retry-After beyond the deadline returns the 503 at once", "[http][client]") {
  ScriptedHttpServer server;
  server.push(Reaction::retry_after(503, "10"));
  server.respond(200);
  auto settings = settings_for(server.url());
  settings.deadline = 2000ms;
  ServiceClient client(settings);

  const auto start = SteadyClock::now();
  const auto result = call_and_wait(client, get("/busy"));
  REQUIRE(result);
  CHECK(result.response.status == 503);
  CHECK(result.response.headers.get("Retry-After") == "10");
  CHECK(result.response.attempts == 1);
  CHECK(elapsed_ms(start) < 1000);
  CHECK(server.request_count() == 1);
}

TEST_CASE("client: a closed port fails fast with connect_failed", "[http][client]") {
  const auto port = closed_port();
  ServiceClient client(settings_for("http://127.0.0.1:" + std::to_string(port)));

  const auto start = SteadyClock::now();
  const auto result = call_and_wait(client, get("/x"));
  CHECK(result.error == ClientErrc::connect_failed);
  CHECK(result.response.attempts == 3);  // refused is retryable; the backoff is tiny
  CHECK(result.detail.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
  CHECK(elapsed_ms(start) < 1000);
  CHECK_THROWS_AS(client.call_sync(get("/x")), UpstreamError);
}

TEST_CASE("client: a stalled upstream ends in deadline_exceeded at the deadline", "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(200).after(5000ms));
  auto settings = settings_for(server.url());
  settings.deadline = 300ms;
  ServiceClient client(settings);

  const auto start = SteadyClock::now();
  const auto result = call_and_wait(client, get("/slow"));
  const auto took = elapsed_ms(start);
  CHECK(result.error == ClientErrc::deadline_exceeded);
  CHECK(result.response.attempts == 1);  // no time is left for a second one
  CHECK(took >= 300);
  CHECK(took < 1000);

  SECTION("a per-request deadline overrides the settings") {
    auto request = get("/slow");
    request.deadline = 150ms;
    const auto again = SteadyClock::now();
    CHECK(call_and_wait(client, std::move(request)).error == ClientErrc::deadline_exceeded);
    CHECK(elapsed_ms(again) >= 150);
    CHECK(elapsed_ms(again) < 800);
  }
}

TEST_CASE("client: a slow attempt times out and the retry succeeds", "[http][client]") {
  ScriptedHttpServer server;
  server.stall(3000ms);
  server.respond(200, R"({"second":true})");
  auto settings = settings_for(server.url());
  settings.attempt_timeout = 200ms;
  settings.deadline = 3000ms;
  ServiceClient client(settings);

  const auto start = SteadyClock::now();
  const auto result = call_and_wait(client, get("/slow-once"));
  REQUIRE(result);
  CHECK(result.response.body == R"({"second":true})");
  CHECK(result.response.attempts == 2);
  CHECK(elapsed_ms(start) >= 200);
  CHECK(elapsed_ms(start) < 2000);
}

TEST_CASE("client: a dropped connection is retried", "[http][client]") {
  ScriptedHttpServer server;
  server.close_connection();
  server.respond(200, R"({"after":"drop"})");
  ServiceClient client(settings_for(server.url()));

  const auto result = call_and_wait(client, get("/drop"));
  REQUIRE(result);
  CHECK(result.response.body == R"({"after":"drop"})");
  CHECK(result.response.attempts == 2);  // a fresh connection failing counts as an attempt
  CHECK(server.request_count() == 2);

  SECTION("and ends in connection_lost when it keeps dropping") {
    server.set_default(Reaction::close_connection());
    const auto lost = call_and_wait(client, get("/drop"));
    CHECK(lost.error == ClientErrc::connection_lost);
    CHECK(lost.response.attempts == 3);
  }
  SECTION("but not for a PATCH") {
    server.close_connection();
    const auto lost = call_and_wait(client, with_method(Method::patch, "/p", "{}"));
    CHECK(lost.error == ClientErrc::connection_lost);
    CHECK(lost.response.attempts == 1);
  }
}

TEST_CASE("client: 20 sequential calls use one keep-alive connection", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  for (int i = 0; i < 20; ++i) {
    const auto result = call_and_wait(client, get("/users/" + std::to_string(i)));
    REQUIRE(result);
    CHECK(result.response.status == 200);
  }
  CHECK(server.request_count() == 20);
  CHECK(server.connection_count() == 1);
}

TEST_CASE("client: Connection: close from the upstream is honoured", "[http][client]") {
  ScriptedHttpServer server;
  auto closing = Reaction::respond(200);
  closing.close_after = true;
  server.set_default(closing);
  ServiceClient client(settings_for(server.url()));
  for (int i = 0; i < 3; ++i) {
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.attempts == 1);
  }
  CHECK(server.connection_count() == 3);
}

TEST_CASE("client: a stale pooled connection is re-sent once, not counted as an attempt",
          "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  REQUIRE(call_and_wait(client, get("/warm")));  // leaves one pooled connection
  REQUIRE(server.connection_count() == 1);

  SECTION("the keep-alive race: closed before a response byte") {
    server.close_connection();
    server.respond(200, R"({"fresh":true})");
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.body == R"({"fresh":true})");
    CHECK(result.response.attempts == 1);
    CHECK(server.connection_count() == 2);
    CHECK(server.request_count() == 3);
  }
  SECTION("only once per attempt: the fresh connection failing is a real attempt") {
    server.close_connection();
    server.close_connection();
    server.respond(200);
    const auto result = call_and_wait(client, get("/x"));
    REQUIRE(result);
    CHECK(result.response.attempts == 2);
    CHECK(server.request_count() == 4);
  }
}

TEST_CASE("client: an upstream that goes away and comes back", "[http][client]") {
  ScriptedHttpServer server;
  auto settings = settings_for(server.url());
  settings.max_attempts = 2;
  ServiceClient client(settings);
  REQUIRE(call_and_wait(client, get("/before")));

  server.stop();
  const auto down = call_and_wait(client, get("/during"));
  CHECK(down.error == ClientErrc::connect_failed);

  server.restart();
  const auto back = call_and_wait(client, get("/after"));
  REQUIRE(back);
  CHECK(back.response.status == 200);
  CHECK(back.response.attempts == 1);
}

TEST_CASE("client: a body over response_body_limit is a protocol_error, not retried",
          "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(200, std::string(4096, 'x')));
  auto settings = settings_for(server.url());
  settings.response_body_limit = 1024;
  ServiceClient client(settings);

  const auto result = call_and_wait(client, get("/big"));
  INFO(result.response.status << " " << result.response.body.size() << " " << result.detail);
  CHECK(result.error == ClientErrc::protocol_error);
  CHECK(result.detail.find("1024") != std::string::npos);
  CHECK(server.request_count() == 1);
  // Exactly at the limit is fine.
  server.set_default(Reaction::respond(200, std::string(1024, 'x')));
  const auto fits = call_and_wait(client, get("/big"));
  REQUIRE(fits);
  CHECK(fits.response.body.size() == 1024);
}

TEST_CASE("client: an answer that is not HTTP is a protocol_error", "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::raw_bytes("SSH-2.0-OpenSSH_9.2\r\n\r\n"));
  ServiceClient client(settings_for(server.url()));
  const auto result = call_and_wait(client, get("/x"));
  CHECK(result.error == ClientErrc::protocol_error);
  CHECK(server.request_count() == 1);
}

TEST_CASE("client: interim 1xx answers are skipped, trailing bytes spoil no connection",
          "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  SECTION("103 Early Hints, then the answer") {
    server.push(Reaction::raw_bytes(
        "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n"
        "{\"ok\":true}"));
    const auto result = call_and_wait(client, get("/hints"));
    REQUIRE(result);
    CHECK(result.response.status == 200);
    CHECK(result.response.body == R"({"ok":true})");
  }
  SECTION("bytes after a keep-alive response: that connection is not reused") {
    // The server keeps the connection open after an answer with a stray one appended.
    auto stray = Reaction::raw_bytes(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    stray.close_after = false;
    server.push(stray);
    REQUIRE(call_and_wait(client, get("/first")));
    server.respond(200, R"({"second":true})");
    const auto second = call_and_wait(client, get("/second"));
    REQUIRE(second);
    CHECK(second.response.status == 200);
    CHECK(second.response.body == R"({"second":true})");
    CHECK(second.response.attempts == 1);  // the stray 500 was never taken for an answer
    CHECK(server.connection_count() == 2);
  }
}

TEST_CASE("client: a HEAD response has no body to wait for", "[http][client]") {
  ScriptedHttpServer server;
  server.respond(200, R"({"this body":"is not sent for HEAD"})");
  server.respond(200, R"({"next":true})");
  ServiceClient client(settings_for(server.url()));
  const auto head = call_and_wait(client, with_method(Method::head, "/h"));
  REQUIRE(head);
  CHECK(head.response.body.empty());
  // The connection is still in sync for the next exchange.
  const auto next = call_and_wait(client, get("/n"));
  REQUIRE(next);
  CHECK(next.response.body == R"({"next":true})");
  CHECK(server.connection_count() == 1);
}

TEST_CASE("client: the breaker opens, fails fast while open, and closes after a probe",
          "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(500));
  FakeClock clock;
  auto settings = settings_for(server.url());
  settings.max_attempts = 1;
  settings.breaker.window_size = 4;
  settings.breaker.minimum_calls = 4;
  settings.breaker.failure_rate_threshold = 0.5;
  settings.breaker.open_duration = 10000ms;
  settings.breaker.half_open_probes = 1;
  auto registry = std::make_shared<prometheus::Registry>();
  ServiceClient client(settings, registry, clock);

  for (int i = 0; i < 4; ++i) {
    CHECK(call_and_wait(client, get("/fail")).response.status == 500);
  }
  REQUIRE(client.breaker_state() == BreakerState::open);
  const auto sent_before = server.request_count();
  CHECK(sent_before == 4);

  // 1,000 calls while open: refused on the caller's thread, each finished (its future
  // ready) before call() returns, nothing sent.
  std::vector<std::future<ClientResponse>> calls;
  calls.reserve(1000);
  std::size_t finished = 0;
  const auto start = SteadyClock::now();
  for (int i = 0; i < 1000; ++i) {
    calls.push_back(client.call(get("/fail")));
    if (calls.back().wait_for(0s) == std::future_status::ready) ++finished;
  }
  const auto took = SteadyClock::now() - start;
  INFO("1000 refused calls took "
       << std::chrono::duration_cast<std::chrono::microseconds>(took).count() << " us");
  CHECK(finished == 1000);
  CHECK(took < kThousandRefusalsBound);
  std::size_t refused = 0;
  for (auto& call : calls) {
    try {
      call.get();
    } catch (const CircuitOpenError& e) {
      if (e.error() == ClientErrc::circuit_open && e.upstream() == "users") ++refused;
    }
  }
  CHECK(refused == 1000);
  CHECK_THROWS_AS(client.call_sync(get("/fail")), CircuitOpenError);
  CHECK(server.request_count() == sent_before);

  // The callback form is refused too, on the client's io thread.
  const auto result = call_and_wait(client, get("/fail"));
  CHECK(result.error == ClientErrc::circuit_open);
  CHECK(result.response.attempts == 0);
  CHECK(server.request_count() == sent_before);

  auto text = metrics_text(*registry);
  CHECK(contains(text, R"(upstream_breaker_state{upstream="users"} 1)"));
  CHECK(contains(text, R"(upstream_breaker_transitions_total{from="closed",to="open",upstream="users"} 1)"));
  CHECK(contains(text, R"(upstream_calls_total{outcome="circuit_open",upstream="users"} 1002)"));

  // Healthy again and the open duration over: one probe goes through and closes it.
  server.set_default(Reaction::respond(200, R"({"healthy":true})"));
  clock.advance(10001ms);
  const auto probe = call_and_wait(client, get("/probe"));
  REQUIRE(probe);
  CHECK(probe.response.status == 200);
  CHECK(client.breaker_state() == BreakerState::closed);
  CHECK(server.request_count() == sent_before + 1);
  text = metrics_text(*registry);
  CHECK(contains(text, R"(upstream_breaker_state{upstream="users"} 0)"));
  CHECK(contains(text, R"(upstream_breaker_transitions_total{from="open",to="half_open",upstream="users"} 1)"));
  CHECK(contains(text, R"(upstream_breaker_transitions_total{from="half_open",to="closed",upstream="users"} 1)"));
}

TEST_CASE("client: a failed half-open probe opens the breaker again", "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(503));
  FakeClock clock;
  auto settings = settings_for(server.url());
  settings.max_attempts = 1;
  settings.breaker.window_size = 2;
  settings.breaker.minimum_calls = 2;
  settings.breaker.open_duration = 1000ms;
  settings.breaker.half_open_probes = 1;
  ServiceClient client(settings, nullptr, clock);
  call_and_wait(client, get("/a"));
  call_and_wait(client, get("/a"));
  REQUIRE(client.breaker_state() == BreakerState::open);
  clock.advance(1001ms);
  CHECK(call_and_wait(client, get("/probe")).response.status == 503);
  CHECK(client.breaker_state() == BreakerState::open);
  CHECK(call_and_wait(client, get("/a")).error == ClientErrc::circuit_open);
}

TEST_CASE("client: 429 and 404 never open the breaker", "[http][client]") {
  ScriptedHttpServer server;
  FakeClock clock;
  auto settings = settings_for(server.url());
  settings.max_attempts = 1;
  settings.breaker.window_size = 4;
  settings.breaker.minimum_calls = 4;
  ServiceClient client(settings, nullptr, clock);
  server.set_default(Reaction::respond(429));
  for (int i = 0; i < 6; ++i) call_and_wait(client, get("/limited"));
  server.set_default(Reaction::respond(404));
  for (int i = 0; i < 6; ++i) call_and_wait(client, get("/missing"));
  CHECK(client.breaker_state() == BreakerState::closed);
}

TEST_CASE("client: timeouts and refused connects open the breaker", "[http][client]") {
  const auto port = closed_port();
  FakeClock clock;
  auto settings = settings_for("http://127.0.0.1:" + std::to_string(port));
  settings.max_attempts = 1;
  settings.breaker.window_size = 3;
  settings.breaker.minimum_calls = 3;
  ServiceClient client(settings, nullptr, clock);
  for (int i = 0; i < 3; ++i) {
    CHECK(call_and_wait(client, get("/x")).error == ClientErrc::connect_failed);
  }
  CHECK(client.breaker_state() == BreakerState::open);
}

TEST_CASE("client: health_check reports up, down and the breaker", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));

  auto status = client.health_check(500ms);
  CHECK(status.ok);
  CHECK(status.state == "up");
  CHECK(server.requests().at(0).target == "/health");

  server.respond(503);
  status = client.health_check(500ms);
  CHECK_FALSE(status.ok);
  CHECK(status.state == "down");
  CHECK(status.detail.find("503") != std::string::npos);
  CHECK(server.request_count() == 2);  // outside the retries: one request

  server.stop();
  const auto start = SteadyClock::now();
  status = client.health_check(500ms);
  CHECK_FALSE(status.ok);
  CHECK(status.state == "down");
  CHECK_FALSE(status.detail.empty());
  CHECK(elapsed_ms(start) < 1500);

  SECTION("a stalled upstream is down within the timeout") {
    server.restart();
    server.stall(3000ms);
    const auto stalled_start = SteadyClock::now();
    status = client.health_check(300ms);
    CHECK_FALSE(status.ok);
    CHECK(status.state == "down");
    CHECK(elapsed_ms(stalled_start) >= 300);
    CHECK(elapsed_ms(stalled_start) < 1500);
  }
}

TEST_CASE("client: health_check while the breaker is open still probes the upstream",
          "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(500));
  FakeClock clock;
  auto settings = settings_for(server.url());
  settings.max_attempts = 1;
  settings.breaker.window_size = 2;
  settings.breaker.minimum_calls = 2;
  ServiceClient client(settings, nullptr, clock);
  call_and_wait(client, get("/a"));
  call_and_wait(client, get("/a"));
  REQUIRE(client.breaker_state() == BreakerState::open);
  server.set_default(Reaction::respond(200));
  const auto status = client.health_check(500ms);
  CHECK(status.ok);
  CHECK(status.state == "open");
  CHECK(client.breaker_state() == BreakerState::open);  // the probe is outside the breaker
}

TEST_CASE("client: token, request id and traceparent are propagated", "[http][client]") {
  ScriptedHttpServer server;
  auto settings = settings_for(server.url());
  settings.service_token = "s3cret-token";
  ServiceClient client(settings);

  const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string parent = "00f067aa0ba902b7";
  auto request = get("/api/v1/users/1");
  request.headers.add("X-Custom", "kept");
  request.headers.add("Authorization", "Bearer not-this-one");
  request.headers.add("X-Request-ID", "not-this-one-either");
  request.headers.add("Host", "evil.example");
  REQUIRE(call_and_wait(client, std::move(request),
                        {"req-123", "00-" + trace_id + "-" + parent + "-01"}));

  const auto sent = server.requests().at(0);
  CHECK(sent.headers.get("Authorization") == "Bearer s3cret-token");
  CHECK(sent.headers.get("X-Request-ID") == "req-123");
  CHECK(sent.headers.get("X-Custom") == "kept");
  CHECK(sent.headers.get("Host") == "127.0.0.1:" + std::to_string(server.port()));
  std::size_t auth_headers = 0;
  for (const auto& [name, value] : sent.headers) {
    if (notifs::messaging::http::iequals(name, "authorization")) ++auth_headers;
  }
  CHECK(auth_headers == 1);
  const auto traceparent = sent.headers.get("traceparent");
  REQUIRE(traceparent);
  const auto context = TraceContext::parse(*traceparent);
  REQUIRE(context);
  CHECK(context->trace_id == trace_id);
  CHECK(context->parent_id != parent);

  SECTION("an empty context gets a new id and a new trace") {
    REQUIRE(call_and_wait(client, get("/x")));
    const auto fresh = server.requests().at(1);
    const auto id = fresh.headers.get("X-Request-ID");
    REQUIRE(id);
    CHECK(notifs::messaging::common::is_uuid(*id));
    const auto fresh_trace = TraceContext::parse(fresh.headers.get("traceparent").value_or(""));
    REQUIRE(fresh_trace);
    CHECK(fresh_trace->trace_id != trace_id);
  }
  SECTION("an id that could forge a header is replaced") {
    REQUIRE(call_and_wait(client, get("/x"), {"evil\r\nX-Admin: 1", "garbage"}));
    const auto fresh = server.requests().at(1);
    CHECK(notifs::messaging::common::is_uuid(fresh.headers.get("X-Request-ID").value_or("")));
    CHECK_FALSE(fresh.headers.contains("X-Admin"));
    CHECK(TraceContext::parse(fresh.headers.get("traceparent").value_or("")));
  }
  SECTION("no token, no Authorization") {
    ServiceClient anonymous(settings_for(server.url(), "anonymous"));
    REQUIRE(call_and_wait(anonymous, get("/x")));
    CHECK_FALSE(server.requests().at(1).headers.contains("Authorization"));
  }
}

TEST_CASE("client: requests that cannot be sent are refused at the call", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  CHECK_THROWS_AS(client.call(get("no-slash")), std::invalid_argument);
  CHECK_THROWS_AS(client.call(get("/with space")), std::invalid_argument);
  auto injected = get("/x");
  injected.headers.add("X-Evil", "a\r\nX-Admin: 1");
  CHECK_THROWS_AS(client.call(std::move(injected)), std::invalid_argument);
  CHECK_THROWS_AS(client.call(with_method(Method::other, "/x")), std::invalid_argument);
  CHECK_THROWS_AS(client.async_call(get("/x"), {}, nullptr), std::invalid_argument);
  CHECK(server.request_count() == 0);
}

TEST_CASE("client: invalid base urls are refused at construction", "[http][client]") {
  for (const char* url : {"", "localhost:8080", "ftp://host", "http://", "http://host:99999"}) {
    INFO(url);
    ServiceClientSettings settings;
    settings.base_url = url;
    CHECK_THROWS_AS(ServiceClient(settings), std::invalid_argument);
  }
}

TEST_CASE("client: metrics show calls by outcome", "[http][client]") {
  ScriptedHttpServer server;
  auto registry = std::make_shared<prometheus::Registry>();
  ServiceClient client(settings_for(server.url()), registry);
  server.respond(200);
  server.respond(404);
  call_and_wait(client, get("/a"));
  call_and_wait(client, get("/b"));
  const auto text = metrics_text(*registry);
  CHECK(contains(text, R"(upstream_calls_total{outcome="success",upstream="users"} 1)"));
  CHECK(contains(text, R"(upstream_calls_total{outcome="client_error",upstream="users"} 1)"));
  CHECK(contains(text, R"(upstream_call_duration_seconds_count{upstream="users"} 2)"));
  CHECK(contains(text, R"(upstream_breaker_state{upstream="users"} 0)"));
}

TEST_CASE("client: two clients on one registry both work", "[http][client]") {
  ScriptedHttpServer users_server;
  ScriptedHttpServer templates_server;
  auto registry = std::make_shared<prometheus::Registry>();
  ServiceClient users(settings_for(users_server.url(), "user_service"), registry);
  ServiceClient templates(settings_for(templates_server.url(), "template_service"), registry);
  REQUIRE(call_and_wait(users, get("/u")));
  REQUIRE(call_and_wait(templates, get("/t")));
  REQUIRE(call_and_wait(templates, get("/t")));
  const auto text = metrics_text(*registry);
  CHECK(contains(text, R"(upstream_calls_total{outcome="success",upstream="user_service"} 1)"));
  CHECK(contains(text, R"(upstream_calls_total{outcome="success",upstream="template_service"} 2)"));
  CHECK(users_server.request_count() == 1);
  CHECK(templates_server.request_count() == 2);
}

TEST_CASE("client: many concurrent calls on two io threads", "[http][client]") {
  ScriptedHttpServer server;
  auto settings = settings_for(server.url());
  settings.io_threads = 2;
  ServiceClient client(settings);
  constexpr int kCalls = 64;
  std::mutex mutex;
  std::condition_variable done;
  int finished = 0;
  int ok = 0;
  const auto test_thread = std::this_thread::get_id();
  std::atomic<bool> ran_on_test_thread{false};
  for (int i = 0; i < kCalls; ++i) {
    client.async_call(get("/c/" + std::to_string(i)), {}, [&](ClientResult result) {
      if (std::this_thread::get_id() == test_thread) ran_on_test_thread = true;
      std::lock_guard lock(mutex);
      ++finished;
      if (result && result.response.status == 200) ++ok;
      done.notify_all();
    });
  }
  std::unique_lock lock(mutex);
  REQUIRE(done.wait_for(lock, 30s, [&] { return finished == kCalls; }));
  CHECK(ok == kCalls);
  CHECK_FALSE(ran_on_test_thread);
  CHECK(server.request_count() == kCalls);
}

TEST_CASE("client: destroying the client completes a call in flight with shutting_down",
          "[http][client]") {
  ScriptedHttpServer server;
  server.set_default(Reaction::respond(200).after(10000ms));
  std::promise<ClientResult> promise;
  auto future = promise.get_future();
  auto settings = settings_for(server.url());
  settings.deadline = 20000ms;
  settings.attempt_timeout = 20000ms;
  auto client = std::make_unique<ServiceClient>(settings);
  client->async_call(get("/slow"), {}, [&promise](ClientResult result) {
    promise.set_value(std::move(result));
  });
  REQUIRE(server.wait_for_requests(1, 5s));

  const auto start = SteadyClock::now();
  client.reset();
  CHECK(elapsed_ms(start) < 1000);
  // The callback ran before the destructor returned.
  REQUIRE(future.wait_for(0s) == std::future_status::ready);
  const auto result = future.get();
  CHECK(result.error == ClientErrc::shutting_down);

  SECTION("a call waiting between attempts is completed too") {
    server.push(Reaction::retry_after(503, "10"));  // a wait that is surely in progress
    auto waiting_settings = settings_for(server.url());
    waiting_settings.deadline = 30000ms;
    auto waiting = std::make_unique<ServiceClient>(waiting_settings);
    auto pending = waiting->call(get("/retrying"));
    REQUIRE(server.wait_for_requests(2, 5s));  // the first call's and this one
    const auto destroyed = SteadyClock::now();
    waiting.reset();
    CHECK(elapsed_ms(destroyed) < 1000);
    REQUIRE(pending.wait_for(0s) == std::future_status::ready);
    try {
      pending.get();
      FAIL("resolved with a response");
    } catch (const UpstreamError& e) {
      CHECK(e.error() == ClientErrc::shutting_down);
    }
  }
}

TEST_CASE("client: blocking calls refuse to run on the client's io thread", "[http][client]") {
  ScriptedHttpServer server;
  ServiceClient client(settings_for(server.url()));
  std::promise<std::string> promise;
  auto future = promise.get_future();
  client.async_call(get("/x"), {}, [&](ClientResult) {
    try {
      client.call_sync(get("/y"));
      promise.set_value("no throw");
    } catch (const std::logic_error& e) {
      promise.set_value(e.what());
    }
  });
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  CHECK(future.get().find("io thread") != std::string::npos);
}
