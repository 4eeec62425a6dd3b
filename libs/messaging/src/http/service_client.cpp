#include "detail/asio.hpp"

#include "notifs/messaging/http/service_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "http/client_connection_pool.hpp"
#include "http/client_metrics.hpp"
#include "http/client_policy.hpp"
#include "http/client_url.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/common/trace_context.hpp"

namespace notifs::messaging::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------
// Errors

namespace {

class ClientCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "notifs.http.client"; }
  std::string message(int value) const override {
    switch (static_cast<ClientErrc>(value)) {
      case ClientErrc::circuit_open: return "circuit breaker open";
      case ClientErrc::deadline_exceeded: return "deadline exceeded";
      case ClientErrc::connect_failed: return "connect failed";
      case ClientErrc::connection_lost: return "connection lost";
      case ClientErrc::protocol_error: return "protocol error";
      case ClientErrc::shutting_down: return "client shutting down";
    }
    return "unknown client error";
  }
};

std::string upstream_error_message(const std::string& upstream, std::error_code error,
                                   const std::string& detail) {
  std::string text = "upstream " + upstream + ": " + error.message();
  if (!detail.empty()) text += ": " + detail;
  return text;
}

}  // namespace

const std::error_category& client_category() {
  static const ClientCategory category;
  return category;
}

std::error_code make_error_code(ClientErrc errc) {
  return {static_cast<int>(errc), client_category()};
}

UpstreamError::UpstreamError(std::string upstream, std::error_code error, const std::string& detail)
    : std::runtime_error(upstream_error_message(upstream, error, detail)),
      upstream_(std::move(upstream)),
      error_(error) {}

// ---------------------------------------------------------------------------------------
// Helpers

namespace {

bool valid_header_name(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    // RFC 9110 token characters.
    return std::isalnum(c) != 0 || std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
                                       std::string_view::npos;
  });
}

bool valid_header_value(std::string_view value) {
  return std::none_of(value.begin(), value.end(), [](unsigned char c) {
    return c == '\r' || c == '\n' || c == '\0';
  });
}

bool valid_target(std::string_view target) {
  if (target.empty() || target.front() != '/') return false;
  return std::none_of(target.begin(), target.end(),
                      [](unsigned char c) { return c <= 0x20 || c == 0x7f; });
}

bhttp::verb to_verb(Method method) {
  switch (method) {
    case Method::get: return bhttp::verb::get;
    case Method::head: return bhttp::verb::head;
    case Method::post: return bhttp::verb::post;
    case Method::put: return bhttp::verb::put;
    case Method::patch: return bhttp::verb::patch;
    case Method::delete_: return bhttp::verb::delete_;
    case Method::options: return bhttp::verb::options;
    case Method::other: break;
  }
  throw std::invalid_argument("ServiceClient cannot send Method::other");
}

// Headers the client owns; a caller's copy is dropped rather than sent twice.
bool client_owned_header(std::string_view name) {
  for (std::string_view owned : {"host", "authorization", "x-request-id", "traceparent",
                                 "content-type", "content-length", "transfer-encoding",
                                 "connection", "keep-alive", "upgrade", "te"}) {
    if (iequals(name, owned)) return true;
  }
  return false;
}

detail::CallOutcomeLabel outcome_label(const ClientResult& result) {
  using detail::CallOutcomeLabel;
  if (result.error) {
    if (result.error.category() == client_category()) {
      switch (static_cast<ClientErrc>(result.error.value())) {
        case ClientErrc::circuit_open: return CallOutcomeLabel::circuit_open;
        case ClientErrc::deadline_exceeded: return CallOutcomeLabel::deadline_exceeded;
        case ClientErrc::connect_failed: return CallOutcomeLabel::connect_failed;
        case ClientErrc::connection_lost: return CallOutcomeLabel::connection_lost;
        case ClientErrc::protocol_error: return CallOutcomeLabel::protocol_error;
        case ClientErrc::shutting_down: return CallOutcomeLabel::shutting_down;
      }
    }
    return CallOutcomeLabel::connection_lost;
  }
  if (result.response.status >= 500) return CallOutcomeLabel::server_error;
  if (result.response.status >= 400) return CallOutcomeLabel::client_error;
  return CallOutcomeLabel::success;
}

