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
// Bodies (up to body_limit) are read in larger steps once the buffer has grown.
constexpr std::size_t kMaxReadChunk = 64 * 1024;
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

class SessionSink final : public ResponseSink {
 public:
  SessionSink(std::weak_ptr<Session> session, std::uint64_t sequence)
      : session_(std::move(session)), sequence_(sequence) {}

  void deliver(Response response) override {
    // The connection may be gone (client left, server stopped): the answer has no taker.
    if (auto session = session_.lock()) {
      session->deliver_response(sequence_, std::move(response));
    }
  }

 private:
  std::weak_ptr<Session> session_;
  std::uint64_t sequence_;
};

std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

constexpr char kHexDigits[] = "0123456789abcdef";

void append_hex(std::string& out, std::uint64_t bits, int digits) {
  for (int shift = 4 * (digits - 1); shift >= 0; shift -= 4) {
    out.push_back(kHexDigits[(bits >> shift) & 0xF]);
  }
}

// W3C forbids an all-zero id; with 64 random bits a redraw is never needed in practice.
void append_random_id(std::string& out, common::Random& random, std::size_t words) {
  const auto start = out.size();
  while (true) {
    bool nonzero = false;
    for (std::size_t i = 0; i < words; ++i) {
      const auto bits = random.next_u64();
      nonzero = nonzero || bits != 0;
      append_hex(out, bits, 16);
    }
    if (nonzero) {
      return;
    }
    out.resize(start);
  }
}

// The traceparent this hop sends on: the caller's trace (when its header is valid) with a
// new span id, or a new sampled trace. The same value as TraceContext's child()/start()
// and header(), written into one string instead of three.
std::string next_traceparent(std::optional<std::string_view> caller, common::Random& random) {
  const auto parent = caller ? common::TraceContext::parse(*caller) : std::nullopt;
  std::string out;
  out.reserve(55);
  out += "00-";
  if (parent) {
    out += parent->trace_id;
  } else {
    append_random_id(out, random, 2);
  }
  out += '-';
  append_random_id(out, random, 1);
  out += '-';
  append_hex(out, parent ? parent->flags : 1, 2);
  return out;
}

}  // namespace

SessionRandom::SessionRandom(common::Random& seed_source) {
  for (auto& word : state_) {
    word = seed_source.next_u64();
  }
  if (state_ == std::array<std::uint64_t, 4>{}) {
    state_[0] = 0x9E3779B97F4A7C15ULL;  // the one state xoshiro cannot leave
  }
}

std::uint64_t SessionRandom::next_u64() {
  const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = rotl(state_[3], 45);
  return result;
}

Session::Session(ServerCore& core, SessionSocket socket)
    : core_(core),
      socket_(std::move(socket)),
      random_(core.random),
      watchdog_(socket_.get_executor()) {
  beast::error_code ec;
  const auto endpoint = socket_.remote_endpoint(ec);
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
  request_deadline_ = Clock::now() + core_.settings.request_timeout;
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
    // Registered before reading `stopping`: either stop() saw this session in its
    // snapshot, or this sees stopping (see ServerCore::register_session).
    if (self->core_.stopping.load()) {
      self->shutting_down_ = true;
    }
    self->wait_for_request();
  });
}

void Session::reject_overloaded() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
    self->started_ = Clock::now();
    self->method_ = Method::other;
    self->route_ = nullptr;
    self->request_id_ = common::generate_uuid_v4(self->random_);
    self->keep_alive_ = false;
    self->linger_ = true;
    auto response =
        error_response(503, "overloaded", "the server has too many open connections; retry later");
    response.headers.set("Retry-After", "1");
    self->finish_response(std::move(response));
  });
}

void Session::notify_shutdown() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] {
    self->shutting_down_ = true;
    if (self->phase_ == Phase::idle) {
      self->close_now();
    }
  });
}

