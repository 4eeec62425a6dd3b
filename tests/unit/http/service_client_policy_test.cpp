// The pure parts of ServiceClient: base URL parsing, Retry-After parsing, the retry decision
// table and the metrics families. No network, no clock.

#include <chrono>
#include <stdexcept>
#include <string>
#include <system_error>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "http/client_metrics.hpp"
#include "http/client_policy.hpp"
#include "http/client_url.hpp"
#include "notifs/messaging/http/service_client.hpp"

using namespace std::chrono_literals;
using notifs::messaging::http::ClientErrc;
using notifs::messaging::http::Method;
using notifs::messaging::http::make_error_code;
using notifs::messaging::resilience::BreakerState;
using notifs::messaging::resilience::CallOutcome;
namespace d = notifs::messaging::http::detail;
using std::chrono::milliseconds;

TEST_CASE("client url: host, port and Host header", "[http][client]") {
  SECTION("address with port") {
    const auto url = d::parse_base_url("http://127.0.0.1:8080");
    CHECK_FALSE(url.tls);
    CHECK(url.host == "127.0.0.1");
    CHECK(url.port == 8080);
    CHECK(url.host_header == "127.0.0.1:8080");
    CHECK(url.path_prefix.empty());
    CHECK(url.host_is_ip);
    CHECK(url.authority() == "127.0.0.1:8080");
  }
  SECTION("name without port takes the scheme's port and omits it from Host") {
    const auto url = d::parse_base_url("http://user-service");
    CHECK(url.host == "user-service");
    CHECK(url.port == 80);
    CHECK(url.host_header == "user-service");
    CHECK_FALSE(url.host_is_ip);
  }
  SECTION("scheme and host are case-insensitive; a trailing slash is dropped") {
    const auto url = d::parse_base_url("HTTP://Example.COM:80/");
    CHECK(url.host == "example.com");
    CHECK(url.port == 80);
    CHECK(url.host_header == "example.com");
    CHECK(url.path_prefix.empty());
  }
  SECTION("https defaults to 443") {
    const auto url = d::parse_base_url("https://push.example.com");
    CHECK(url.tls);
    CHECK(url.port == 443);
    CHECK(url.host_header == "push.example.com");
  }
  SECTION("IPv6 literal and a path prefix") {
    const auto url = d::parse_base_url("http://[::1]:9000/api/v2/");
    CHECK(url.host == "::1");
    CHECK(url.port == 9000);
    CHECK(url.host_header == "[::1]:9000");
    CHECK(url.authority() == "[::1]:9000");
    CHECK(url.path_prefix == "/api/v2");
    CHECK(url.host_is_ip);
  }
}

TEST_CASE("client url: malformed ones are refused with the reason", "[http][client]") {
  const auto refused = [](const std::string& text, const std::string& reason) {
    INFO(text);
    try {
      d::parse_base_url(text);
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      const std::string what = e.what();
      CHECK(what.find(reason) != std::string::npos);
      CHECK(what.find(text) != std::string::npos);
    }
  };
  refused("", "expected http://");
  refused("127.0.0.1:8080", "expected http://");
  refused("ftp://host", "scheme");
  refused("http://", "missing host");
  refused("http://:80", "missing host");
  refused("http://host:0", "port");
  refused("http://host:65536", "port");
  refused("http://host:8o", "port");
  refused("http://host:", "empty port");
  refused("http://user:pass@host", "credentials");
  refused("http://host/path?q=1", "query");
  refused("http://host#frag", "fragment");
  refused("http://[::1", "IPv6");
  refused("http://[::1]x", "IPv6");
  refused("http://ho st", "host");
  refused("http://host/a b", "whitespace");
}

TEST_CASE("client retry-after: delta-seconds", "[http][client]") {
  const auto now = std::chrono::system_clock::time_point{};
  CHECK(d::parse_retry_after("1", now) == milliseconds(1000));
  CHECK(d::parse_retry_after(" 120 ", now) == milliseconds(120000));
  CHECK(d::parse_retry_after("0", now) == milliseconds(0));
  // Absurd values saturate at one day rather than overflow.
  CHECK(d::parse_retry_after("99999999999999999999999999", now) == milliseconds(24LL * 3600 * 1000));
  CHECK(d::parse_retry_after("100000000", now) == milliseconds(24LL * 3600 * 1000));
  CHECK_FALSE(d::parse_retry_after("", now));
  CHECK_FALSE(d::parse_retry_after("-1", now));
  CHECK_FALSE(d::parse_retry_after("1.5", now));
  CHECK_FALSE(d::parse_retry_after("soon", now));
  CHECK_FALSE(d::parse_retry_after("1 2", now));
}