long long to_ms(SteadyClock::duration d) {
  return std::chrono::duration_cast<milliseconds>(d).count();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Impl

struct ServiceClient::Impl {
  class Call;

  // What one call sends and how hard it tries; built on the caller's thread.
  struct Plan {
    bhttp::request<bhttp::string_body> request;
    std::string label;  // "GET /path" (no query: it may carry ids we do not log)
    std::string request_id;
    bool retryable = true;
    std::uint32_t max_attempts = 1;
    SteadyClock::time_point started;
    SteadyClock::time_point deadline;
    bool via_breaker = true;  // false for health checks
    bool use_budget = true;
    bool count_metrics = true;
    bool permit_held = false;  // the first attempt's breaker permit was taken by start_call
  };

  Impl(ServiceClientSettings settings_in, std::shared_ptr<prometheus::Registry> registry_in,
       const common::Clock& clock_in, std::shared_ptr<common::Random> random_in);
  ~Impl();

  void run();
  void shutdown();
  bool on_io_thread() const;
  void throw_if_io_thread(const char* what) const;

  // How a call is run; health checks bypass the breaker, the budget and the metrics.
  struct CallOptions {
    bool via_breaker = true;
    bool use_budget = true;
    bool count_metrics = true;
    std::optional<std::uint32_t> max_attempts;
  };

  void validate(const ClientRequest& request) const;
  static std::string label_of(const ClientRequest& request, const detail::BaseUrl& base);
  Plan make_plan(ClientRequest request, const CallContext& context, std::string label,
                 SteadyClock::time_point started);
  // Validates (throws std::invalid_argument), then checks the breaker before building
  // anything: a refused call costs a mutex and a string, no thread hop and no request.
  void start_call(ClientRequest request, const CallContext& context, Callback callback,
                  bool complete_refusal_inline, CallOptions options);
  void deliver_now(const Callback& callback, ClientResult result, bool inline_call);
  void invoke(const Callback& callback, ClientResult result) noexcept;
  void unregister(Call* call);
  void arm_sweep();
  void on_transition(resilience::BreakerState from, resilience::BreakerState to);

  ServiceClientSettings settings;
  detail::BaseUrl url;
  std::optional<tcp::endpoint> literal_endpoint;  // host is an address: no resolver round
  std::shared_ptr<prometheus::Registry> registry;
  const common::Clock& clock;
  std::shared_ptr<common::Random> random;
  std::shared_ptr<spdlog::logger> log;
  resilience::JitteredExponentialBackoff backoff;
  resilience::RetryBudget budget;
  detail::ClientMetrics metrics;
  resilience::CircuitBreaker breaker;  // after metrics: its listener writes them

  asio::io_context ioc;
  std::optional<ssl::context> tls;
  detail::ConnectionPool pool;
  asio::strand<asio::io_context::executor_type> sweep_strand;
  asio::steady_timer sweep_timer;

  std::atomic<bool> stopping{false};
  std::atomic<std::uint64_t> next_connection_id{1};
  std::mutex calls_mutex;
  std::unordered_map<Call*, std::weak_ptr<Call>> calls;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::vector<std::thread::id> thread_ids;
  bool shut_down = false;
};

// One call: its attempts, waits and connection, all on its own strand, so `io_threads > 1`
// needs no locks here. Handlers hold the Call (shared_from_this) and the Exchange they
// started with; an Exchange that is no longer current (timed out, replaced) only has its
// late completions ignored, and stays alive until they have run, because Beast still
// touches the buffer and parser when an aborted read completes.
class ServiceClient::Impl::Call : public std::enable_shared_from_this<Call> {
 public:
  Call(Impl& impl, Plan plan, Callback callback)
      : impl_(impl),
        strand_(asio::make_strand(impl.ioc)),
        timer_(strand_),
        resolver_(strand_),
        plan_(std::move(plan)),
        callback_(std::move(callback)) {}

  void start() {
    asio::post(strand_, [self = shared_from_this()] { self->begin_attempt(); });
  }

  void abort_for_shutdown() {
    asio::post(strand_, [self = shared_from_this()] {
      self->complete(make_error_code(ClientErrc::shutting_down),
                     "the client was destroyed with the call in flight");
    });
  }

 private:
  enum class Phase { idle, connecting, exchanging, waiting };
  enum class Limit { call_deadline, attempt_timeout, connect_timeout };

  struct Exchange {
    std::shared_ptr<detail::ClientConnection> connection;
    bool reused = false;
    std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  };

  // What one attempt came to.
  struct Outcome {
    std::error_code error;
    std::string detail;
    ClientResponse response;
  };

  template <typename Handler>
  auto on_strand(Handler&& handler) {
    return asio::bind_executor(strand_, std::forward<Handler>(handler));
  }

  bool current(const std::shared_ptr<Exchange>& exchange) const {
    return !done_ && exchange == exchange_;
  }

  void begin_attempt() {
    if (done_) return;
    if (impl_.stopping.load()) {
      complete(make_error_code(ClientErrc::shutting_down), "the client is shutting down");
      return;
    }
    const bool need_permit = plan_.via_breaker && (attempts_ > 0 || !plan_.permit_held);
    if (need_permit && !impl_.breaker.try_acquire()) {
      if (attempts_ == 0) {
        complete(make_error_code(ClientErrc::circuit_open),
                 plan_.label + ": circuit breaker open for another " +
                     std::to_string(impl_.breaker.remaining_open().count()) + " ms");
      } else {
        finish_with_last("circuit breaker opened, no further attempt");
      }
      return;
    }
    ++attempts_;
    if (plan_.count_metrics) impl_.metrics.on_attempt();
    attempt_clock_start_ = impl_.clock.now();
    const auto now = SteadyClock::now();
    attempt_deadline_ = std::min(now + impl_.settings.attempt_timeout, plan_.deadline);
    stale_resend_used_ = false;
    // Only a request that may be repeated rides a pooled connection: a stale one is then
    // re-sent safely. The others pay for a handshake instead of risking an ambiguous loss.
    std::shared_ptr<detail::ClientConnection> pooled =
        plan_.retryable ? impl_.pool.take() : nullptr;
    if (pooled) {
      exchange_ = std::make_shared<Exchange>();
      exchange_->connection = std::move(pooled);
      exchange_->reused = true;
      arm_timer(attempt_deadline_, Phase::exchanging);
      send(exchange_);
    } else {
      connect_fresh();
    }
  }

  void connect_fresh() {
    auto exchange = std::make_shared<Exchange>();
    exchange->connection = std::make_shared<detail::ClientConnection>(
        impl_.ioc.get_executor(), impl_.tls ? &*impl_.tls : nullptr,
        impl_.next_connection_id.fetch_add(1));
    exchange_ = exchange;
    const auto now = SteadyClock::now();
    arm_timer(std::min(attempt_deadline_, now + impl_.settings.connect_timeout), Phase::connecting);
    if (impl_.literal_endpoint) {
      exchange->connection->socket().async_connect(
          *impl_.literal_endpoint,
          on_strand([self = shared_from_this(), exchange](boost::system::error_code ec) {
            self->on_connected(exchange, ec);
          }));
      return;
    }
    resolver_.async_resolve(
        impl_.url.host, std::to_string(impl_.url.port),
        [self = shared_from_this(), exchange](boost::system::error_code ec,
                                              tcp::resolver::results_type results) {
          self->on_resolved(exchange, ec, std::move(results));
        });
  }

  void on_resolved(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec,
                   tcp::resolver::results_type results) {
    if (!current(exchange)) return;
    if (ec) {
      fail_attempt(make_error_code(ClientErrc::connect_failed),
                   "resolving " + impl_.url.host + ": " + ec.message());
      return;
    }
    asio::async_connect(
        exchange->connection->socket(), results,
        on_strand([self = shared_from_this(), exchange](boost::system::error_code connect_ec,
                                                        const tcp::endpoint&) {
          self->on_connected(exchange, connect_ec);
        }));
  }

  void on_connected(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec) {
    if (!current(exchange)) return;
    if (ec) {
      fail_attempt(make_error_code(ClientErrc::connect_failed),
                   "connect to " + impl_.url.authority() + ": " + ec.message());
      return;
    }
    boost::system::error_code ignored;
    exchange->connection->socket().set_option(tcp::no_delay(true), ignored);
    auto* stream = exchange->connection->tls();
    if (stream == nullptr) {
      arm_timer(attempt_deadline_, Phase::exchanging);
      send(exchange);
      return;
    }
    SSL* native = stream->native_handle();
    bool configured = false;
    if (impl_.url.host_is_ip) {
      configured = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(native), impl_.url.host.c_str()) == 1;
    } else {
      // SNI for virtual hosting, and the name the certificate must carry.
      // SSL_set_tlsext_host_name without its macro's old-style cast.
      configured = SSL_ctrl(native, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                            const_cast<char*>(impl_.url.host.c_str())) == 1 &&
                   SSL_set1_host(native, impl_.url.host.c_str()) == 1;
    }
    if (!configured) {
      fail_attempt(make_error_code(ClientErrc::connect_failed),
                   "TLS setup for " + impl_.url.host + " failed");
      return;
    }
    stream->set_verify_mode(ssl::verify_peer);
    stream->async_handshake(
        ssl::stream_base::client,
        on_strand([self = shared_from_this(), exchange](boost::system::error_code handshake_ec) {
          if (!self->current(exchange)) return;
          if (handshake_ec) {
            self->fail_attempt(make_error_code(ClientErrc::connect_failed),
                               "TLS handshake with " + self->impl_.url.authority() + ": " +
                                   handshake_ec.message());
            return;
          }
          self->arm_timer(self->attempt_deadline_, Phase::exchanging);
          self->send(exchange);
        }));
  }

  void send(const std::shared_ptr<Exchange>& exchange) {
    auto handler = on_strand([self = shared_from_this(), exchange](boost::system::error_code ec,
                                                                   std::size_t) {
      self->on_written(exchange, ec);
    });
    if (auto* stream = exchange->connection->tls()) {
      bhttp::async_write(*stream, plan_.request, std::move(handler));
    } else {
      bhttp::async_write(exchange->connection->socket(), plan_.request, std::move(handler));
    }
  }

  void on_written(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec) {
    if (!current(exchange)) return;
    if (ec) {
      on_io_error(exchange, ec, "sending the request");
      return;
    }
    read_header(exchange);
  }

  // The header first, then the body: Beast 1.74's response parser, in the eager mode
  // async_read uses, skips its Content-Length body_limit check when the header and the
  // body arrive in one read, so the limit is enforced in on_header between the two.
  void read_header(const std::shared_ptr<Exchange>& exchange) {
    exchange->parser.emplace();
    exchange->parser->body_limit(impl_.settings.response_body_limit);
    if (plan_.request.method() == bhttp::verb::head) exchange->parser->skip(true);
    auto handler = on_strand([self = shared_from_this(), exchange](boost::system::error_code read_ec,
                                                                   std::size_t) {
      self->on_header(exchange, read_ec);
    });
    auto& buffer = exchange->connection->buffer();
    if (auto* stream = exchange->connection->tls()) {
      bhttp::async_read_header(*stream, buffer, *exchange->parser, std::move(handler));
    } else {
      bhttp::async_read_header(exchange->connection->socket(), buffer, *exchange->parser,
                               std::move(handler));
    }
  }

  void on_header(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec) {
    if (!current(exchange)) return;
    if (ec) {
      on_io_error(exchange, ec, "reading the response header");
      return;
    }
    const unsigned status = exchange->parser->get().result_int();
    if (status >= 100 && status < 200 && status != 101) {
      // An interim answer (100 Continue, 103 Early Hints): the real one follows.
      read_header(exchange);
      return;
    }
    if (const auto length = exchange->parser->content_length();
        length && *length > impl_.settings.response_body_limit) {
      on_io_error(exchange, bhttp::error::body_limit, "reading the response header");
      return;
    }
    if (exchange->parser->is_done()) {
      on_read(exchange, {});
      return;
    }
    auto handler = on_strand([self = shared_from_this(), exchange](boost::system::error_code read_ec,
                                                                   std::size_t) {
      self->on_read(exchange, read_ec);
    });
    auto& buffer = exchange->connection->buffer();
    if (auto* stream = exchange->connection->tls()) {
      bhttp::async_read(*stream, buffer, *exchange->parser, std::move(handler));
    } else {
      bhttp::async_read(exchange->connection->socket(), buffer, *exchange->parser,
                        std::move(handler));
    }
  }

  void on_read(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec) {
    if (!current(exchange)) return;
    if (ec) {
      on_io_error(exchange, ec, "reading the response");
      return;
    }
    auto message = exchange->parser->release();
    Outcome outcome;
    outcome.response.status = message.result_int();
    for (const auto& field : message) {
      outcome.response.headers.add(std::string(field.name_string()), std::string(field.value()));
    }
    outcome.response.body = std::move(message.body());
    exchange_.reset();
    exchange->connection->count_request();
    // Bytes beyond the message would be read as the start of the next response.
    const bool clean = exchange->connection->buffer().size() == 0;
    if (message.keep_alive() && clean && !impl_.stopping.load()) {
      impl_.pool.put(std::move(exchange->connection));
    } else {
      exchange->connection->close();
    }
    finish_attempt(std::move(outcome));
  }

  void on_io_error(const std::shared_ptr<Exchange>& exchange, boost::system::error_code ec,
                   const char* stage) {
    const bool nothing_received = !exchange->parser || !exchange->parser->got_some();
    exchange->connection->close();
    exchange_.reset();
    if (exchange->reused && nothing_received && !stale_resend_used_) {
      // The keep-alive race: the server closed this idle connection while we reused it.
      // Nothing of the response arrived, so the request is sent again on a new connection,
      // once, without counting an attempt (only retryable requests use pooled connections).
      stale_resend_used_ = true;
      impl_.log->debug("stale keep-alive connection upstream={} request_id={} err={}",
                       impl_.settings.name, plan_.request_id, ec.message());
      connect_fresh();
      return;
    }
    std::string detail = std::string(stage) + " on " + impl_.url.authority() + ": " + ec.message();
    if (ec == bhttp::error::body_limit) {
      fail_attempt(make_error_code(ClientErrc::protocol_error),
                   "response body over " + std::to_string(impl_.settings.response_body_limit) +
                       " bytes");
    } else if (ec.category() != bhttp::make_error_code(bhttp::error::end_of_stream).category() ||
               ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
      // Socket and TLS errors, or Beast's "closed before (the end of) a message".
      fail_attempt(make_error_code(ClientErrc::connection_lost), std::move(detail));
    } else {
      // Whatever else Beast's parser refuses is not HTTP we can use.
      fail_attempt(make_error_code(ClientErrc::protocol_error), std::move(detail));
    }
  }

  void arm_timer(SteadyClock::time_point when, Phase phase) {
    phase_ = phase;
    const auto gen = ++timer_gen_;
    if (phase == Phase::waiting) {
      limit_ = Limit::call_deadline;
    } else if (when >= plan_.deadline) {
      limit_ = Limit::call_deadline;
    } else if (when >= attempt_deadline_) {
      limit_ = Limit::attempt_timeout;
    } else {
      limit_ = Limit::connect_timeout;
    }
    timer_.expires_at(when);
    timer_.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted) return;
      self->on_timer(gen);
    });
  }

  void disarm_timer() {
    ++timer_gen_;
    timer_.cancel();
  }

  void on_timer(std::uint64_t gen) {
    if (done_ || gen != timer_gen_) return;
    if (phase_ == Phase::waiting) {
      phase_ = Phase::idle;
      begin_attempt();
      return;
    }
    const bool connecting = phase_ == Phase::connecting;
    resolver_.cancel();
    if (exchange_) {
      exchange_->connection->close();
      exchange_.reset();
    }
    const char* doing = connecting ? "connecting" : "waiting for the response";
    switch (limit_) {
      case Limit::call_deadline:
        fail_attempt(make_error_code(ClientErrc::deadline_exceeded),
                     "call deadline passed while " + std::string(doing));
        break;
      case Limit::attempt_timeout:
        fail_attempt(make_error_code(ClientErrc::deadline_exceeded),
                     "attempt timed out after " +
                         std::to_string(impl_.settings.attempt_timeout.count()) + " ms while " +
                         doing);
        break;
      case Limit::connect_timeout:
        fail_attempt(make_error_code(ClientErrc::connect_failed),
                     "connect to " + impl_.url.authority() + " timed out after " +
                         std::to_string(impl_.settings.connect_timeout.count()) + " ms");
        break;
    }
  }

  void fail_attempt(std::error_code error, std::string detail) {
    Outcome outcome;
    outcome.error = error;
    outcome.detail = std::move(detail);
    finish_attempt(std::move(outcome));
  }

  void finish_attempt(Outcome outcome) {
    disarm_timer();
    resolver_.cancel();
    if (exchange_) {
      exchange_->connection->close();
      exchange_.reset();
    }
    phase_ = Phase::idle;
    const bool got_response = !outcome.error;
    const bool outcome_retryable = got_response ? detail::status_is_retryable(outcome.response.status)
                                                : detail::error_is_retryable(outcome.error);
    if (plan_.via_breaker) {
      const auto breaker_outcome = got_response ? detail::breaker_outcome(outcome.response.status)
                                                : resilience::CallOutcome::failure;
      impl_.breaker.record(breaker_outcome, impl_.clock.now() - attempt_clock_start_);
    }
    if (plan_.use_budget) {
      if (outcome_retryable) {
        impl_.budget.on_failure();
      } else {
        impl_.budget.on_success();
      }
    }
    std::optional<milliseconds> retry_after;
    if (got_response) {
      if (auto value = outcome.response.headers.get("Retry-After")) {
        retry_after = detail::parse_retry_after(*value, std::chrono::system_clock::now());
      }
    }
    last_ = std::move(outcome);

    detail::RetryInputs inputs;
    inputs.request_retryable = plan_.retryable;
    inputs.outcome_retryable = outcome_retryable;
    inputs.attempts_made = attempts_;
    inputs.max_attempts = plan_.max_attempts;
    inputs.budget_allows = !plan_.use_budget || impl_.budget.can_retry();
    inputs.remaining = std::chrono::duration_cast<milliseconds>(plan_.deadline - SteadyClock::now());
    inputs.retry_after = retry_after;
    if (outcome_retryable && !retry_after) inputs.backoff = impl_.backoff.next_delay(attempts_);
    const auto decision = detail::decide_retry(inputs);
    if (!decision.retry()) {
      finish_with_last(decision.verdict == detail::RetryVerdict::final_outcome
                           ? std::string{}
                           : std::string(detail::to_string(decision.verdict)));
      return;
    }
    if (plan_.count_metrics) impl_.metrics.on_retry();
    impl_.log->debug("retrying upstream={} request_id={} attempt={} wait_ms={} after={}",
                     impl_.settings.name, plan_.request_id, attempts_, decision.wait.count(),
                     last_.error ? last_.error.message() : std::to_string(last_.response.status));
    arm_timer(SteadyClock::now() + decision.wait, Phase::waiting);
  }

  // Ends the call with the last attempt's outcome; `why_stopped` says why no retry followed.
  void finish_with_last(const std::string& why_stopped) {
    if (!last_.error) {
      complete(std::move(last_.response));
      return;
    }
    std::string detail = plan_.label + ": " + last_.detail + " (attempt " +
                         std::to_string(attempts_) + " of " + std::to_string(plan_.max_attempts);
    if (!why_stopped.empty()) detail += "; " + why_stopped;
    detail += ")";
    complete(last_.error, std::move(detail));
  }

  void complete(ClientResponse response) {
    ClientResult result;
    result.response = std::move(response);
    deliver(std::move(result));
  }

  void complete(std::error_code error, std::string detail) {
    ClientResult result;
    result.error = error;
    result.detail = std::move(detail);
    deliver(std::move(result));
  }

  void deliver(ClientResult result) {
    if (done_) return;
    done_ = true;
    disarm_timer();
    resolver_.cancel();
    if (exchange_) {
      exchange_->connection->close();
      exchange_.reset();
    }
    impl_.unregister(this);
    result.response.attempts = attempts_;
    const auto elapsed = SteadyClock::now() - plan_.started;
    if (plan_.count_metrics) {
      impl_.metrics.on_call(outcome_label(result), elapsed, attempts_ > 0);
    }
    if (result.error) {
      impl_.log->debug("call failed upstream={} request_id={} attempts={} elapsed_ms={} err={}",
                       impl_.settings.name, plan_.request_id, attempts_, to_ms(elapsed),
                       result.detail);
    }
    auto callback = std::move(callback_);
    impl_.invoke(callback, std::move(result));
  }

  Impl& impl_;
  asio::strand<asio::io_context::executor_type> strand_;
  asio::steady_timer timer_;
  tcp::resolver resolver_;
  Plan plan_;
  Callback callback_;

  std::shared_ptr<Exchange> exchange_;
  Phase phase_ = Phase::idle;
  Limit limit_ = Limit::call_deadline;
  std::uint64_t timer_gen_ = 0;
  std::uint32_t attempts_ = 0;
  bool stale_resend_used_ = false;
  bool done_ = false;
  SteadyClock::time_point attempt_deadline_{};
  common::Clock::time_point attempt_clock_start_{};
  Outcome last_;
};

