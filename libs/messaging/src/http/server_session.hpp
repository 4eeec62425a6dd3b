#pragma once

#include "detail/asio.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/http/message.hpp"
#include "notifs/messaging/http/router.hpp"

namespace notifs::messaging::http::detail {

namespace asio = messaging::detail::asio;
namespace beast = messaging::detail::beast;
namespace bhttp = messaging::detail::bhttp;
using tcp = messaging::detail::tcp;

class ServerCore;

// Each connection runs on its own strand. The concrete type (not any_io_executor) matters:
// a type-erased strand is heap-allocated and reference-counted on every copy, and Asio
// copies the executor several times per operation.
using SessionExecutor = asio::strand<asio::io_context::executor_type>;
using SessionSocket = asio::basic_stream_socket<tcp, SessionExecutor>;
using SessionTimer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                                asio::wait_traits<std::chrono::steady_clock>,
                                                SessionExecutor>;

// xoshiro256** for request ids and span ids. Ids must be unique, not secret; a generator
// per session, seeded once from the server's, takes no lock per request. Used only on the
// session's strand.
class SessionRandom final : public common::Random {
 public:
  explicit SessionRandom(common::Random& seed_source);
  std::uint64_t next_u64() override;

 private:
  std::array<std::uint64_t, 4> state_{};
};

// One client connection. Everything it does runs on its own strand (the socket's
// executor); the public functions are safe from any thread and only post to it.
//
// A connection cycles: idle (waiting for the first byte of a request) -> reading (whole
// request within request_timeout of its first byte; for a new connection, of the accept)
// -> handling (the route's handler, bounded by handler_timeout) -> writing (bounded by
// write_timeout) -> idle again for keep-alive, or closed. Protocol errors are answered
// (400/413/431) and the connection closed after a short lingering drain, so the client
// reads the answer instead of a reset.
//
// Every phase has a deadline, enforced by one watchdog timer per connection. Moving a
// deadline later does not touch the timer: when it fires early it just waits again for
// the current deadline. So a busy keep-alive connection costs no timer operations per
// request (a timer per read and write, as Beast's basic_stream does, cost more than the
// router, the envelope and the metrics together).
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(ServerCore& core, SessionSocket socket);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Registers with the core and starts reading. Call once, right after construction.
  void start();
  // For a connection over max_connections: answers 503 and closes, without registering.
  void reject_overloaded();
  // Stop began: close now if idle, else finish the current request with Connection: close.
  void notify_shutdown();
  // The grace period is over: close whatever the state.
  void force_close();

  // From a Responder's sink, any thread: the answer to request number `sequence`. On the
  // session's strand (a handler that answered before returning) it is taken at once.
  void deliver_response(std::uint64_t sequence, Response response);

 private:
  enum class Phase { idle, reading, handling, writing, closing, closed };

  void set_deadline(std::chrono::steady_clock::time_point deadline);
  void arm_watchdog(std::chrono::steady_clock::time_point expiry);
  void on_watchdog(std::uint64_t generation, beast::error_code ec);
  void on_deadline();
  void wait_for_request();
  void on_first_bytes(beast::error_code ec, std::size_t bytes);
  void begin_request();
  void parse_request();
  void read_more();
  void on_read_more(beast::error_code ec, std::size_t bytes);
  void on_read_error(beast::error_code ec);
  void dispatch_request();
  void on_handler_response(std::uint64_t sequence, Response response);
  void on_handler_timeout();
  // Answers a request that was not (fully) parsed, then closes.
  void reply_and_close(unsigned status, std::string_view code, std::string message);
  void finish_response(Response response);
  void on_write(beast::error_code ec);
  void linger_close();
  void on_linger_read(beast::error_code ec, std::size_t bytes);
  void close_now();
  std::string_view route_label() const;

  ServerCore& core_;
  SessionSocket socket_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  bhttp::response<bhttp::string_body> response_;
  SessionRandom random_;
  std::string remote_address_;

  std::uint64_t registration_ = 0;  // 0: not registered
  Phase phase_ = Phase::idle;
  bool shutting_down_ = false;
  bool first_request_ = true;
  std::chrono::steady_clock::time_point request_deadline_;  // for the request being read

  // The watchdog: `deadline_` is the current phase's; the timer, when pending, fires at
  // `watchdog_expiry_` (never later than `deadline_`). A completion whose generation is
  // not the latest belongs to a wait that was replaced.
  SessionTimer watchdog_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point watchdog_expiry_ = std::chrono::steady_clock::time_point::max();
  bool watchdog_pending_ = false;
  std::uint64_t watchdog_generation_ = 0;

  // The request in progress, for its answer, log line and metrics.
  std::uint64_t sequence_ = 0;
  bool answered_ = false;
  bool keep_alive_ = false;
  bool linger_ = false;
  bool is_head_ = false;
  bool continue_checked_ = false;  // Expect: 100-continue looked at for this request
  std::size_t header_bytes_ = 0;   // of this request's header the parser has consumed
  unsigned version_ = 11;
  Method method_ = Method::other;
  const Router::Route* route_ = nullptr;  // null: unmatched
  std::string target_;
  std::string request_id_;
  std::chrono::steady_clock::time_point started_;
  unsigned status_ = 0;
  std::size_t linger_bytes_ = 0;
};

}  // namespace notifs::messaging::http::detail