TEST_CASE("client retry-after: HTTP-date relative to now", "[http][client]") {
  using namespace std::chrono;
  const auto now = sys_days{year{2024} / January / day{1}} + hours{12};
  CHECK(d::parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now) == milliseconds(30000));
  CHECK(d::parse_retry_after("Tue, 02 Jan 2024 12:00:00 GMT", now) == milliseconds(86400000));
  // In the past: retry now.
  CHECK(d::parse_retry_after("Sun, 31 Dec 2023 23:59:59 GMT", now) == milliseconds(0));
  CHECK(d::parse_retry_after("Mon, 01 Jan 2024 12:00:00 GMT", now) == milliseconds(0));
  // Not a date: no such day, hour, month, or the obsolete forms we do not parse.
  CHECK_FALSE(d::parse_retry_after("Mon, 32 Jan 2024 12:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Mon, 30 Feb 2024 12:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Mon, 01 Jan 2024 24:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Mon, 01 Foo 2024 12:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Xyz, 01 Jan 2024 12:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Mon, 01 Jan 2024 12:00:30 UTC", now));
  CHECK_FALSE(d::parse_retry_after("Monday, 01-Jan-24 12:00:30 GMT", now));
  CHECK_FALSE(d::parse_retry_after("Mon Jan  1 12:00:30 2024", now));
}

TEST_CASE("client retry table: which methods may be sent again", "[http][client]") {
  CHECK(d::request_is_retryable(Method::get, std::nullopt));
  CHECK(d::request_is_retryable(Method::head, std::nullopt));
  CHECK(d::request_is_retryable(Method::put, std::nullopt));
  CHECK(d::request_is_retryable(Method::delete_, std::nullopt));
  CHECK(d::request_is_retryable(Method::options, std::nullopt));
  CHECK(d::request_is_retryable(Method::post, std::nullopt));  // same X-Request-ID on every attempt
  CHECK_FALSE(d::request_is_retryable(Method::patch, std::nullopt));
  CHECK_FALSE(d::request_is_retryable(Method::other, std::nullopt));
  // The caller's explicit choice wins both ways.
  CHECK(d::request_is_retryable(Method::patch, true));
  CHECK_FALSE(d::request_is_retryable(Method::get, false));
  CHECK_FALSE(d::request_is_retryable(Method::post, false));
}

TEST_CASE("client retry table: which statuses and errors may succeed later", "[http][client]") {
  for (unsigned status : {429U, 500U, 502U, 503U, 504U, 599U}) {
    INFO(status);
    CHECK(d::status_is_retryable(status));
  }
  for (unsigned status : {200U, 201U, 204U, 301U, 304U, 400U, 401U, 403U, 404U, 409U, 413U, 422U,
                          501U, 505U}) {
    INFO(status);
    CHECK_FALSE(d::status_is_retryable(status));
  }
  CHECK(d::error_is_retryable(make_error_code(ClientErrc::connect_failed)));
  CHECK(d::error_is_retryable(make_error_code(ClientErrc::connection_lost)));
  CHECK(d::error_is_retryable(make_error_code(ClientErrc::deadline_exceeded)));
  CHECK_FALSE(d::error_is_retryable(make_error_code(ClientErrc::protocol_error)));
  CHECK_FALSE(d::error_is_retryable(make_error_code(ClientErrc::circuit_open)));
  CHECK_FALSE(d::error_is_retryable(make_error_code(ClientErrc::shutting_down)));
  // Same numeric value, other category: not ours, not retried.
  CHECK_FALSE(d::error_is_retryable(std::error_code(3, std::generic_category())));
}

TEST_CASE("client breaker and budget: what counts as a failure", "[http][client]") {
  CHECK(d::breaker_outcome(500) == CallOutcome::failure);
  CHECK(d::breaker_outcome(503) == CallOutcome::failure);
  CHECK(d::breaker_outcome(501) == CallOutcome::failure);
  // 429: the upstream is alive and answering; it is retried, but never opens the breaker.
  CHECK(d::breaker_outcome(429) == CallOutcome::success);
  CHECK(d::breaker_outcome(404) == CallOutcome::success);
  CHECK(d::breaker_outcome(400) == CallOutcome::success);
  CHECK(d::breaker_outcome(200) == CallOutcome::success);
  CHECK(d::counts_against_budget(429));
  CHECK(d::counts_against_budget(503));
  CHECK_FALSE(d::counts_against_budget(404));
}