ServiceClient::Impl::Impl(ServiceClientSettings settings_in,
                          std::shared_ptr<prometheus::Registry> registry_in,
                          const common::Clock& clock_in,
                          std::shared_ptr<common::Random> random_in)
    : settings(std::move(settings_in)),
      url(detail::parse_base_url(settings.base_url)),
      registry(std::move(registry_in)),
      clock(clock_in),
      random(random_in ? std::move(random_in) : std::make_shared<common::DefaultRandom>()),
      log(common::logger("http")),
      backoff(settings.backoff, *random),
      budget(settings.retry_budget),
      metrics(registry.get(), settings.name),
      breaker(settings.breaker, clock,
              [this](resilience::BreakerState from, resilience::BreakerState to) {
                on_transition(from, to);
              }),
      pool(detail::PoolSettings{settings.max_idle_connections, settings.idle_connection_timeout}),
      sweep_strand(asio::make_strand(ioc)),
      sweep_timer(sweep_strand) {
  if (settings.max_attempts == 0) settings.max_attempts = 1;
  if (settings.io_threads == 0) settings.io_threads = 1;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(url.host, ec);
  if (!ec) literal_endpoint = tcp::endpoint(address, url.port);
  if (url.tls) {
    tls.emplace(ssl::context::tls_client);
    SSL_CTX_set_min_proto_version(tls->native_handle(), TLS1_2_VERSION);
    tls->set_default_verify_paths();
    if (!settings.tls_ca_file.empty()) {
      tls->load_verify_file(settings.tls_ca_file, ec);
      if (ec) {
        throw std::invalid_argument("ServiceClient " + settings.name + ": cannot load tls_ca_file " +
                                    settings.tls_ca_file + ": " + ec.message());
      }
    }
    tls->set_verify_mode(ssl::verify_peer);
  }
}

