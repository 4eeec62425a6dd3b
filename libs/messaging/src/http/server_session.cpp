#include "http/server_session.hpp"

#include <algorithm>
#include <limits>
#include <string_view>

#include "http/server_core.hpp"
#include "http/server_errors.hpp"
#include "http/server_uri.hpp"
#include "notifs/messaging/common/request_id.hpp"
#include "notifs/messaging/common/trace_context.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace notifs::messaging::http::detail {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 4096;
// After an error answer the client may still be sending the body we refused. Closing with
// unread data makes the kernel send a reset, which can destroy our answer in the
// client's buffers before it is read; so read and discard a bounded amount first.
constexpr std::chrono::milliseconds kLingerTimeout{1000};
constexpr std::size_t kLingerBudget = 1024 * 1024;
constexpr std::size_t kMaxLoggedTarget = 256;
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view to_sv(beast::string_view text) { return {text.data(), text.size()}; }

// Request targets are client text: keep log lines on one line and bounded.
std::string printable(std::string_view text) {
  std::string out(text.substr(0, kMaxLoggedTarget));
  for (char& c : out) {
    if (c < 0x21 || c > 0x7e) {
      c = '?';
    }
  }
  return out;
}

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// A handler may copy client input into a header; CR or LF there would let the client
// write headers (or a whole response) of its own.
bool is_safe_header(std::string_view name, std::string_view value) {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_token_char) &&
         value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

bool is_json_media_type(std::string_view value) {
  value = value.substr(0, value.find(';'));
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
    value.remove_prefix(1);
  }
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
    value.remove_suffix(1);
  }
  return iequals(value, "application/json");
}

std::string join_methods(const std::vector<Method>& methods) {
  std::string out;
  for (const auto method : methods) {
    if (!out.empty()) {
      out += ", ";
    }
    out += to_string(method);
  }
  return out;
}

bool is_http_error(const beast::error_code& ec) {
  return &ec.category() == &bhttp::make_error_code(bhttp::error::bad_method).category();
}

class SessionSink final : public ResponseSink {
 public:
  SessionSink(std::weak_ptr<Session> session, std::uint64_t sequence)
      : session_(std::move(session)), sequence_(sequence) {}

  void deliver(Response response) override {
    // The connection may be gone (client left, server stopped): the answer has no taker.
    if (auto session = session_.lock()) {
      session->post_response(sequence_, std::move(response));
    }
  }

 private:
  std::weak_ptr<Session> session_;
  std::uint64_t sequence_;
};

}  // namespace

Session::Session(ServerCore& core, tcp::socket socket)
    : core_(core), stream_(std::move(socket)), handler_timer_(stream_.get_executor()) {
  beast::error_code ec;
  const auto endpoint = stream_.socket().remote_endpoint(ec);
  if (!ec) {
    remote_address_ = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  }
}

Session::~Session() {
  if (registration_ != 0) {
    core_.metrics.connection_closed();
    core_.unregister_session(registration_);
  }
}

void Session::start() {
  registration_ = core_.register_session(weak_from_this());
  core_.metrics.connection_opened();
  deadline_ = Clock::now() + core_.settings.request_timeout;
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    // Registered before reading `stopping`: either stop() saw this session in its
    // snapshot, or this sees stopping (see ServerCore::register_session).
    if (self->core_.stopping.load()) {
      self->shutting_down_ = true;
    }
    self->wait_for_request();
  });
}

void Session::reject_overloaded() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    self->started_ = Clock::now();
    self->method_label_ = std::string(to_string(Method::other));
    self->route_label_ = "unmatched";
    self->request_id_ = common::generate_uuid_v4(self->core_.random);
    self->keep_alive_ = false;
    self->linger_ = true;
    auto response =
        error_response(503, "overloaded", "the server has too many open connections; retry later");
    response.headers.set("Retry-After", "1");
    self->finish_response(std::move(response));
  });
}

void Session::notify_shutdown() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] {
    self->shutting_down_ = true;
    if (self->phase_ == Phase::idle) {
      self->close_now();
    }
  });
}