TEST_CASE("client retry decision: the order of the stop conditions", "[http][client]") {
  d::RetryInputs base;
  base.request_retryable = true;
  base.outcome_retryable = true;
  base.attempts_made = 1;
  base.max_attempts = 3;
  base.budget_allows = true;
  base.remaining = milliseconds(1000);
  base.backoff = milliseconds(40);

  SECTION("a retryable failure with time left waits the backoff") {
    const auto decision = d::decide_retry(base);
    CHECK(decision.retry());
    CHECK(decision.wait == milliseconds(40));
  }
  SECTION("an outcome that cannot improve is final") {
    auto in = base;
    in.outcome_retryable = false;
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::final_outcome);
  }
  SECTION("a request that may not be repeated is not") {
    auto in = base;
    in.request_retryable = false;
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::not_retryable);
  }
  SECTION("max_attempts counts the first try") {
    auto in = base;
    in.attempts_made = 3;
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::attempts_exhausted);
    in.attempts_made = 2;
    CHECK(d::decide_retry(in).retry());
  }
  SECTION("an empty budget stops retries") {
    auto in = base;
    in.budget_allows = false;
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::budget_exhausted);
  }
  SECTION("Retry-After replaces the backoff when it fits") {
    auto in = base;
    in.retry_after = milliseconds(700);
    const auto decision = d::decide_retry(in);
    CHECK(decision.retry());
    CHECK(decision.wait == milliseconds(700));
  }
  SECTION("Retry-After beyond the deadline returns the response now") {
    auto in = base;
    in.retry_after = milliseconds(1000);  // equal leaves no time for the attempt
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::retry_after_too_long);
    in.retry_after = milliseconds(60000);
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::retry_after_too_long);
  }
  SECTION("Retry-After 0 retries at once") {
    auto in = base;
    in.retry_after = milliseconds(0);
    const auto decision = d::decide_retry(in);
    CHECK(decision.retry());
    CHECK(decision.wait == milliseconds(0));
  }
  SECTION("a backoff that ends at the deadline is not waited for") {
    auto in = base;
    in.backoff = milliseconds(1000);
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::no_time_left);
    in.remaining = milliseconds(0);
    in.backoff = milliseconds(0);
    CHECK(d::decide_retry(in).verdict == d::RetryVerdict::no_time_left);
  }
}

TEST_CASE("client metrics: two clients share one registry", "[http][client]") {
  auto registry = std::make_shared<prometheus::Registry>();
  d::ClientMetrics users(registry.get(), "users");
  d::ClientMetrics templates(registry.get(), "templates");
  users.on_attempt();
  users.on_call(d::CallOutcomeLabel::success, 12ms, true);
  templates.on_attempt();
  templates.on_retry();
  templates.on_attempt();
  templates.on_call(d::CallOutcomeLabel::server_error, 30ms, true);
  templates.on_breaker_transition(BreakerState::closed, BreakerState::open);

  const auto text = prometheus::TextSerializer().Serialize(registry->Collect());
  CHECK(text.find(R"(upstream_calls_total{outcome="success",upstream="users"} 1)") != std::string::npos);
  CHECK(text.find(R"(upstream_calls_total{outcome="server_error",upstream="templates"} 1)") !=
        std::string::npos);
  // Every outcome exists from the start, at zero.
  CHECK(text.find(R"(upstream_calls_total{outcome="circuit_open",upstream="users"} 0)") !=
        std::string::npos);
  CHECK(text.find(R"(upstream_attempts_total{upstream="templates"} 2)") != std::string::npos);
  CHECK(text.find(R"(upstream_retries_total{upstream="templates"} 1)") != std::string::npos);
  CHECK(text.find(R"(upstream_retries_total{upstream="users"} 0)") != std::string::npos);
  CHECK(text.find(R"(upstream_call_duration_seconds_count{upstream="users"} 1)") != std::string::npos);
  CHECK(text.find(R"(upstream_breaker_state{upstream="templates"} 1)") != std::string::npos);
  CHECK(text.find(R"(upstream_breaker_state{upstream="users"} 0)") != std::string::npos);
  CHECK(text.find(R"(upstream_breaker_transitions_total{from="closed",to="open",upstream="templates"} 1)") !=
        std::string::npos);
  // One family per name, however many clients.
  std::size_t families = 0;
  for (std::size_t at = 0; (at = text.find("# TYPE upstream_calls_total ", at)) != std::string::npos; ++at) {
    ++families;
  }
  CHECK(families == 1);
}

TEST_CASE("client metrics: a Throw registry refuses the second client by name", "[http][client]") {
  auto registry = std::make_shared<prometheus::Registry>(prometheus::Registry::InsertBehavior::Throw);
  d::ClientMetrics first(registry.get(), "users");
  try {
    d::ClientMetrics second(registry.get(), "templates");
    FAIL("second client accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("upstream_calls_total") != std::string::npos);
    CHECK(std::string(e.what()).find("InsertBehavior::Merge") != std::string::npos);
  }
}

TEST_CASE("client metrics: a null registry records nothing and does not crash", "[http][client]") {
  d::ClientMetrics metrics(nullptr, "users");
  metrics.on_attempt();
  metrics.on_retry();
  metrics.on_call(d::CallOutcomeLabel::deadline_exceeded, 1ms, true);
  metrics.on_breaker_transition(BreakerState::closed, BreakerState::open);
  SUCCEED("no registry, no metrics");
}