void Session::force_close() {
  asio::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void Session::deliver_response(std::uint64_t sequence, Response response) {
  // A handler that answers before returning (every sync handler on the io threads) is
  // answered here, without a second trip through the io_context.
  if (socket_.get_executor().running_in_this_thread()) {
    on_handler_response(sequence, std::move(response));
    return;
  }
  asio::post(socket_.get_executor(),
             [self = shared_from_this(), sequence, response = std::move(response)]() mutable {
               self->on_handler_response(sequence, std::move(response));
             });
}

// ---------------------------------------------------------------------------------------
// The watchdog

void Session::set_deadline(Clock::time_point deadline) {
  if (phase_ == Phase::closed) {
    return;  // a pending wait would only keep a closed session alive
  }
  deadline_ = deadline;
  if (!watchdog_pending_ || deadline < watchdog_expiry_) {
    arm_watchdog(deadline);
  }
}

void Session::arm_watchdog(Clock::time_point expiry) {
  // expires_at() cancels a pending wait; its completion is told apart by the generation.
  watchdog_expiry_ = expiry;
  watchdog_pending_ = true;
  watchdog_.expires_at(expiry);
  watchdog_.async_wait(
      [self = shared_from_this(), generation = ++watchdog_generation_](beast::error_code ec) {
        self->on_watchdog(generation, ec);
      });
}

void Session::on_watchdog(std::uint64_t generation, beast::error_code ec) {
  if (generation != watchdog_generation_ || phase_ == Phase::closed) {
    return;
  }
  watchdog_pending_ = false;
  if (ec == asio::error::operation_aborted) {
    return;
  }
  if (Clock::now() < deadline_) {
    arm_watchdog(deadline_);  // the deadline moved later since this wait began
    return;
  }
  on_deadline();
}

void Session::on_deadline() {
  switch (phase_) {
    case Phase::reading:
      core_.log->debug("request not received within request_timeout remote={} timeout_ms={}",
                       remote_address_, core_.settings.request_timeout.count());
      close_now();
      return;
    case Phase::handling:
      on_handler_timeout();
      return;
    case Phase::writing:
      // The pending write ends with an error and logs the request with it.
      core_.log->debug("response not sent within write_timeout remote={} request_id={}",
                       remote_address_, request_id_);
      close_now();
      return;
    case Phase::idle:     // idle_timeout, or a new connection that sent nothing
    case Phase::closing:  // the lingering drain is over
    case Phase::closed:
      close_now();
      return;
  }
}

// ---------------------------------------------------------------------------------------
// Reading

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
  set_deadline(first_request_ ? request_deadline_ : Clock::now() + core_.settings.idle_timeout);
  socket_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                            self->on_first_bytes(ec, bytes);
                          });
}

void Session::on_first_bytes(beast::error_code ec, std::size_t bytes) {
  if (phase_ == Phase::closed) {
    return;
  }
  if (ec) {
    // The client closed, or stop(): nothing was asked, nothing to answer.
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
    request_deadline_ = started_ + core_.settings.request_timeout;
  }
  set_deadline(request_deadline_);
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
      core_.settings.header_limit, std::numeric_limits<std::uint32_t>::max())));
  parser_->body_limit(core_.settings.body_limit);
  // Parse as far as the bytes go: a whole request in one call when it is all there.
  parser_->eager(true);
  continue_checked_ = false;
  header_bytes_ = 0;
  parse_request();
}

