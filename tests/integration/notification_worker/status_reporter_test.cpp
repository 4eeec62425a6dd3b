// StatusReporter through a real AmqpPublisher to the broker scripts/test started: the events
// land in status.queue with the contract's properties and decode to what was reported;
// a broker that cannot take them says so through `done`.

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "amqp/message_codec.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "status_reporter.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace contract = notifs::contract;
namespace test = notifs::amqp_test;
using contract::Status;
using contract::StatusEvent;
using notifs::worker::StatusReporter;
using namespace std::chrono;
using namespace std::chrono_literals;

constexpr const char* kId = "5b8f2c1e-7a3d-4e6f-9b0a-1c2d3e4f5a6b";

amqp::PublisherSettings publisher_settings(const amqp::TopologySettings& topology) {
  amqp::PublisherSettings settings;
  settings.connection = test::connection_settings("test-status-reporter");
  settings.connections = 2;
  settings.topology = topology;
  settings.confirm_timeout = 15s;
  return settings;
}

// 2024-05-01T12:34:56.789Z and some microseconds the event text drops.
system_clock::time_point sample_time(int offset_ms = 0) {
  return sys_days{year{2024} / 5 / 1} + hours{12} + minutes{34} + seconds{56} +
         milliseconds{789 + offset_ms} + microseconds{321};
}

StatusEvent event(Status status, std::uint32_t attempt, std::string error = {},
                  std::string id = kId) {
  return StatusEvent{std::move(id), status, attempt, std::move(error),
                     sample_time(static_cast<int>(attempt))};
}

// A message as read with our own basic.get: Delivery does not carry delivery_mode.
struct Read {
  amqp::Delivery delivery;
  std::uint8_t delivery_mode = 0;
};

std::optional<Read> read_one(test::BrokerProbe& probe, const std::string& queue) {
  auto& connection = probe.connection();
  amqp_connection_state_t state = connection.state();
  constexpr amqp_channel_t channel = test::BrokerProbe::kChannel;
  amqp_maybe_release_buffers(state);
  const amqp_rpc_reply_t reply =
      amqp_basic_get(state, channel, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/1);
  connection.check(reply, "basic.get " + queue, channel);
  if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
    return std::nullopt;
  }
  REQUIRE(reply.reply.id == AMQP_BASIC_GET_OK_METHOD);
  const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
  std::string exchange = amqp::detail::to_string(ok->exchange);
  std::string routing_key = amqp::detail::to_string(ok->routing_key);
  const bool redelivered = ok->redelivered != 0;
  amqp_message_t message{};
  connection.check(amqp_read_message(state, channel, &message, 0), "read " + queue, channel);
  Read out;
  out.delivery_mode = (message.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0
                          ? message.properties.delivery_mode
                          : 0;
  out.delivery =
      amqp::detail::decode_delivery(message.properties, amqp::detail::to_string(message.body),
                                    std::move(exchange), std::move(routing_key), redelivered);
  amqp_destroy_message(&message);
  return out;
}

// Reads until `count` messages came or `timeout` passed (a confirmed message is in the
// queue already, so this rarely waits).
std::vector<Read> read_all(test::BrokerProbe& probe, const std::string& queue, std::size_t count,
                           milliseconds timeout = 5000ms) {
  std::vector<Read> out;
  const auto until = steady_clock::now() + timeout;
  while (out.size() < count && steady_clock::now() < until) {
    if (auto one = read_one(probe, queue)) {
      out.push_back(std::move(*one));
    } else {
      std::this_thread::sleep_for(20ms);
    }
  }
  return out;
}

std::future<bool> report(StatusReporter& reporter, StatusEvent e) {
  auto promise = std::make_shared<std::promise<bool>>();
  auto future = promise->get_future();
  reporter.report(std::move(e), [promise](bool confirmed) { promise->set_value(confirmed); });
  return future;
}

bool confirmed(std::future<bool>& future) {
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  return future.get();
}

}  // namespace

