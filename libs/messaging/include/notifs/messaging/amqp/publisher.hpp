#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::messaging::amqp {

// Completion of one publish: no error only when the broker acknowledged the message
// (persisted, for a persistent message on a durable queue). `detail` gives context on failure
// (the broker's reply text when there is one).
using PublishCallback = std::function<void(std::error_code error, const std::string& detail)>;

// The role: something that publishes with confirms. Services depend on this interface;
// AmqpPublisher is the implementation, tests of a service may use their own.
class MessagePublisher {
 public:
  virtual ~MessagePublisher() = default;
  // Never blocks. The callback runs exactly once, on a publisher thread (never inside this
  // call, even for an immediate refusal); it must not block and must not throw.
  virtual void async_publish(OutgoingMessage message, PublishCallback callback) = 0;
  // The same as a future; it throws std::system_error (category amqp_category()) on failure.
  std::future<void> publish(OutgoingMessage message);
};

struct PublisherSettings {
  ConnectionSettings connection;
  std::size_t connections = 2;          // pool: one thread, connection and channel each
  std::size_t max_in_flight = 4096;     // unconfirmed messages per connection
  std::size_t queue_capacity = 16384;   // waiting to be sent, all connections; full -> backpressure
  std::chrono::milliseconds confirm_timeout{10000};  // publish to ack, then confirm_timeout
  // How long a publish waits for a connection when none is up before failing with
  // not_connected (so short outages are bridged, long ones fail fast).
  std::chrono::milliseconds connect_wait{2000};
  // Declared on every (re)connect when set, so a broker that lost its definitions recovers.
  std::optional<TopologySettings> topology;
};

// Pipelined publisher with confirms over a pool of connections (rabbitmq-c is blocking
// and not thread-safe, so each connection lives on a thread of its own; callers hand
// messages over through a bounded queue and are never blocked).
//
// Guarantee: a callback reports success only after the broker's basic.ack for that
// message. A nack, a basic.return (mandatory, unroutable), the confirm timeout, a lost
// connection or shutdown reports a failure; nothing is retried behind the caller's back,
// so the caller decides (the gateway answers 503, and the client's retry is idempotent).
// Many messages are in flight per channel; confirms are matched by delivery tag,
// `multiple` included. Lost connections are rebuilt with jittered backoff and the
// topology (if configured) is declared again; so is a connection whose confirms were all
// nacks for 3 s (at least 64 of them): after a quorum queue's leader was lost, a RabbitMQ
// channel can go on refusing every publish while a new one works. With a list of broker
// URLs (a cluster), pool connection i starts at address i and every attempt takes the next.
//
// How failures look:
//   backpressure     queue_capacity messages already wait to be written; the callback runs
//                    at once (on the publisher's dispatcher thread). Nothing was sent.
//   not_connected    no pool connection was up for connect_wait (counted from when the
//                    message was accepted or the last connection went down, the later).
//   connection_lost  the connection or the channel failed before the confirm; `detail`
//                    carries the broker's reply (e.g. "404 NOT_FOUND - no exchange ...",
//                    which closes the channel: it is reopened and later messages go through).
//   unroutable       basic.return for a mandatory message; `detail` has the reply text.
//   nacked, confirm_timeout, shutting_down: as their names say.
//   std::errc::invalid_argument (generic category): the message cannot be encoded (a name
//                    or short property over 255 bytes, headers too big for a frame).
// While the broker blocks publishers (connection.blocked, a resource alarm) nothing is
// written; accepted messages wait and the queue fills up to backpressure.
//
// Distribution: the connections pull from one shared queue whenever their confirm window
// (max_in_flight) has room, so load goes to the least busy connection and a reconnecting
// one takes nothing.
//
// Every message is written with the header "x-publish-seq" (its delivery tag on the
// channel): basic.return carries no delivery tag, and this matches a return to its message
// exactly. Consumers see the header; a republished message gets a new value.
//
// Thread-safe. Destruction stops accepting, lets accepted messages finish for up to
// min(confirm_timeout, 5 s), fails what is still queued or unconfirmed with shutting_down,
// and joins the threads. Do not destroy it, or call flush(), from a publish callback.
class AmqpPublisher final : public MessagePublisher {
 public:
  explicit AmqpPublisher(PublisherSettings settings,
                         std::shared_ptr<prometheus::Registry> registry = nullptr);
  ~AmqpPublisher() override;
  AmqpPublisher(const AmqpPublisher&) = delete;
  AmqpPublisher& operator=(const AmqpPublisher&) = delete;

  void async_publish(OutgoingMessage message, PublishCallback callback) override;

  // How many pool connections are up now (for /ready).
  std::size_t connected() const;
  // Drains: waits until every accepted message is resolved (its callback has run) or
  // `timeout` passes; true when nothing is outstanding. Blocks the calling thread.
  bool flush(std::chrono::milliseconds timeout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::messaging::amqp