void Session::force_close() {
  asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void Session::post_response(std::uint64_t sequence, Response response) {
  asio::post(stream_.get_executor(),
             [self = shared_from_this(), sequence, response = std::move(response)]() mutable {
               self->on_handler_response(sequence, std::move(response));
             });
}

void Session::wait_for_request() {
  if (shutting_down_ || core_.stopping.load()) {
    close_now();
    return;
  }
  phase_ = Phase::idle;
  if (buffer_.size() > 0) {
    // A pipelined request already arrived with the previous one.
    begin_request();
    return;
  }
  // A large body grew the buffer; idle connections should not each keep that much.
  if (buffer_.capacity() > 4 * kReadChunk) {
    buffer_.shrink_to_fit();
  }
  if (first_request_) {
    stream_.expires_at(deadline_);
  } else {
    stream_.expires_after(core_.settings.idle_timeout);
  }
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                            self->on_first_bytes(ec, bytes);
                          });
}

void Session::on_first_bytes(beast::error_code ec, std::size_t bytes) {
  if (phase_ == Phase::closed) {
    return;
  }
  if (ec) {
    // Idle timeout, the client closed, or stop(): nothing was asked, nothing to answer.
    close_now();
    return;
  }
  buffer_.commit(bytes);
  begin_request();
}

void Session::begin_request() {
  phase_ = Phase::reading;
  started_ = Clock::now();
  if (!first_request_) {
    deadline_ = started_ + core_.settings.request_timeout;
  }
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
      core_.settings.header_limit, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(core_.settings.body_limit);
  stream_.expires_at(deadline_);
  bhttp::async_read_header(stream_, buffer_, *parser_,
                           [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             self->on_header(ec);
                           });
}

void Session::on_header(beast::error_code ec) {
  if (phase_ == Phase::closed) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  const auto& header = parser_->get();
  // Clients such as curl wait up to a second for this before sending a large body.
  if (header.version() >= 11 && !parser_->is_done() &&
      iequals(to_sv(header[bhttp::field::expect]), "100-continue")) {
    asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                      [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                        if (write_ec || self->phase_ == Phase::closed) {
                          self->close_now();
                          return;
                        }
                        self->read_body();
                      });
    return;
  }
  read_body();
}

void Session::read_body() {
  if (parser_->is_done()) {
    dispatch_request();
    return;
  }
  stream_.expires_at(deadline_);
  bhttp::async_read(stream_, buffer_, *parser_,
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->on_read(ec);
                    });
}

void Session::on_read(beast::error_code ec) {
  if (phase_ == Phase::closed) {
    return;
  }
  if (ec) {
    on_read_error(ec);
    return;
  }
  dispatch_request();
}

void Session::on_read_error(beast::error_code ec) {
  if (ec == bhttp::error::body_limit) {
    reply_and_close(413, "payload_too_large",
                    "the request body is larger than " +
                        std::to_string(core_.settings.body_limit) + " bytes");
    return;
  }
  if (ec == bhttp::error::header_limit) {
    reply_and_close(431, "headers_too_large",
                    "the request header is larger than " +
                        std::to_string(core_.settings.header_limit) + " bytes");
    return;
  }
  if (is_http_error(ec) && ec != bhttp::error::end_of_stream &&
      ec != bhttp::error::partial_message) {
    reply_and_close(400, "malformed_request", "the request is not valid HTTP/1.1: " + ec.message());
    return;
  }
  // Timeout (the socket is already closed by the stream), the client left mid-request, or
  // stop(): there is no one to answer or nothing complete to answer.
  if (ec == beast::error::timeout) {
    core_.log->debug("request not received within request_timeout remote={} timeout_ms={}",
                     remote_address_, core_.settings.request_timeout.count());
  }
  close_now();
}

void Session::reply_and_close(unsigned status, std::string_view code, std::string message) {
  phase_ = Phase::handling;
  keep_alive_ = false;
  linger_ = true;
  is_head_ = false;
  version_ = 11;
  method_label_ = std::string(to_string(Method::other));
  route_label_ = "unmatched";
  target_.clear();
  request_id_.clear();
  if (parser_ && parser_->is_header_done()) {
    const auto& header = parser_->get();
    method_label_ = std::string(to_string(method_from_string(to_sv(header.method_string()))));
    target_ = printable(to_sv(header.target()));
    version_ = header.version() == 10 ? 10 : 11;
    const auto id = to_sv(header["X-Request-ID"]);
    if (common::is_valid_request_id(id)) {
      request_id_ = std::string(id);
    }
  }
  if (request_id_.empty()) {
    request_id_ = common::generate_uuid_v4(core_.random);
  }
  parser_.reset();
  finish_response(error_response(status, code, std::move(message)));
}