ServiceClient::Impl::~Impl() { shutdown(); }

void ServiceClient::Impl::run() {
  work.emplace(ioc.get_executor());
  arm_sweep();
  threads.reserve(settings.io_threads);
  for (std::size_t i = 0; i < settings.io_threads; ++i) {
    threads.emplace_back([this] {
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (const std::exception& e) {
          // Handlers catch what they call; reaching here is a bug, but a dead io thread
          // would hang every later call, so keep serving.
          log->error("io thread error upstream={} err={}", settings.name, e.what());
        }
      }
    });
    thread_ids.push_back(threads.back().get_id());
  }
}

bool ServiceClient::Impl::on_io_thread() const {
  const auto me = std::this_thread::get_id();
  return std::find(thread_ids.begin(), thread_ids.end(), me) != thread_ids.end();
}

void ServiceClient::Impl::throw_if_io_thread(const char* what) const {
  if (on_io_thread()) {
    throw std::logic_error(std::string("ServiceClient::") + what +
                           " blocks and must not run on the client's own io thread");
  }
}

void ServiceClient::Impl::shutdown() {
  if (shut_down) return;
  shut_down = true;
  if (on_io_thread()) {
    log->critical("ServiceClient {} destroyed from its own callback; that would join the "
                  "thread it runs on",
                  settings.name);
    std::terminate();
  }
  stopping.store(true);
  std::vector<std::shared_ptr<Call>> live;
  {
    std::lock_guard lock(calls_mutex);
    for (auto& [raw, weak] : calls) {
      if (auto call = weak.lock()) live.push_back(std::move(call));
    }
  }
  for (auto& call : live) call->abort_for_shutdown();
  live.clear();
  asio::post(sweep_strand, [this] { sweep_timer.cancel(); });
  pool.close_all();
  work.reset();
  // run() returns once every aborted call has completed and every socket handler has seen
  // operation_aborted: nothing is left to outlive the io_context.
  for (auto& thread : threads) {
    if (thread.joinable()) thread.join();
  }
}

