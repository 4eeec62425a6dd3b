#pragma once

// rabbitmq-c stays in private headers: services never see amqp.h.
#include <amqp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/error.hpp"

namespace notifs::messaging::amqp::detail {

// Turns rabbitmq-c results into AmqpError at one place per kind, with the broker's reply
// code and text and the step that failed (`context`, e.g. "queue.declare email.queue").
void check_reply(const amqp_rpc_reply_t& reply, std::string_view context);
void check_status(int status, std::string_view context);

// RAII owner of one rabbitmq-c connection (socket, TLS, login). rabbitmq-c is not
// thread-safe: a Connection belongs to the one thread that opened it. A connection that
// failed is destroyed and a new one opened, never repaired in place.
class Connection {
 public:
  // Connects (TCP or TLS per the URL scheme), logs in with heartbeat and the
  // connection_name client property. Throws AmqpError (or std::invalid_argument for a bad URL).
  // The client advertises the capabilities consumer_cancel_notify and connection.blocked,
  // so a frame loop may see basic.cancel (queue deleted) and connection.blocked/unblocked
  // (broker alarm) methods it did not ask for.
  //
  // With a list of URLs (ConnectionSettings::url): this overload tries each address in
  // order and returns the first connection that logs in; when all fail it throws the last
  // failure, its text naming every address's failure (a single URL: its failure unchanged).
  // For one-shot callers (declare_topology); reconnect loops use the other overload.
  static std::unique_ptr<Connection> open(const ConnectionSettings& settings);
  // One attempt, at address `attempt` modulo the length of the list: a reconnect loop
  // counts attempts so that each one moves on to the next node.
  static std::unique_ptr<Connection> open(const ConnectionSettings& settings,
                                          std::size_t attempt);
  // The address open(settings, attempt) connects to, password masked, for logs.
  static std::string address_of(const ConnectionSettings& settings, std::size_t attempt);

  ~Connection();  // connection.close when still healthy, then frees everything
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  amqp_connection_state_t state() const { return state_; }
  // The URL this connection reached, password masked: which node, for logs.
  const std::string& address() const { return address_; }

  // check_reply, plus the bookkeeping a failed reply needs on this connection: a
  // channel.close from the broker is answered with channel.close-ok on `channel` (so that
  // channel number can be opened again), a connection.close with connection.close-ok, and
  // a connection-level or library failure marks the connection broken. Prefer this over
  // check_reply for replies read on this connection.
  void check(const amqp_rpc_reply_t& reply, std::string_view context,
             amqp_channel_t channel = 0);
  // check(amqp_get_rpc_reply(state()), ...) for the amqp_* calls that return a pointer.
  void check_last_reply(std::string_view context, amqp_channel_t channel = 0);

  void open_channel(amqp_channel_t channel);
  void confirm_select(amqp_channel_t channel);
  void basic_qos(amqp_channel_t channel, std::uint16_t prefetch);
  // channel.close; a failure marks the connection broken instead of throwing.
  void close_channel(amqp_channel_t channel) noexcept;

  // The socket, for poll() together with a wake-up fd.
  int socket_fd() const;
  // Frames already read into rabbitmq-c's buffers: poll() would not see them.
  bool has_buffered_frames() const;

  // Marks the connection broken (after a socket error or a close from the broker), so the
  // destructor does not try a polite close on it.
  void mark_broken() { broken_ = true; }
  bool broken() const { return broken_; }

 private:
  Connection(amqp_connection_state_t state, std::string address)
      : state_(state), address_(std::move(address)) {}
  static std::unique_ptr<Connection> open_address(const ConnectionSettings& settings,
                                                  const std::string& url);

  amqp_connection_state_t state_;
  std::string address_;
  bool broken_ = false;
};

}  // namespace notifs::messaging::amqp::detail