TEST_CASE("worker status: events reach status.queue with the contract's properties",
          "[worker][status]") {
  const auto topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  amqp::declare_topology(test::connection_settings(), topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  StatusReporter reporter(publisher, topology.names);

  const std::vector<StatusEvent> events = {
      event(Status::processing, 1),
      event(Status::retrying, 1, "451 4.3.0 try again later"),
      event(Status::processing, 2),
      event(Status::delivered, 2, "250 2.0.0 Ok: queued as 1F2E3D"),
      event(Status::failed, 3, "template 'welcome' cannot render: missing variables: n\u00e4me"),
  };
  std::vector<std::future<bool>> done;
  for (const auto& e : events) {
    done.push_back(report(reporter, e));
  }
  for (auto& future : done) {
    CHECK(confirmed(future));
  }

  test::BrokerProbe probe;
  const auto read = read_all(probe, topology.names.status_queue(), events.size());
  REQUIRE(read.size() == events.size());
  std::map<std::string, const Read*> by_id;
  for (const auto& message : read) {
    by_id[message.delivery.message_id] = &message;
  }
  REQUIRE(by_id.size() == events.size());  // message ids are distinct per event
  for (const auto& e : events) {
    const std::string message_id = std::string(kId) + ":" +
                                   std::string(contract::to_string(e.status)) + ":" +
                                   std::to_string(e.attempt);
    INFO(message_id);
    REQUIRE(by_id.count(message_id) == 1);
    const Read& message = *by_id[message_id];
    const auto& delivery = message.delivery;
    CHECK(delivery.exchange == topology.names.status_exchange());
    CHECK(delivery.routing_key == std::string(amqp::TopologyNames::kStatusRoutingKey));
    CHECK(delivery.content_type == "application/json");
    CHECK(message.delivery_mode == 2);  // persistent
    REQUIRE(delivery.timestamp.has_value());
    // AMQP timestamps count whole seconds.
    CHECK(*delivery.timestamp == floor<seconds>(e.at));

    const auto decoded = contract::decode_status_event(delivery.body);
    StatusEvent expected = e;
    expected.at = floor<milliseconds>(e.at);  // the body's text keeps milliseconds
    CHECK(decoded == expected);
  }
  CHECK(probe.message_count(topology.names.status_queue()) == 0);
}

TEST_CASE("worker status: many events from many threads are all confirmed and delivered",
          "[worker][status]") {
  const auto topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  amqp::declare_topology(test::connection_settings(), topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  StatusReporter reporter(publisher, topology.names);

  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::atomic<int> confirmations{0};
  std::atomic<int> refusals{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        char id[37];
        std::snprintf(id, sizeof id, "00000000-0000-4000-8000-%04d%08d", t, i);
        reporter.report(event(Status::processing, 1, {}, id),
                        [&](bool ok) { (ok ? confirmations : refusals).fetch_add(1); });
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  REQUIRE(test::wait_until([&] { return confirmations + refusals == kThreads * kPerThread; }, 30s));
  CHECK(refusals == 0);

  test::BrokerProbe probe;
  const auto read = read_all(probe, topology.names.status_queue(), kThreads * kPerThread);
  CHECK(read.size() == static_cast<std::size_t>(kThreads * kPerThread));
  std::map<std::string, int> seen;
  for (const auto& message : read) {
    const auto decoded = contract::decode_status_event(message.delivery.body);
    CHECK(message.delivery.message_id == decoded.notification_id + ":processing:1");
    ++seen[decoded.notification_id];
  }
  CHECK(seen.size() == static_cast<std::size_t>(kThreads * kPerThread));
}

TEST_CASE("worker status: an event the broker cannot route is reported not confirmed",
          "[worker][status]") {
  const auto topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  amqp::declare_topology(test::connection_settings(), topology);
  amqp::PublisherSettings settings = publisher_settings(topology);
  // Its connections would declare the topology again whenever they connect, and so bring
  // back the queue this test deletes.
  settings.topology.reset();
  amqp::AmqpPublisher publisher(settings);

  // The exchange exists but status.queue is gone: mandatory makes it a return, not a drop.
  test::BrokerProbe probe;
  probe.delete_queue(topology.names.status_queue());
  StatusReporter reporter(publisher, topology.names);
  auto unroutable = report(reporter, event(Status::delivered, 1));
  CHECK_FALSE(confirmed(unroutable));

  // No such exchange at all (another topology's names): the broker refuses it.
  StatusReporter elsewhere(publisher, amqp::TopologyNames(test::unique_prefix()));
  auto missing = report(elsewhere, event(Status::failed, 1, "x"));
  CHECK_FALSE(confirmed(missing));

  // The publisher recovers its channel: a later event to a working queue goes through.
  amqp::declare_topology(test::connection_settings(), topology);
  CHECK(test::wait_until(
      [&] {
        auto retry = report(reporter, event(Status::delivered, 2));
        return confirmed(retry);
      },
      10s, 200ms));
}

TEST_CASE("worker status: done is optional, and an event the gateway would refuse is not sent",
          "[worker][status]") {
  const auto topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  amqp::declare_topology(test::connection_settings(), topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  StatusReporter reporter(publisher, topology.names);

  bool called = false;
  CHECK_THROWS_AS(
      reporter.report(event(Status::processing, 1, {}, "not-a-uuid"), [&](bool) { called = true; }),
      std::invalid_argument);
  CHECK_THROWS_AS(reporter.report(event(Status::processing, 1, {}, ""), {}), std::invalid_argument);

  reporter.report(event(Status::processing, 7));  // no done: fire and forget
  REQUIRE(publisher.flush(15s));
  CHECK_FALSE(called);
  test::BrokerProbe probe;
  const auto read = read_all(probe, topology.names.status_queue(), 1);
  REQUIRE(read.size() == 1);
  CHECK(contract::decode_status_event(read.front().delivery.body).attempt == 7);
  CHECK_FALSE(read_one(probe, topology.names.status_queue()).has_value());
}
