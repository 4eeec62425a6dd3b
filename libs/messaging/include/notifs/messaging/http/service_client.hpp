#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/message.hpp"
#include "notifs/messaging/http/server.hpp"
#include "notifs/messaging/resilience/backoff.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"
#include "notifs/messaging/resilience/retry_budget.hpp"

namespace prometheus {
class Registry;
}
namespace notifs::messaging::common {
class Random;
}

namespace notifs::messaging::http {

// Why a call produced no response. A non-2xx answer is a response, never one of these.
enum class ClientErrc {
  circuit_open = 1,   // the upstream's breaker refused the call; nothing was sent
  deadline_exceeded,  // the call's total deadline passed (connect, send or receive)
  connect_failed,     // could not open a connection (refused, unreachable, DNS)
  connection_lost,    // the connection broke before a whole response arrived
  protocol_error,     // the upstream sent something that is not HTTP, or too large
  shutting_down,      // the client is being destroyed
};
const std::error_category& client_category();
std::error_code make_error_code(ClientErrc errc);

// Thrown by the blocking and future forms of a call.
class UpstreamError : public std::runtime_error {
 public:
  UpstreamError(std::string upstream, std::error_code error, const std::string& detail);
  const std::string& upstream() const { return upstream_; }
  std::error_code error() const { return error_; }

 private:
  std::string upstream_;
  std::error_code error_;
};
// The breaker is open: callers catch this one to serve cached data instead.
class CircuitOpenError : public UpstreamError {
 public:
  using UpstreamError::UpstreamError;
};

// What is carried from the inbound request to every downstream call made for it.
struct CallContext {
  std::string request_id;   // sent as X-Request-ID (a new one when empty)
  std::string traceparent;  // continued with a new span id (a new trace when empty)
};

struct ClientRequest {
  Method method = Method::get;
  std::string target;  // path and query, e.g. "/api/v1/users/42"
  Headers headers;     // extra headers; Host, auth, ids and content-type are set by the client
  std::string body;    // sent as application/json when not empty
  // Whether a failed attempt may be sent again. Default: GET, HEAD, PUT, DELETE and
  // OPTIONS yes; POST yes, because every attempt carries the same X-Request-ID for the
  // upstream to de-duplicate on; PATCH no.
  std::optional<bool> retryable;
  std::optional<std::chrono::milliseconds> deadline;  // overrides the settings' deadline
};

struct ClientResponse {
  unsigned status = 0;
  Headers headers;
  std::string body;
  std::uint32_t attempts = 0;  // how many attempts were sent for this call
};

struct ClientResult {
  std::error_code error;  // set when there is no response
  std::string detail;     // context for the error: last attempt's failure
  ClientResponse response;  // on an error only `attempts` is filled in
  explicit operator bool() const { return !error; }
};

struct ServiceClientSettings {
  std::string name = "upstream";    // metrics label and error context
  std::string base_url;             // "http://host:port"; https:// uses TLS with peer verification
  std::string service_token;        // sent as Authorization: Bearer when not empty
  std::string tls_ca_file;          // https: a PEM bundle trusted besides the system CAs
  std::chrono::milliseconds connect_timeout{1000};  // one TCP (and TLS) connect
  std::chrono::milliseconds attempt_timeout{2000};  // one attempt, clamped to the deadline
  std::chrono::milliseconds deadline{5000};         // the whole call, retries and waits included
  std::uint32_t max_attempts = 3;                   // first try included
  resilience::BackoffSettings backoff{};            // wait between attempts (full jitter)
  resilience::RetryBudgetSettings retry_budget{};   // limits retries during an outage
  resilience::CircuitBreakerSettings breaker{};     // per upstream
  std::size_t max_idle_connections = 64;            // keep-alive connections kept for reuse
  std::chrono::milliseconds idle_connection_timeout{30000};  // older idle ones are closed
  std::size_t response_body_limit = 4 * 1024 * 1024;
  std::size_t io_threads = 1;                       // the client's own io threads
};

// The resilient HTTP client every service-to-service call goes through, one per upstream.
//
// Each call: breaker check (open -> ClientErrc::circuit_open at once), then attempts on
// pooled keep-alive connections, each bounded by min(attempt_timeout, time left); a
// retryable failure (connect error, lost connection, timeout, 5xx, 429) is retried after
// full-jitter backoff, or after Retry-After when the upstream sends one and it fits in the
// deadline, while attempts and the retry budget allow. Every attempt of one call carries
// the same X-Request-ID. The breaker sees one outcome per call attempt.
//
// Decisions worth knowing:
// - 429 is retried (honouring Retry-After) and takes from the retry budget, but the breaker
//   counts it as a success: the upstream is alive and fast, and opening the breaker would
//   turn one caller's quota into an outage for every request of this process. 5xx,
//   timeouts, connection and protocol errors are breaker failures; other 4xx successes.
// - A stale pooled connection (it fails before any response byte: the keep-alive race) is
//   re-sent at once on a fresh connection, once per attempt, not counted as an attempt.
//   Requests that are not retryable (PATCH) always use a fresh connection, so they never
//   meet that ambiguity.
// - When the breaker opens between attempts, the call ends with its last outcome.
// - An attempt cut short by shutdown is not reported to the breaker (it dies with the client).
// - A call the breaker refuses is settled on the caller's thread: call()'s future is ready
//   when it returns (async_call still runs its callback on the io thread).
//
// Metrics, when a registry is given, labelled upstream = settings.name:
// upstream_calls_total{outcome} (success, client_error, server_error, or the ClientErrc
// name), upstream_attempts_total, upstream_retries_total, upstream_call_duration_seconds
// (calls that were sent), upstream_breaker_state (0 closed, 1 open, 2 half-open),
// upstream_breaker_transitions_total{from,to}. Health checks are not counted. Clients share
// a registry through prometheus-cpp's default InsertBehavior::Merge; a Throw registry makes
// the second client's constructor throw std::invalid_argument.
//
// Thread-safe. async_call never blocks; its callback runs on the client's io thread and
// must not block or throw (an exception is logged and dropped). call() returns a future;
// call_sync() and health_check() block and throw std::logic_error on the client's own io
// thread. The constructor throws std::invalid_argument for a malformed base_url, invalid
// breaker or backoff settings or an unreadable tls_ca_file, and
// async_call/call throw it for a request that cannot be sent (target not starting with '/',
// CR/LF in a header, Method::other, empty callback).
// Destroying the client completes pending calls with shutting_down (their callbacks run
// before the destructor returns) and joins its threads. Destroying it from one of its own
// callbacks is not allowed (it would join the thread it runs on): that aborts the process.
class ServiceClient {
 public:
  using Callback = std::function<void(ClientResult result)>;

