#include "notifs/messaging/amqp/error.hpp"

#include <utility>

namespace notifs::messaging::amqp {

namespace {

class AmqpCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "amqp"; }

  std::string message(int value) const override {
    switch (static_cast<AmqpErrc>(value)) {
      case AmqpErrc::nacked: return "the broker refused the message (nack)";
      case AmqpErrc::unroutable: return "the message matched no queue (returned)";
      case AmqpErrc::confirm_timeout: return "no confirm from the broker in time";
      case AmqpErrc::connection_lost: return "the connection was lost before the confirm";
      case AmqpErrc::backpressure: return "the publisher's queue is full";
      case AmqpErrc::shutting_down: return "the publisher is shutting down";
      case AmqpErrc::not_connected: return "no connection to the broker";
    }
    return "unknown amqp error";
  }
};

std::string scope_name(AmqpError::Scope scope) {
  switch (scope) {
    case AmqpError::Scope::library: return "library";
    case AmqpError::Scope::connection: return "connection";
    case AmqpError::Scope::channel: return "channel";
  }
  return "unknown";
}

}  // namespace

const std::error_category& amqp_category() {
  static const AmqpCategory category;
  return category;
}

std::error_code make_error_code(AmqpErrc errc) {
  return {static_cast<int>(errc), amqp_category()};
}

AmqpError::AmqpError(Scope scope, int code, std::string context, std::string reply_text)
    : std::runtime_error(context + ": " + scope_name(scope) + " error " + std::to_string(code) +
                         (reply_text.empty() ? std::string() : " " + reply_text)),
      scope_(scope),
      code_(code),
      reply_text_(std::move(reply_text)) {}

bool AmqpError::is_transient() const { return scope_ != Scope::channel; }

TopologyMismatch::TopologyMismatch(std::string entity, std::string argument,
                                   const std::string& broker_text)
    : std::runtime_error("existing " + entity + " has a different '" + argument +
                         "' than this process needs; refusing to run with weaker guarantees"
                         " (delete or migrate it): " + broker_text),
      entity_(std::move(entity)),
      argument_(std::move(argument)) {}

}  // namespace notifs::messaging::amqp
