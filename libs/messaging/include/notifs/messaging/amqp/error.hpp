#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace notifs::messaging::amqp {

// Why a publish did not succeed. Travels as a std::error_code to completion handlers.
enum class AmqpErrc {
  nacked = 1,       // the broker refused the message (basic.nack)
  unroutable,       // mandatory message matched no queue (basic.return)
  confirm_timeout,  // no confirm within the deadline; the message may or may not be stored
  connection_lost,  // the connection failed before the confirm arrived
  backpressure,     // the publisher's queue is full; nothing was sent
  shutting_down,    // the publisher is stopping; nothing was sent
  not_connected,    // no connection to the broker right now and the wait ran out
};
const std::error_category& amqp_category();
std::error_code make_error_code(AmqpErrc errc);

// A failed synchronous AMQP step, converted at one place from rabbitmq-c's results:
// library errors (socket, timeout, TLS), connection closes and channel closes, with the
// broker's reply code and text (e.g. 406 PRECONDITION_FAILED "inequivalent arg ...").
class AmqpError : public std::runtime_error {
 public:
  enum class Scope { library, connection, channel };

  AmqpError(Scope scope, int code, std::string context, std::string reply_text);

  Scope scope() const { return scope_; }
  // The broker's reply code (e.g. 404, 406, 320) for connection/channel scope; the
  // negative rabbitmq-c status for library scope.
  int code() const { return code_; }
  const std::string& reply_text() const { return reply_text_; }
  // Whether trying again later can help: connection-level and library errors yes;
  // channel errors such as 404 NOT_FOUND or 406 PRECONDITION_FAILED no.
  bool is_transient() const;

 private:
  Scope scope_;
  int code_;
  std::string reply_text_;
};

// An existing queue or exchange whose arguments differ from what this process needs
// (for example a quorum queue declared earlier without at-least-once dead-lettering).
// Refusing to start is safer than running with weaker delivery guarantees.
class TopologyMismatch : public std::runtime_error {
 public:
  TopologyMismatch(std::string entity, std::string argument, const std::string& broker_text);
  const std::string& entity() const { return entity_; }
  const std::string& argument() const { return argument_; }

 private:
  std::string entity_;
  std::string argument_;
};

}  // namespace notifs::messaging::amqp

template <>
struct std::is_error_code_enum<notifs::messaging::amqp::AmqpErrc> : std::true_type {};
