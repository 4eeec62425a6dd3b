// Topology against a real broker: declared idempotently for both queue types, with the
// arguments that make dead-lettering safe, routing as CONTRACT.md says, retry tiers that
// hand messages back after their TTL, and refusal to run on a queue whose arguments would
// silently weaken the guarantees.

#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "amqp/connection.hpp"
#include "amqp/topology_declarer.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/topology.hpp"

using namespace notifs::amqp_test;
using namespace std::chrono_literals;
namespace detail = notifs::messaging::amqp::detail;

namespace {

amqp::QueueType queue_type_of(const char* name) {
  return std::string(name) == "quorum" ? amqp::QueueType::quorum : amqp::QueueType::classic;
}

amqp::OutgoingMessage message_to(std::string exchange, std::string routing_key,
                                 std::string body) {
  amqp::OutgoingMessage message;
  message.exchange = std::move(exchange);
  message.routing_key = std::move(routing_key);
  message.body = std::move(body);
  return message;
}

}  // namespace

TEST_CASE("amqp topology: declaring twice is idempotent", "[amqp][topology]") {
  const char* type_name = GENERATE("quorum", "classic");
  CAPTURE(type_name);
  const amqp::TopologySettings topology = test_topology(queue_type_of(type_name));
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;

  REQUIRE_NOTHROW(amqp::declare_topology(connection_settings(), topology));
  BrokerProbe probe;
  probe.publish(message_to(names.direct_exchange(), "push", "kept across redeclaration"));
  REQUIRE_NOTHROW(amqp::declare_topology(connection_settings(), topology));
  // And a third time on one connection and channel, as a reconnecting publisher does.
  REQUIRE_NOTHROW(detail::declare_topology(probe.connection(), BrokerProbe::kChannel, topology));

  for (const std::string channel : {"email", "push"}) {
    CHECK(probe.queue_exists(names.main_queue(channel)));
    CHECK(probe.queue_exists(names.retry_queue(channel, 1)));
    CHECK(probe.queue_exists(names.retry_queue(channel, 2)));
    CHECK_FALSE(probe.queue_exists(names.retry_queue(channel, 3)));
  }
  CHECK(probe.queue_exists(names.failed_queue()));
  CHECK(probe.queue_exists(names.status_queue()));
  CHECK(probe.message_count(names.main_queue("push")) == 1);
  CHECK(probe.message_count(names.main_queue("email")) == 0);
}

TEST_CASE("amqp topology: quorum queues dead-letter at least once", "[amqp][topology]") {
  const amqp::TopologySettings topology = test_topology(amqp::QueueType::quorum);
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;
  amqp::declare_topology(connection_settings(), topology);

  const nlohmann::json main = queue_arguments(names.main_queue("email"));
  CAPTURE(main.dump());
  CHECK(main.at("x-queue-type") == "quorum");
  CHECK(main.at("x-delivery-limit") == topology.delivery_limit);
  CHECK(main.at("x-dead-letter-strategy") == "at-least-once");
  CHECK(main.at("x-overflow") == "reject-publish");
  CHECK(main.at("x-dead-letter-exchange") == names.dead_letter_exchange());
  CHECK(main.at("x-dead-letter-routing-key") == "email");
  CHECK_FALSE(main.contains("x-max-priority"));

  const nlohmann::json retry1 = queue_arguments(names.retry_queue("push", 1));
  const nlohmann::json retry2 = queue_arguments(names.retry_queue("push", 2));
  CAPTURE(retry1.dump(), retry2.dump());
  CHECK(retry1.at("x-message-ttl") == 200);
  CHECK(retry2.at("x-message-ttl") == 400);
  for (const auto& retry : {retry1, retry2}) {
    CHECK(retry.at("x-queue-type") == "quorum");
    CHECK(retry.at("x-dead-letter-exchange") == names.direct_exchange());
    CHECK(retry.at("x-dead-letter-routing-key") == "push");
    CHECK(retry.at("x-dead-letter-strategy") == "at-least-once");
    CHECK(retry.at("x-overflow") == "reject-publish");
  }
  CHECK(queue_arguments(names.failed_queue()).at("x-queue-type") == "quorum");
  CHECK(queue_arguments(names.status_queue()).at("x-queue-type") == "quorum");
}

