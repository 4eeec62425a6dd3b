#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::messaging::amqp {

// What a handler decided about one delivery.
struct Outcome {
  enum class Action { ack, retry, dead_letter, requeue };
  Action action = Action::ack;
  std::string reason;  // for retry, dead_letter and requeue: why (logs and headers, never the body)

  static Outcome ack() { return {}; }
  static Outcome retry(std::string why) { return {Action::retry, std::move(why)}; }
  static Outcome dead_letter(std::string why) { return {Action::dead_letter, std::move(why)}; }
  // The same attempt again later: for a handler that must not let the delivery move on
  // (to a tier or to failed.queue) until something it depends on comes back.
  static Outcome requeue(std::string why) { return {Action::requeue, std::move(why)}; }
};

// Completes one delivery: call exactly once, from any thread. Dropping every copy without
// calling it counts as retry("handler dropped the delivery").
using Completion = std::function<void(Outcome outcome)>;
// Called for each delivery on a consumer thread; must return quickly (hand long work to
// another thread and call `done` from there). An exception counts as retry with its text.
using DeliveryHandler = std::function<void(Delivery delivery, Completion done)>;

struct ConsumerSettings {
  ConnectionSettings connection;
  TopologySettings topology;         // names, retry tiers; declared on every (re)connect
  std::string channel = "email";     // consumes names.main_queue(channel)
  std::string queue;                 // overrides the queue (e.g. the status queue); empty: main queue
  bool retries_enabled = true;       // false for queues without retry tiers (status.queue)
  std::uint16_t prefetch = 64;       // unacked deliveries the broker may push (in flight)
  std::chrono::milliseconds stop_timeout{30000};  // graceful stop waits this long for handlers
  // A delivery that can go nowhere else (retry without retry tiers, or a republish that
  // failed) waits this long before it is rejected back to its queue, so a persistent
  // failure never becomes a hot redelivery loop.
  std::chrono::milliseconds requeue_delay{1000};
};

// Consumes one queue with manual acks and turns handler outcomes into safe broker actions:
//   ack          -> basic.ack;
//   retry        -> republish (with confirm) to retry tier n = x-attempt (TTLs grow with n)
//                   with x-attempt + 1 and x-last-error, then ack; the tier dead-letters it
//                   back to names.main_queue(channel) after its TTL. Past the last tier it
//                   is dead-lettered with "retries exhausted after N attempts: <reason>".
//                   With retries_enabled = false it is rejected with requeue after
//                   requeue_delay instead (quorum queues' x-delivery-limit ends loops);
//   requeue      -> rejected with requeue after requeue_delay: the same delivery, same
//                   x-attempt, comes back (quorum queues' x-delivery-limit ends loops);
//   dead_letter  -> publish (with confirm) to the dead-letter exchange, which routes to
//                   failed.queue, with x-failure-reason, x-attempt and x-original-queue, then
//                   ack. The routing key is `channel` (the first topology channel when
//                   `channel` is not one of them, so status.queue's failures land there too).
// A handler that throws counts as retry(exception text); a delivery whose properties cannot
// be decoded is dead-lettered as "unparseable: ...". Republished copies keep body,
// properties and headers (minus the broker's x-death bookkeeping).
// The original is acked only after the republish is confirmed; if that fails it is
// rejected with requeue after requeue_delay, so a message is never lost between the two
// (it may be seen again: delivery is at-least-once and handlers de-duplicate by message id).
//
// Threads: one consumer thread owns the connection and runs the handler; Completions may
// be called from any thread and reach it through a mailbox (eventfd), never by polling.
//
// start() connects, declares the topology, sets prefetch and subscribes before it returns.
// It throws when that first attempt fails for a reason retrying cannot fix (the queue does
// not exist, TopologyMismatch, a bad URL); when the broker is only unreachable it returns
// and the consumer keeps connecting in the background (connected() tells).
//
// On a lost connection it reconnects with jittered backoff (connection.reconnect), declares
// the topology again and resumes; outcomes of deliveries from the dead connection are
// dropped (the broker redelivers those). stop() cancels the subscription, waits up to
// stop_timeout for in-flight handlers, their republish confirms and acks, then closes;
// whatever is still unacked then goes back to the queue: nothing is lost. Deliveries that
// arrive after the cancel are requeued without reaching the handler.
//
// Thread-safety: start() and stop() from one control thread; stop() blocks (at most about
// stop_timeout plus one RPC). The publisher must outlive the consumer.
class Consumer {
 public:
  Consumer(ConsumerSettings settings, MessagePublisher& publisher, DeliveryHandler handler,
           std::shared_ptr<prometheus::Registry> registry = nullptr);
  ~Consumer();  // stop()
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  void start();
  void stop();
  bool connected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::messaging::amqp