// Feeds the buffered bytes to the parser right here: a request that arrived whole (the
// usual case) is dispatched without another trip through the io_context, which Beast's
// async_read_header/async_read would make. Their read loop otherwise.
void Session::parse_request() {
  while (true) {
    if (buffer_.size() == 0) {
      // Beast's parser makes no progress on no bytes (and says so only in some states).
      read_more();
      return;
    }
    // Beast applies header_limit to each buffer it is given, not to the whole header: it
    // consumes complete field lines as they come, so a header fed in pieces could grow
    // without bound. The limit left for this request's header is set before each piece.
    const bool in_header = !parser_->is_header_done();
    if (in_header) {
      if (header_bytes_ >= core_.settings.header_limit) {
        on_read_error(bhttp::error::header_limit);
        return;
      }
      parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(
          core_.settings.header_limit - header_bytes_, std::numeric_limits<std::uint32_t>::max())));
    }
    beast::error_code ec;
    const auto used = parser_->put(buffer_.data(), ec);
    buffer_.consume(used);
    if (in_header && !parser_->is_header_done()) {
      header_bytes_ += used;
    }
    if (ec && ec != bhttp::error::need_more) {
      on_read_error(ec);
      return;
    }
    // Looked at as soon as the header is in, even when the parser already wants more
    // (a chunked body stops it right after the header).
    if (!continue_checked_ && parser_->is_header_done()) {
      continue_checked_ = true;
      const auto& header = parser_->get();
      // Clients such as curl wait up to a second for this before sending a large body.
      if (header.version() >= 11 && !parser_->is_done() && buffer_.size() == 0 &&
          iequals(to_sv(header[bhttp::field::expect]), "100-continue")) {
        asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                          [self = shared_from_this()](beast::error_code write_ec, std::size_t) {
                            if (self->phase_ == Phase::closed) {
                              return;
                            }
                            if (write_ec) {
                              self->close_now();
                              return;
                            }
                            self->parse_request();
                          });
        return;
      }
    }
    if (ec == bhttp::error::need_more) {
      read_more();
      return;
    }
    if (parser_->is_done()) {
      dispatch_request();
      return;
    }
    if (used == 0) {
      read_more();  // no progress without more bytes; never spin
      return;
    }
  }
}

void Session::read_more() {
  // The parser consumes every byte it can, so what stays buffered is an unfinished
  // header, chunk-size line or trailer section. Beast bounds the first by header_limit but
  // not the other two: without this bound a client could grow the buffer for as long as
  // request_timeout lets it send.
  const std::size_t pending_limit = std::max(core_.settings.header_limit, kReadChunk);
  if (buffer_.size() >= pending_limit) {
    reply_and_close(431, "headers_too_large",
                    "a chunk header or trailer section is larger than " +
                        std::to_string(pending_limit) + " bytes");
    return;
  }
  const std::size_t size =
      std::clamp<std::size_t>(buffer_.capacity() - buffer_.size(), kReadChunk, kMaxReadChunk);
  socket_.async_read_some(buffer_.prepare(size),
                          [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                            self->on_read_more(ec, bytes);
                          });
}

void Session::on_read_more(beast::error_code ec, std::size_t bytes) {
  if (phase_ == Phase::closed) {
    return;
  }
  if (ec) {
    // EOF or a reset inside a request: there is nothing whole to answer.
    close_now();
    return;
  }
  buffer_.commit(bytes);
  parse_request();
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
  reply_and_close(400, "malformed_request", "the request is not valid HTTP/1.1: " + ec.message());
}

void Session::reply_and_close(unsigned status, std::string_view code, std::string message) {
  phase_ = Phase::handling;
  keep_alive_ = false;
  linger_ = true;
  is_head_ = false;
  version_ = 11;
  method_ = Method::other;
  route_ = nullptr;
  target_.clear();
  request_id_.clear();
  if (parser_ && parser_->is_header_done()) {
    const auto& header = parser_->get();
    method_ = method_from_string(to_sv(header.method_string()));
    target_ = printable(to_sv(header.target()));
    version_ = header.version() == 10 ? 10 : 11;
    const auto id = to_sv(header["X-Request-ID"]);
    if (common::is_valid_request_id(id)) {
      request_id_ = std::string(id);
    }
  }
  if (request_id_.empty()) {
    request_id_ = common::generate_uuid_v4(random_);
  }
  parser_.reset();
  finish_response(error_response(status, code, std::move(message)));
}

// ---------------------------------------------------------------------------------------
// Handling