void Session::dispatch_request() {
  phase_ = Phase::handling;
  ++sequence_;
  answered_ = false;
  linger_ = false;

  auto& message = parser_->get();
  version_ = message.version() == 10 ? 10 : 11;
  keep_alive_ = message.keep_alive();

  Request request;
  request.method = method_from_string(to_sv(message.method_string()));
  request.target = std::string(to_sv(message.target()));
  for (const auto& field : message) {
    request.headers.add(std::string(to_sv(field.name_string())), std::string(to_sv(field.value())));
  }
  request.body = std::move(message.body());
  request.remote_address = remote_address_;
  parser_.reset();

  is_head_ = request.method == Method::head;
  method_label_ = std::string(to_string(request.method));
  route_label_ = "unmatched";
  target_ = printable(request.target);

  const auto caller_id = request.headers.get("X-Request-ID");
  request.request_id = caller_id && common::is_valid_request_id(*caller_id)
                           ? std::string(*caller_id)
                           : common::generate_uuid_v4(core_.random);
  request_id_ = request.request_id;
  const auto caller_trace = request.headers.get("traceparent");
  const auto parent = caller_trace ? common::TraceContext::parse(*caller_trace) : std::nullopt;
  request.traceparent =
      (parent ? parent->child(core_.random) : common::TraceContext::start(core_.random)).header();

  const auto parts = split_target(request.target);
  if (!parts) {
    finish_response(error_response(400, "malformed_request",
                                   "the request target must be a path starting with '/'"));
    return;
  }
  auto path = percent_decode(parts->path, false);
  auto query = parse_query(parts->query);
  if (!path || !query) {
    finish_response(error_response(400, "malformed_request",
                                   "the request target has an invalid percent-encoding"));
    return;
  }
  request.path = std::move(*path);
  request.query = std::move(*query);

  auto match = core_.router.match(request.method, parts->path);
  if (match.kind == Router::MatchKind::not_found) {
    finish_response(error_response(404, "not_found", "no resource at this path"));
    return;
  }
  if (match.kind == Router::MatchKind::method_not_allowed) {
    auto response = error_response(405, "method_not_allowed",
                                   "method " + method_label_ + " is not allowed on this path");
    response.headers.set("Allow", join_methods(match.allowed));
    finish_response(std::move(response));
    return;
  }
  route_label_ = match.route->pattern;

  const auto content_type = request.headers.get("Content-Type");
  const bool has_entity =
      !request.body.empty() ||
      (content_type && (request.method == Method::post || request.method == Method::put ||
                        request.method == Method::patch));
  if (has_entity && !(content_type && is_json_media_type(*content_type))) {
    finish_response(error_response(415, "unsupported_media_type",
                                   "the request body must be application/json"));
    return;
  }
  request.path_params = std::move(match.params);

  // The pending wait also keeps this session alive while the handler works: the
  // responder's sink holds it only weakly.
  if (core_.settings.handler_timeout.count() > 0) {
    handler_timer_.expires_after(core_.settings.handler_timeout);
  } else {
    handler_timer_.expires_at(asio::steady_timer::time_point::max());
  }
  handler_timer_.async_wait(
      [self = shared_from_this(), sequence = sequence_](beast::error_code ec) {
        self->on_handler_timeout(sequence, ec);
      });

  Request identity;  // what the error log needs, kept since the request is moved away
  identity.method = request.method;
  identity.target = request.target;
  identity.request_id = request.request_id;
  Responder responder(std::make_shared<SessionSink>(weak_from_this(), sequence_));
  try {
    match.route->handler(std::move(request), responder);
  } catch (...) {
    responder.send(response_for_current_exception(identity));
  }
}

void Session::on_handler_response(std::uint64_t sequence, Response response) {
  if (sequence != sequence_ || answered_ || phase_ != Phase::handling) {
    return;  // a late answer after a timeout, or the connection is gone
  }
  answered_ = true;
  handler_timer_.cancel();
  finish_response(std::move(response));
}