TEST_CASE("amqp topology: classic main queues get x-max-priority 10", "[amqp][topology]") {
  const amqp::TopologySettings topology = test_topology(amqp::QueueType::classic);
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;
  amqp::declare_topology(connection_settings(), topology);

  for (const std::string channel : {"email", "push"}) {
    const nlohmann::json main = queue_arguments(names.main_queue(channel));
    CAPTURE(channel, main.dump());
    CHECK(main.at("x-max-priority") == 10);
    CHECK(main.at("x-queue-type") == "classic");
    CHECK(main.at("x-dead-letter-exchange") == names.dead_letter_exchange());
    CHECK(main.at("x-dead-letter-routing-key") == channel);
    CHECK_FALSE(main.contains("x-delivery-limit"));
  }
  const nlohmann::json retry = queue_arguments(names.retry_queue("email", 2));
  CHECK(retry.at("x-message-ttl") == 400);
  CHECK(retry.at("x-dead-letter-exchange") == names.direct_exchange());

  // The priority takes effect: the higher one is delivered first.
  BrokerProbe probe;
  for (const int priority : {1, 9, 5}) {
    amqp::OutgoingMessage message =
        message_to(names.direct_exchange(), "email", "p" + std::to_string(priority));
    message.priority = static_cast<std::uint8_t>(priority);
    probe.publish(message);
  }
  for (const char* expected : {"p9", "p5", "p1"}) {
    const auto delivery = probe.get(names.main_queue("email"));
    REQUIRE(delivery);
    CHECK(delivery->body == expected);
  }
}

TEST_CASE("amqp topology: messages route as the contract says", "[amqp][topology]") {
  const amqp::TopologySettings topology = test_topology(amqp::QueueType::quorum);
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;
  amqp::declare_topology(connection_settings(), topology);
  BrokerProbe probe;

  amqp::OutgoingMessage message =
      message_to(names.direct_exchange(), "email", R"({"notification_id":"n-1"})");
  message.message_id = "n-1";
  message.correlation_id = "req-1";
  message.priority = 5;
  message.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{1});
  message.headers.set(std::string(amqp::kTraceparentHeader),
                      std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  probe.publish(message);
  probe.publish(message_to(names.dead_letter_exchange(), "push", "failed push"));
  probe.publish(message_to(names.status_exchange(), "status", "status change"));

  CHECK(probe.message_count(names.main_queue("email")) == 1);
  CHECK(probe.message_count(names.main_queue("push")) == 0);
  CHECK(probe.message_count(names.failed_queue()) == 1);
  CHECK(probe.message_count(names.status_queue()) == 1);

  const auto delivery = probe.get(names.main_queue("email"));
  REQUIRE(delivery);
  CHECK(delivery->body == message.body);
  CHECK(delivery->exchange == names.direct_exchange());
  CHECK(delivery->routing_key == "email");
  CHECK(delivery->content_type == "application/json");
  CHECK(delivery->message_id == "n-1");
  CHECK(delivery->correlation_id == "req-1");
  CHECK(delivery->priority == 5);
  CHECK(delivery->timestamp);
  CHECK(delivery->attempt() == 1);
  CHECK(delivery->headers.get_string(amqp::kTraceparentHeader) ==
        message.headers.get_string(amqp::kTraceparentHeader));

  // No queue is bound to an unknown channel: a mandatory publish comes back.
  CHECK_THROWS_WITH(probe.publish(message_to(names.direct_exchange(), "sms", "nowhere")),
                    Catch::Contains("unroutable"));
}

TEST_CASE("amqp topology: a retry tier hands its message back after the TTL",
          "[amqp][topology]") {
  const char* type_name = GENERATE("quorum", "classic");
  CAPTURE(type_name);
  const amqp::TopologySettings topology = test_topology(queue_type_of(type_name));
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;
  amqp::declare_topology(connection_settings(), topology);
  BrokerProbe probe;

  for (std::uint32_t tier = 1; tier <= topology.retry_tiers; ++tier) {
    CAPTURE(tier);
    const std::string retry_queue = names.retry_queue("email", tier);
    const auto published = std::chrono::steady_clock::now();
    probe.publish(message_to(names.retry_exchange(), retry_queue, "retry me"));
    std::optional<amqp::Delivery> back;
    REQUIRE(wait_until(
        [&] {
          back = probe.get(names.main_queue("email"));
          return back.has_value();
        },
        10s));
    // A lower bound only (the broker may be late on a busy machine, never early).
    CHECK(std::chrono::steady_clock::now() - published >=
          amqp::retry_delay(topology, tier) - 20ms);
    CHECK(back->body == "retry me");
    CHECK(back->exchange == names.direct_exchange());
    CHECK(back->routing_key == "email");
    CHECK(back->headers.find("x-death") != nullptr);
    CHECK(probe.message_count(retry_queue) == 0);
  }
  CHECK(probe.message_count(names.main_queue("push")) == 0);
  CHECK(probe.message_count(names.failed_queue()) == 0);
}