  explicit ServiceClient(ServiceClientSettings settings,
                         std::shared_ptr<prometheus::Registry> registry = nullptr,
                         const common::Clock& clock = common::SystemClock::instance(),
                         std::shared_ptr<common::Random> random = nullptr);
  ~ServiceClient();
  ServiceClient(const ServiceClient&) = delete;
  ServiceClient& operator=(const ServiceClient&) = delete;

  void async_call(ClientRequest request, CallContext context, Callback callback);
  // Resolves with any HTTP response (2xx or not); fails with CircuitOpenError or
  // UpstreamError when there is none.
  std::future<ClientResponse> call(ClientRequest request, CallContext context = {});
  ClientResponse call_sync(ClientRequest request, CallContext context = {});

  // GET /health with a short timeout, outside the breaker and the retries; also reports
  // the breaker. Blocks: call it from a readiness check (worker pool), not an io thread.
  // A 2xx is ok with state "up", or the breaker's state ("open", "half_open") while it is
  // not closed; anything else is not ok, state "down", with the reason in detail.
  DependencyStatus health_check(std::chrono::milliseconds timeout = std::chrono::milliseconds{1000});

  resilience::BreakerState breaker_state() const;
  const ServiceClientSettings& settings() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace notifs::messaging::http

template <>
struct std::is_error_code_enum<notifs::messaging::http::ClientErrc> : std::true_type {};