void Session::dispatch_request() {
  phase_ = Phase::handling;
  ++sequence_;
  answered_ = false;
  linger_ = false;
  route_ = nullptr;

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

  method_ = request.method;
  is_head_ = request.method == Method::head;
  target_ = printable(request.target);

  const auto caller_id = request.headers.get("X-Request-ID");
  request_id_ = caller_id && common::is_valid_request_id(*caller_id)
                    ? std::string(*caller_id)
                    : common::generate_uuid_v4(random_);
  request.request_id = request_id_;
  request.traceparent = next_traceparent(request.headers.get("traceparent"), random_);

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
                                   "method " + std::string(to_string(method_)) +
                                       " is not allowed on this path");
    response.headers.set("Allow", join_methods(match.allowed));
    finish_response(std::move(response));
    return;
  }
  route_ = match.route;

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

  const auto sequence = sequence_;
  {
    Responder responder(std::make_shared<SessionSink>(weak_from_this(), sequence));
    try {
      route_->handler(std::move(request), responder);
    } catch (...) {
      Request identity;  // what the error log needs; the request itself was moved away
      identity.method = method_;
      identity.target = target_;
      identity.request_id = request_id_;
      responder.send(response_for_current_exception(identity));
    }
  }
  if (answered_ || sequence != sequence_ || phase_ != Phase::handling) {
    return;  // answered before the handler returned: the write is under way
  }
  // The pending watchdog also keeps this session alive while the handler works: the
  // responder's sink holds it only weakly.
  set_deadline(core_.settings.handler_timeout.count() > 0
                   ? Clock::now() + core_.settings.handler_timeout
                   : Clock::time_point::max());
}

void Session::on_handler_response(std::uint64_t sequence, Response response) {
  if (sequence != sequence_ || answered_ || phase_ != Phase::handling) {
    return;  // a late answer after a timeout, or the connection is gone
  }
  answered_ = true;
  finish_response(std::move(response));
}

void Session::on_handler_timeout() {
  answered_ = true;
  core_.log->warn("handler timed out method={} route={} request_id={} timeout_ms={}",
                  to_string(method_), route_label(), request_id_,
                  core_.settings.handler_timeout.count());
  auto response = error_response(503, "timeout", "the request took too long; retry later");
  response.headers.set("Retry-After", "1");
  finish_response(std::move(response));
}

// ---------------------------------------------------------------------------------------
// Writing

void Session::finish_response(Response response) {
  if (phase_ == Phase::closed) {
    return;
  }
  phase_ = Phase::writing;
  const auto now = Clock::now();
  // Only the server sends interim (1xx) answers; anything outside 200-999 is a bug.
  if (response.status < 200 || response.status > 999) {
    core_.log->error("handler answered with invalid status={} route={} request_id={}",
                     response.status, route_label(), request_id_);
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
      core_.log->warn("dropped an unsafe response header route={} request_id={}", route_label(),
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
  core_.metrics.observe_request(route_, method_, status_,
                                std::chrono::duration<double>(now - started_).count());
  set_deadline(now + core_.settings.write_timeout);
  bhttp::async_write(socket_, response_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_write(ec);
                     });
}

void Session::on_write(beast::error_code ec) {
  const auto level = status_ >= 500 ? spdlog::level::info : spdlog::level::debug;
  if (core_.log->should_log(level)) {
    const double seconds = std::chrono::duration<double>(Clock::now() - started_).count();
    core_.log->log(level,
                   "request method={} route={} target={} status={} duration_ms={:.3f} "
                   "request_id={} remote={}{}{}",
                   to_string(method_), route_label(), target_, status_, seconds * 1000.0,
                   request_id_, remote_address_, ec ? " write_error=" : "",
                   ec ? ec.message() : "");
  }
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
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    close_now();
    return;
  }
  first_request_ = false;
  wait_for_request();
}

void Session::linger_close() {
  phase_ = Phase::closing;
  beast::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  buffer_.clear();
  linger_bytes_ = 0;
  set_deadline(Clock::now() + kLingerTimeout);
  socket_.async_read_some(buffer_.prepare(kReadChunk),
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
  socket_.async_read_some(buffer_.prepare(kReadChunk),
                          [self = shared_from_this()](beast::error_code read_ec,
                                                      std::size_t more) {
                            self->on_linger_read(read_ec, more);
                          });
}

std::string_view Session::route_label() const {
  return route_ ? std::string_view(route_->pattern) : std::string_view("unmatched");
}

void Session::close_now() {
  if (phase_ == Phase::closed) {
    return;
  }
  phase_ = Phase::closed;
  watchdog_pending_ = false;
  watchdog_.cancel();
  beast::error_code ignored;
  socket_.close(ignored);
}

}  // namespace notifs::messaging::http::detail