TEST_CASE("amqp topology: a quorum queue declared without at-least-once is refused",
          "[amqp][topology]") {
  const amqp::TopologySettings topology = test_topology(amqp::QueueType::quorum);
  TopologyCleanup cleanup(topology);
  const amqp::TopologyNames& names = topology.names;
  const std::string queue = names.main_queue("email");
  BrokerProbe probe;

  SECTION("no x-dead-letter-strategy: the broker's default, at-most-once") {
    probe.declare_queue(queue, {{"x-queue-type", "quorum"},
                                {"x-delivery-limit", topology.delivery_limit},
                                {"x-dead-letter-exchange", names.dead_letter_exchange()},
                                {"x-dead-letter-routing-key", "email"}});
    try {
      amqp::declare_topology(connection_settings(), topology);
      FAIL("declare_topology accepted a queue without at-least-once dead-lettering");
    } catch (const amqp::TopologyMismatch& mismatch) {
      CHECK(mismatch.entity() == queue);
      CHECK(mismatch.argument() == "x-dead-letter-strategy");
      CHECK_THAT(mismatch.what(), Catch::Contains(queue) && Catch::Contains("x-dead-letter-strategy"));
    }
  }
  SECTION("drop-head overflow, which makes the broker fall back to at-most-once") {
    probe.declare_queue(queue, {{"x-queue-type", "quorum"},
                                {"x-delivery-limit", topology.delivery_limit},
                                {"x-dead-letter-exchange", names.dead_letter_exchange()},
                                {"x-dead-letter-routing-key", "email"},
                                {"x-dead-letter-strategy", "at-least-once"},
                                {"x-overflow", "drop-head"}});
    try {
      amqp::declare_topology(connection_settings(), topology);
      FAIL("declare_topology accepted a drop-head queue");
    } catch (const amqp::TopologyMismatch& mismatch) {
      CHECK(mismatch.entity() == queue);
      CHECK(mismatch.argument() == "x-overflow");
    }
  }
  SECTION("no delivery limit") {
    probe.declare_queue(queue, {{"x-queue-type", "quorum"},
                                {"x-dead-letter-exchange", names.dead_letter_exchange()},
                                {"x-dead-letter-routing-key", "email"},
                                {"x-dead-letter-strategy", "at-least-once"},
                                {"x-overflow", "reject-publish"}});
    try {
      amqp::declare_topology(connection_settings(), topology);
      FAIL("declare_topology accepted a queue without a delivery limit");
    } catch (const amqp::TopologyMismatch& mismatch) {
      CHECK(mismatch.entity() == queue);
      CHECK(mismatch.argument() == "x-delivery-limit");
    }
  }
  SECTION("a classic queue where quorum is configured") {
    probe.declare_queue(queue, nlohmann::json::object());
    try {
      amqp::declare_topology(connection_settings(), topology);
      FAIL("declare_topology accepted a classic queue");
    } catch (const amqp::TopologyMismatch& mismatch) {
      CHECK(mismatch.entity() == queue);
      // RabbitMQ 3.10 compares only the arguments the EXISTING queue's type knows, in its
      // own order, and names the first that differs: for a classic queue without
      // arguments that is the dead-letter exchange we ask for, not x-queue-type.
      CHECK(mismatch.argument() == "x-dead-letter-exchange");
      CHECK_THAT(mismatch.what(), Catch::Contains("current is none"));
    }
  }
  // The refused queue is left as it was: nothing was changed behind the operator's back.
  CHECK(probe.queue_exists(queue));
}

TEST_CASE("amqp topology: an exchange of another type is refused", "[amqp][topology]") {
  const amqp::TopologySettings topology = test_topology(amqp::QueueType::quorum);
  TopologyCleanup cleanup(topology);
  BrokerProbe probe;
  const std::string exchange = topology.names.retry_exchange();
  amqp_exchange_declare(probe.connection().state(), BrokerProbe::kChannel,
                        amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes("topic"), 0, 1,
                        0, 0, amqp_empty_table);
  probe.connection().check_last_reply("exchange.declare topic", BrokerProbe::kChannel);
  try {
    amqp::declare_topology(connection_settings(), topology);
    FAIL("declare_topology accepted a topic exchange");
  } catch (const amqp::TopologyMismatch& mismatch) {
    CHECK(mismatch.entity() == exchange);
    CHECK(mismatch.argument() == "type");
  }
}

TEST_CASE("amqp topology: settings that cannot work are refused before the broker is asked",
          "[amqp][topology]") {
  amqp::TopologySettings topology = test_topology(amqp::QueueType::quorum);
  topology.channels.clear();
  amqp::ConnectionSettings unreachable;
  unreachable.url = "amqp://guest:guest@127.0.0.1:1/%2f";
  CHECK_THROWS_AS(amqp::declare_topology(unreachable, topology), std::invalid_argument);
}