void ServiceClient::Impl::arm_sweep() {
  const auto period = std::max<milliseconds>(settings.idle_connection_timeout / 2, milliseconds{100});
  sweep_timer.expires_after(period);
  sweep_timer.async_wait([this](boost::system::error_code ec) {
    if (ec || stopping.load()) return;
    if (const auto closed = pool.sweep(); closed > 0) {
      log->debug("closed idle connections upstream={} count={}", settings.name, closed);
    }
    arm_sweep();
  });
}

void ServiceClient::Impl::on_transition(resilience::BreakerState from, resilience::BreakerState to) {
  metrics.on_breaker_transition(from, to);
  if (to == resilience::BreakerState::open) {
    log->warn("circuit breaker open upstream={} from={} failure_rate={:.2f}", settings.name,
              resilience::to_string(from), breaker.failure_rate());
  } else {
    log->info("circuit breaker transition upstream={} from={} to={}", settings.name,
              resilience::to_string(from), resilience::to_string(to));
  }
}

void ServiceClient::Impl::validate(const ClientRequest& request) const {
  if (!valid_target(request.target)) {
    throw std::invalid_argument("ServiceClient " + settings.name +
                                ": target must start with '/' and hold no spaces or controls");
  }
  (void)to_verb(request.method);  // throws for Method::other
  for (const auto& [name, value] : request.headers) {
    if (!valid_header_name(name) || !valid_header_value(value)) {
      throw std::invalid_argument("ServiceClient " + settings.name + ": header " + name +
                                  " has a malformed name or value");
    }
  }
}