void Session::on_handler_timeout(std::uint64_t sequence, beast::error_code ec) {
  if (ec == asio::error::operation_aborted || sequence != sequence_ || answered_ ||
      phase_ != Phase::handling) {
    return;
  }
  answered_ = true;
  core_.log->warn("handler timed out method={} route={} request_id={} timeout_ms={}",
                  method_label_, route_label_, request_id_,
                  core_.settings.handler_timeout.count());
  auto response = error_response(503, "timeout", "the request took too long; retry later");
  response.headers.set("Retry-After", "1");
  finish_response(std::move(response));
}

void Session::finish_response(Response response) {
  if (phase_ == Phase::closed) {
    return;
  }
  phase_ = Phase::writing;
  // Only the server sends interim (1xx) answers; anything outside 200-999 is a bug.
  if (response.status < 200 || response.status > 999) {
    core_.log->error("handler answered with invalid status={} route={} request_id={}",
                     response.status, route_label_, request_id_);
    response = error_response(500, "internal_error", "the server failed to handle the request");
  }
  status_ = response.status;

  response_ = {};
  response_.version(version_);
  response_.result(status_);
  bool has_content_type = false;
  for (const auto& [name, value] : response.headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding") ||
        iequals(name, "Connection") || iequals(name, "X-Request-ID")) {
      continue;  // framing and the request id are the server's
    }
    if (!is_safe_header(name, value)) {
      core_.log->warn("dropped an unsafe response header route={} request_id={}", route_label_,
                      request_id_);
      continue;
    }
    has_content_type = has_content_type || iequals(name, "Content-Type");
    response_.insert(beast::string_view(name.data(), name.size()),
                     beast::string_view(value.data(), value.size()));
  }
  if (!has_content_type && !response.content_type.empty()) {
    response_.set(bhttp::field::content_type, response.content_type);
  }
  response_.set("X-Request-ID", request_id_);
  keep_alive_ = keep_alive_ && !shutting_down_ && !core_.stopping.load();
  response_.keep_alive(keep_alive_);
  if (status_ != 204 && status_ != 304) {
    // HEAD: the length the GET would have, and no body.
    response_.content_length(response.body.size());
    if (!is_head_) {
      response_.body() = std::move(response.body);
    }
  }

  // Counted before the write, so a client that has its answer also finds it in /metrics.
  core_.metrics.observe_request(
      method_label_, route_label_, status_,
      std::chrono::duration<double>(Clock::now() - started_).count());
  stream_.expires_after(core_.settings.write_timeout);
  bhttp::async_write(stream_, response_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_write(ec);
                     });
}

void Session::on_write(beast::error_code ec) {
  const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  core_.log->log(status_ >= 500 ? spdlog::level::info : spdlog::level::debug,
                 "request method={} route={} target={} status={} duration_ms={:.3f} "
                 "request_id={} remote={}{}{}",
                 method_label_, route_label_, target_, status_, seconds * 1000.0, request_id_,
                 remote_address_, ec ? " write_error=" : "", ec ? ec.message() : "");
  response_ = {};
  if (ec || phase_ == Phase::closed) {
    close_now();
    return;
  }
  if (linger_) {
    linger_close();
    return;
  }
  if (!keep_alive_) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    close_now();
    return;
  }
  first_request_ = false;
  wait_for_request();
}

void Session::linger_close() {
  phase_ = Phase::closing;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  buffer_.clear();
  linger_bytes_ = 0;
  stream_.expires_after(kLingerTimeout);
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code read_ec,
                                                      std::size_t bytes) {
                            self->on_linger_read(read_ec, bytes);
                          });
}

void Session::on_linger_read(beast::error_code ec, std::size_t bytes) {
  linger_bytes_ += bytes;
  if (ec || phase_ != Phase::closing || linger_bytes_ > kLingerBudget) {
    close_now();
    return;
  }
  // Discarded: prepare() hands out the same space again since nothing is committed.
  stream_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code read_ec,
                                                      std::size_t more) {
                            self->on_linger_read(read_ec, more);
                          });
}

void Session::close_now() {
  if (phase_ == Phase::closed) {
    return;
  }
  phase_ = Phase::closed;
  handler_timer_.cancel();
  stream_.close();
}

}  // namespace notifs::messaging::http::detail
