#pragma once

// Shared helpers of the AMQP integration tests: the broker scripts/test started (its URL,
// rabbitmqctl and management API), unique names per test, and a raw rabbitmq-c client
// (through the library's private Connection) to look at queues independently of the
// publisher and consumer under test. Everything here blocks; call it from the test thread.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "amqp/connection.hpp"
#include "integration/test_process.hpp"
#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace notifs::amqp_test {

namespace amqp = notifs::messaging::amqp;

using test_support::require_env;

// NOTIFS_TEST_RABBITMQ_URL, e.g. amqp://guest:guest@127.0.0.1:PORT/%2f.
std::string rabbitmq_url();

// Settings for the test broker: short timeouts, fast reconnects, a named connection.
amqp::ConnectionSettings connection_settings(std::string connection_name = "notifs-test");

// "t-<pid>-<random>.": a names prefix no other test (or run) shares.
std::string unique_prefix();

// A topology of its own (unique prefix) with short retry tiers: base 200 ms, factor 2,
// 2 tiers, channels email and push.
amqp::TopologySettings test_topology(amqp::QueueType type = amqp::QueueType::quorum,
                                     std::string prefix = unique_prefix());

// Runs "$NOTIFS_TEST_RABBITMQCTL <args>" (each argument shell-quoted) and returns its exit
// status and combined output.
using test_support::CommandResult;
CommandResult run_rabbitmqctl(const std::vector<std::string>& args);
// The same, FAILing the test when the command fails; returns its output.
std::string rabbitmqctl(const std::vector<std::string>& args);

// The arguments of a queue as the broker stores them (x-queue-type, x-max-priority, ...),
// read with `rabbitmqctl list_queues name arguments --formatter json`. FAILs when the
// queue does not exist.
nlohmann::json queue_arguments(const std::string& queue);

// Polls `condition` every `poll` until it is true or `timeout` passed; returns the last
// result. Bounded: never waits longer than timeout + one poll.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = std::chrono::milliseconds{20});

// A raw client on its own connection and channel (with confirms), for tests to set up and
// inspect broker state without the code under test. A channel error (404, 406) thrown by
// one call reopens the channel, so the probe stays usable.
class BrokerProbe {
 public:
  static constexpr amqp_channel_t kChannel = 1;

  explicit BrokerProbe(const amqp::ConnectionSettings& settings = connection_settings("probe"));
  ~BrokerProbe();
  BrokerProbe(const BrokerProbe&) = delete;
  BrokerProbe& operator=(const BrokerProbe&) = delete;

  // Ready messages in the queue (queue.declare passive); throws AmqpError (404) when the
  // queue does not exist.
  std::uint32_t message_count(const std::string& queue);
  // Whether the queue exists.
  bool queue_exists(const std::string& queue);
  // basic.get with auto-ack: the next message of the queue, or nullopt when empty.
  std::optional<amqp::Delivery> get(const std::string& queue);
  // Publishes and waits for the confirm. Throws std::runtime_error on nack, on a return
  // (mandatory and unroutable) or when no confirm comes within the rpc timeout.
  void publish(const amqp::OutgoingMessage& message);
  // Publishes raw bytes with no properties at all (a poison message).
  void publish_raw(const std::string& exchange, const std::string& routing_key,
                   const std::string& body);
  // Declares a durable queue with exactly these arguments (strings, integers and
  // booleans of the JSON object become longstr, long and bool).
  void declare_queue(const std::string& queue, const nlohmann::json& arguments);
  void delete_queue(const std::string& queue);
  void delete_exchange(const std::string& exchange);
  // Deletes what declare_topology declared for these settings (missing ones are fine).
  void delete_topology(const amqp::TopologySettings& topology);

  messaging::amqp::detail::Connection& connection() { return *connection_; }

 private:
  // Runs one step; on a channel error it reopens the channel and rethrows.
  template <typename Step>
  auto on_channel(Step&& step) -> decltype(step());
  void wait_for_confirm();

  std::unique_ptr<messaging::amqp::detail::Connection> connection_;
  std::chrono::milliseconds confirm_timeout_;
};

// Deletes a topology at scope exit (best effort, on a connection of its own), so a failing
// test does not leave queues behind.
class TopologyCleanup {
 public:
  explicit TopologyCleanup(amqp::TopologySettings topology) : topology_(std::move(topology)) {}
  ~TopologyCleanup();
  TopologyCleanup(const TopologyCleanup&) = delete;
  TopologyCleanup& operator=(const TopologyCleanup&) = delete;

 private:
  amqp::TopologySettings topology_;
};

}  // namespace notifs::amqp_test