std::string ServiceClient::Impl::label_of(const ClientRequest& request,
                                          const detail::BaseUrl& base) {
  const auto query = request.target.find('?');
  return std::string(to_string(request.method)) + " " + base.path_prefix +
         request.target.substr(0, query);
}

ServiceClient::Impl::Plan ServiceClient::Impl::make_plan(ClientRequest request,
                                                         const CallContext& context,
                                                         std::string label,
                                                         SteadyClock::time_point started) {
  Plan plan;
  auto& req = plan.request;
  req.version(11);
  req.method(to_verb(request.method));
  req.target(url.path_prefix + request.target);
  for (const auto& [name, value] : request.headers) {
    if (!client_owned_header(name)) req.insert(name, value);
  }
  req.set(bhttp::field::host, url.host_header);
  if (req.find(bhttp::field::user_agent) == req.end()) {
    req.set(bhttp::field::user_agent, "notifs-service-client");
  }
  if (req.find(bhttp::field::accept) == req.end()) req.set(bhttp::field::accept, "application/json");
  if (!settings.service_token.empty()) {
    req.set(bhttp::field::authorization, "Bearer " + settings.service_token);
  }
  plan.request_id = common::is_valid_request_id(context.request_id)
                        ? context.request_id
                        : common::generate_uuid_v4(*random);
  req.set("X-Request-ID", plan.request_id);
  const auto parent = common::TraceContext::parse(context.traceparent);
  const auto span = parent ? parent->child(*random) : common::TraceContext::start(*random);
  req.set("traceparent", span.header());
  if (!request.body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = std::move(request.body);
  }
  req.keep_alive(true);
  req.prepare_payload();

  plan.label = std::move(label);
  plan.retryable = detail::request_is_retryable(request.method, request.retryable);
  plan.max_attempts = std::max<std::uint32_t>(settings.max_attempts, 1);
  plan.started = started;
  plan.deadline = started + request.deadline.value_or(settings.deadline);
  return plan;
}

void ServiceClient::Impl::invoke(const Callback& callback, ClientResult result) noexcept {
  try {
    callback(std::move(result));
  } catch (const std::exception& e) {
    log->error("ServiceClient callback threw upstream={} err={}", settings.name, e.what());
  } catch (...) {
    log->error("ServiceClient callback threw upstream={}", settings.name);
  }
}

void ServiceClient::Impl::deliver_now(const Callback& callback, ClientResult result,
                                      bool inline_call) {
  if (inline_call) {
    invoke(callback, std::move(result));
    return;
  }
  asio::post(ioc, [this, callback, result = std::move(result)]() mutable {
    invoke(callback, std::move(result));
  });
}

void ServiceClient::Impl::start_call(ClientRequest request, const CallContext& context,
                                     Callback callback, bool complete_refusal_inline,
                                     CallOptions options) {
  validate(request);
  const auto started = SteadyClock::now();
  if (stopping.load()) {
    ClientResult result;
    result.error = make_error_code(ClientErrc::shutting_down);
    result.detail = label_of(request, url) + ": the client is shutting down";
    deliver_now(callback, std::move(result), complete_refusal_inline);
    return;
  }
  if (options.via_breaker && !breaker.try_acquire()) {
    // The hot path of an outage: keep it to a few small allocations (no label; the caller
    // knows what it asked for).
    ClientResult result;
    result.error = make_error_code(ClientErrc::circuit_open);
    result.detail = "open for another " + std::to_string(breaker.remaining_open().count()) + " ms";
    if (options.count_metrics) {
      metrics.on_call(detail::CallOutcomeLabel::circuit_open, SteadyClock::now() - started, false);
    }
    deliver_now(callback, std::move(result), complete_refusal_inline);
    return;
  }
  std::string label = label_of(request, url);
  // From here the breaker permit (if any) is held: nothing below may throw before the
  // Call owns it, except allocation failure.
  Plan plan = make_plan(std::move(request), context, std::move(label), started);
  plan.via_breaker = options.via_breaker;
  plan.permit_held = options.via_breaker;
  plan.use_budget = options.use_budget;
  plan.count_metrics = options.count_metrics;
  if (options.max_attempts) plan.max_attempts = std::max<std::uint32_t>(*options.max_attempts, 1);
  auto call = std::make_shared<Call>(*this, std::move(plan), std::move(callback));
  {
    std::lock_guard lock(calls_mutex);
    calls.emplace(call.get(), call);
  }
  call->start();
}

void ServiceClient::Impl::unregister(Call* call) {
  std::lock_guard lock(calls_mutex);
  calls.erase(call);
}

// ---------------------------------------------------------------------------------------
// ServiceClient

ServiceClient::ServiceClient(ServiceClientSettings settings,
                             std::shared_ptr<prometheus::Registry> registry,
                             const common::Clock& clock, std::shared_ptr<common::Random> random)
    : impl_(std::make_shared<Impl>(std::move(settings), std::move(registry), clock,
                                   std::move(random))) {
  impl_->run();
}

ServiceClient::~ServiceClient() {
  if (impl_) impl_->shutdown();
}

void ServiceClient::async_call(ClientRequest request, CallContext context, Callback callback) {
  if (!callback) throw std::invalid_argument("ServiceClient::async_call needs a callback");
  impl_->start_call(std::move(request), context, std::move(callback), false, {});
}

std::future<ClientResponse> ServiceClient::call(ClientRequest request, CallContext context) {
  auto promise = std::make_shared<std::promise<ClientResponse>>();
  auto future = promise->get_future();
  impl_->start_call(
      std::move(request), context,
      [promise, upstream = impl_->settings.name](ClientResult result) {
        if (result) {
          promise->set_value(std::move(result.response));
        } else if (result.error == ClientErrc::circuit_open) {
          promise->set_exception(
              std::make_exception_ptr(CircuitOpenError(upstream, result.error, result.detail)));
        } else {
          promise->set_exception(
              std::make_exception_ptr(UpstreamError(upstream, result.error, result.detail)));
        }
      },
      true, {});
  return future;
}

ClientResponse ServiceClient::call_sync(ClientRequest request, CallContext context) {
  impl_->throw_if_io_thread("call_sync");
  return call(std::move(request), std::move(context)).get();
}

DependencyStatus ServiceClient::health_check(std::chrono::milliseconds timeout) {
  impl_->throw_if_io_thread("health_check");
  ClientRequest request;
  request.method = Method::get;
  request.target = "/health";
  request.deadline = timeout;
  Impl::CallOptions options;
  options.via_breaker = false;
  options.use_budget = false;
  options.count_metrics = false;
  options.max_attempts = 1;
  auto promise = std::make_shared<std::promise<ClientResult>>();
  auto future = promise->get_future();
  impl_->start_call(
      std::move(request), {},
      [promise](ClientResult result) { promise->set_value(std::move(result)); }, true, options);
  // The call's own deadline bounds this wait.
  const ClientResult result = future.get();
  const auto breaker = impl_->breaker.state();
  DependencyStatus status;
  if (!result) {
    status.ok = false;
    status.state = "down";
    status.detail = result.error.message() + ": " + result.detail;
  } else if (result.response.status < 200 || result.response.status > 299) {
    status.ok = false;
    status.state = "down";
    status.detail = "GET /health answered " + std::to_string(result.response.status);
  } else {
    status.ok = true;
    status.state = breaker == resilience::BreakerState::closed ? "up"
                                                               : std::string(resilience::to_string(breaker));
    if (breaker != resilience::BreakerState::closed) {
      status.detail = "upstream answers /health; circuit breaker " + status.state;
    }
  }
  if (!status.ok && breaker != resilience::BreakerState::closed) {
    status.detail += "; circuit breaker " + std::string(resilience::to_string(breaker));
  }
  return status;
}

resilience::BreakerState ServiceClient::breaker_state() const { return impl_->breaker.state(); }

const ServiceClientSettings& ServiceClient::settings() const { return impl_->settings; }

}  // namespace notifs::messaging::http
