// The Consumer against a real RabbitMQ (scripts/test starts it): acks, retry tiers,
// dead-lettering, graceful stop, recovery from dropped connections, a broker restart and a
// silent broker, and the quorum delivery limit. Every test has its own topology (unique
// prefix) and deletes it at the end.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/publisher.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace t = notifs::amqp_test;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

constexpr const char* kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

amqp::PublisherSettings publisher_settings(const amqp::TopologySettings& topology) {
  amqp::PublisherSettings settings;
  settings.connection = t::connection_settings("consumer-test-publisher");
  settings.connections = 2;
  settings.topology = topology;
  settings.confirm_timeout = 10s;
  // Bridges the outages the recovery tests cause, so publishes wait instead of failing.
  settings.connect_wait = 15s;
  return settings;
}

amqp::ConsumerSettings consumer_settings(const amqp::TopologySettings& topology,
                                         std::uint16_t prefetch = 32) {
  amqp::ConsumerSettings settings;
  settings.connection = t::connection_settings("consumer-test");
  settings.topology = topology;
  settings.channel = "email";
  settings.prefetch = prefetch;
  settings.stop_timeout = 10s;
  settings.requeue_delay = 100ms;
  return settings;
}

amqp::OutgoingMessage notification(const amqp::TopologySettings& topology, const std::string& id) {
  amqp::OutgoingMessage message;
  message.exchange = topology.names.direct_exchange();
  message.routing_key = "email";
  message.body = R"({"notification_id":")" + id + R"(","notification_type":"email"})";
  message.message_id = id;
  message.correlation_id = "req-" + id;
  message.headers.set(std::string(amqp::kTraceparentHeader), std::string(kTraceparent));
  return message;
}

std::vector<amqp::OutgoingMessage> notifications(const amqp::TopologySettings& topology,
                                                 const std::string& prefix, int count) {
  std::vector<amqp::OutgoingMessage> messages;
  messages.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) messages.push_back(notification(topology, prefix + std::to_string(i)));
  return messages;
}

// Publishes every message and waits (bounded) for all callbacks; returns the messages
// that were not confirmed. Safe to call from any thread (no Catch assertions inside).
std::vector<amqp::OutgoingMessage> publish_all(amqp::MessagePublisher& publisher,
                                               std::vector<amqp::OutgoingMessage> messages,
                                               std::chrono::seconds timeout = 60s) {
  struct State {
    std::mutex mutex;
    std::condition_variable changed;
    std::size_t pending = 0;
    std::vector<amqp::OutgoingMessage> failed;
  };
  auto state = std::make_shared<State>();
  state->pending = messages.size();
  for (auto& message : messages) {
    amqp::OutgoingMessage copy = message;
    publisher.async_publish(std::move(message), [state, copy = std::move(copy)](
                                                    std::error_code error, const std::string&) {
      std::lock_guard lock(state->mutex);
      if (error) state->failed.push_back(copy);
      if (--state->pending == 0) state->changed.notify_all();
    });
  }
  std::unique_lock lock(state->mutex);
  if (!state->changed.wait_for(lock, timeout, [&] { return state->pending == 0; })) {
    throw std::runtime_error("publish callbacks missing after the timeout: " +
                             std::to_string(state->pending));
  }
  return std::move(state->failed);
}

// Publishes until every message is confirmed (failures during an outage are tried again:
// the publisher reports them, it does not retry behind our back).
void publish_confirmed(amqp::MessagePublisher& publisher,
                       std::vector<amqp::OutgoingMessage> messages) {
  for (int round = 0; round < 20 && !messages.empty(); ++round) {
    messages = publish_all(publisher, std::move(messages));
    if (!messages.empty()) std::this_thread::sleep_for(200ms);
  }
  REQUIRE(messages.empty());
}

// What the handlers saw, from any thread.
class Recorder {
 public:
  struct Call {
    std::string id;
    std::uint32_t attempt = 0;
    bool redelivered = false;
    std::optional<std::string> last_error;
    SteadyClock::time_point at;
  };

  void add(const amqp::Delivery& delivery) {
    Call call{delivery.message_id, delivery.attempt(), delivery.redelivered,
              delivery.headers.get_string(amqp::kLastErrorHeader), SteadyClock::now()};
    std::lock_guard lock(mutex_);
    ++counts_[call.id];
    calls_.push_back(std::move(call));
  }

  std::size_t distinct() const {
    std::lock_guard lock(mutex_);
    return counts_.size();
  }
  std::size_t calls() const {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  std::map<std::string, int> counts() const {
    std::lock_guard lock(mutex_);
    return counts_;
  }
  std::vector<Call> calls_of(const std::string& id) const {
    std::lock_guard lock(mutex_);
    std::vector<Call> out;
    for (const auto& call : calls_) {
      if (call.id == id) out.push_back(call);
    }
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int> counts_;
  std::vector<Call> calls_;
};

// Sum of a counter family's series (or a histogram's sample count) whose labels include
// `labels`.
double metric(const prometheus::Registry& registry, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& series : family.metric) {
      std::size_t matched = 0;
      for (const auto& label : series.label) {
        const auto it = labels.find(label.name);
        if (it != labels.end() && it->second == label.value) ++matched;
      }
      if (matched != labels.size()) continue;
      if (family.type == prometheus::MetricType::Histogram) {
        total += static_cast<double>(series.histogram.sample_count);
      } else {
        total += series.counter.value;
      }
    }
  }
  return total;
}

// Ready messages of a queue once what a closed consumer left unacked is back: the broker
// returns those asynchronously after the connection ends, so the count is read until it
// is `expected` (bounded) and read again a moment later, when a late return would show.
// (rabbitmqctl list_queues is no help: its counts for quorum queues lag by seconds.)
std::uint32_t settled_count(const std::string& queue, std::uint32_t expected) {
  t::BrokerProbe probe;
  t::wait_until([&] { return probe.message_count(queue) == expected; }, 5s);
  std::this_thread::sleep_for(300ms);
  return probe.message_count(queue);
}

// Takes every message of a queue (auto-ack), waiting (bounded) until `expected` came.
std::vector<amqp::Delivery> drain(t::BrokerProbe& probe, const std::string& queue,
                                  std::size_t expected, std::chrono::milliseconds timeout = 15s) {
  std::vector<amqp::Delivery> out;
  t::wait_until(
      [&] {
        while (auto delivery = probe.get(queue)) out.push_back(std::move(*delivery));
        return out.size() >= expected;
      },
      timeout, 20ms);
  return out;
}

std::string header_text(const amqp::Delivery& delivery, std::string_view name) {
  return delivery.headers.get_string(name).value_or("<missing>");
}

}  // namespace

TEST_CASE("amqp consumer round trip: 100 messages each handled once and acked",
          "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  amqp::Consumer consumer(consumer_settings(topology), publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            done(amqp::Outcome::ack());
                          },
                          registry);
  consumer.start();
  CHECK(consumer.connected());

  publish_confirmed(publisher, notifications(topology, "rt-", 100));
  REQUIRE(t::wait_until([&] { return seen.distinct() == 100; }, 20s));
  consumer.stop();

  CHECK(seen.calls() == 100);
  for (const auto& [id, count] : seen.counts()) {
    INFO(id);
    CHECK(count == 1);
  }
  const std::string queue = topology.names.main_queue("email");
  CHECK(settled_count(queue, 0) == 0);
  CHECK(settled_count(topology.names.failed_queue(), 0) == 0);
  const std::map<std::string, std::string> labels{{"queue", queue}};
  CHECK(metric(*registry, "amqp_consumed_total", labels) == 100);
  CHECK(metric(*registry, "amqp_acked_total", labels) == 100);
  CHECK(metric(*registry, "amqp_handler_seconds", labels) == 100);
  CHECK(metric(*registry, "amqp_retried_total", labels) == 0);
  CHECK(metric(*registry, "amqp_rejected_total", labels) == 0);
}

TEST_CASE("amqp consumer 10,000 messages from 8 concurrent publishers consumed exactly once",
          "[amqp][consumer]") {
  constexpr int kPublishers = 8;
  constexpr int kPerPublisher = 1250;
  constexpr std::size_t kTotal = kPublishers * kPerPublisher;
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  std::atomic<int> by_first{0};
  std::atomic<int> by_second{0};
  const auto handler_for = [&](std::atomic<int>& mine) {
    return [&seen, &mine](amqp::Delivery delivery, amqp::Completion done) {
      seen.add(delivery);
      ++mine;
      done(amqp::Outcome::ack());
    };
  };
  // Two consumers compete for the queue, as two worker processes would.
  amqp::Consumer first(consumer_settings(topology, 64), publisher, handler_for(by_first));
  amqp::Consumer second(consumer_settings(topology, 64), publisher, handler_for(by_second));
  first.start();
  second.start();

  std::atomic<std::size_t> unconfirmed{0};
  std::vector<std::thread> publishers;
  for (int p = 0; p < kPublishers; ++p) {
    publishers.emplace_back([&, p] {
      try {
        auto failed = publish_all(publisher, notifications(topology, "p" + std::to_string(p) + "-",
                                                           kPerPublisher));
        unconfirmed += failed.size();
      } catch (const std::exception&) {
        unconfirmed += kPerPublisher;
      }
    });
  }
  for (auto& thread : publishers) thread.join();
  REQUIRE(unconfirmed == 0);

  REQUIRE(t::wait_until([&] { return seen.distinct() == kTotal; }, 60s));
  first.stop();
  second.stop();
  CHECK(seen.calls() == kTotal);
  std::size_t duplicates = 0;
  for (const auto& [id, count] : seen.counts()) {
    if (count != 1) ++duplicates;
  }
  CHECK(duplicates == 0);
  CHECK(static_cast<std::size_t>(by_first + by_second) == kTotal);
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
}

TEST_CASE("amqp consumer retry walks every tier and lands in failed.queue",
          "[amqp][consumer]") {
  auto topology = t::test_topology();
  topology.retry_tiers = 3;
  topology.retry_base_delay = 50ms;
  topology.retry_factor = 2.0;
  t::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  amqp::Consumer consumer(consumer_settings(topology), publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            done(amqp::Outcome::retry("smtp timeout #" +
                                                      std::to_string(delivery.attempt())));
                          },
                          registry);
  consumer.start();

  const amqp::OutgoingMessage original = notification(topology, "walker");
  publish_confirmed(publisher, {original});

  t::BrokerProbe probe;
  const auto failed = drain(probe, topology.names.failed_queue(), 1);
  REQUIRE(failed.size() == 1);
  consumer.stop();

  const auto calls = seen.calls_of("walker");
  REQUIRE(calls.size() == 4);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    INFO("call " << i);
    CHECK(calls[i].attempt == i + 1);
    if (i == 0) {
      CHECK_FALSE(calls[i].last_error.has_value());
    } else {
      CHECK(calls[i].last_error == "smtp timeout #" + std::to_string(i));
      // A tier's TTL is a lower bound on the time the message spends away.
      const auto ttl = amqp::retry_delay(topology, static_cast<std::uint32_t>(i));
      CHECK(calls[i].at - calls[i - 1].at >= ttl - 5ms);
    }
  }

  const amqp::Delivery& dead = failed.front();
  CHECK(dead.body == original.body);
  CHECK(dead.message_id == original.message_id);
  CHECK(dead.correlation_id == original.correlation_id);
  CHECK(dead.routing_key == "email");
  CHECK(header_text(dead, amqp::kFailureReasonHeader) ==
        "retries exhausted after 4 attempts: smtp timeout #4");
  CHECK(dead.headers.get_int(amqp::kAttemptHeader) == 4);
  CHECK(header_text(dead, amqp::kOriginalQueueHeader) == topology.names.main_queue("email"));
  CHECK(header_text(dead, amqp::kLastErrorHeader) == "smtp timeout #3");
  CHECK(header_text(dead, amqp::kTraceparentHeader) == kTraceparent);

  CHECK(probe.message_count(topology.names.main_queue("email")) == 0);
  for (std::uint32_t tier = 1; tier <= 3; ++tier) {
    CHECK(probe.message_count(topology.names.retry_queue("email", tier)) == 0);
  }
  const std::map<std::string, std::string> labels{
      {"queue", topology.names.main_queue("email")}};
  CHECK(metric(*registry, "amqp_retried_total", labels) == 3);
  CHECK(metric(*registry, "amqp_dead_lettered_total", labels) == 1);
  CHECK(metric(*registry, "amqp_acked_total", labels) == 4);
}

TEST_CASE("amqp consumer poison messages go to failed.queue without holding up the rest",
          "[amqp][consumer]") {
  auto topology = t::test_topology();
  topology.retry_tiers = 3;
  topology.retry_base_delay = 50ms;
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  // Prefetch 1: a poison message that were never settled would stop everything behind it.
  amqp::Consumer consumer(consumer_settings(topology, 1), publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            if (delivery.message_id.empty()) {
                              done(amqp::Outcome::dead_letter("no message id"));
                            } else if (delivery.message_id == "poison-dead") {
                              done(amqp::Outcome::dead_letter("unparseable body"));
                            } else if (delivery.message_id == "poison-throw") {
                              throw std::runtime_error("template exploded");
                            } else {
                              done(amqp::Outcome::ack());
                            }
                          });
  consumer.start();

  t::BrokerProbe probe;
  std::vector<amqp::OutgoingMessage> messages;
  messages.push_back(notification(topology, "poison-dead"));
  messages.push_back(notification(topology, "poison-throw"));
  publish_confirmed(publisher, messages);
  // No properties and no headers at all, as a foreign client might send.
  probe.publish_raw(topology.names.direct_exchange(), "email", "poison-raw \x01\x02");
  publish_confirmed(publisher, notifications(topology, "good-", 50));

  const auto failed = drain(probe, topology.names.failed_queue(), 3);
  REQUIRE(t::wait_until([&] { return seen.distinct() == 53; }, 20s));
  consumer.stop();
  REQUIRE(failed.size() == 3);

  std::map<std::string, const amqp::Delivery*> by_id;
  for (const auto& delivery : failed) by_id[delivery.message_id] = &delivery;
  REQUIRE(by_id.count("poison-dead") == 1);
  REQUIRE(by_id.count("poison-throw") == 1);
  REQUIRE(by_id.count("") == 1);
  CHECK(header_text(*by_id["poison-dead"], amqp::kFailureReasonHeader) == "unparseable body");
  CHECK(by_id["poison-dead"]->headers.get_int(amqp::kAttemptHeader) == 1);
  CHECK(header_text(*by_id["poison-throw"], amqp::kFailureReasonHeader) ==
        "retries exhausted after 4 attempts: template exploded");
  CHECK(by_id["poison-throw"]->headers.get_int(amqp::kAttemptHeader) == 4);
  CHECK(header_text(*by_id[""], amqp::kFailureReasonHeader) == "no message id");
  CHECK(by_id[""]->body == "poison-raw \x01\x02");
  CHECK(seen.calls_of("poison-throw").size() == 4);
  for (int i = 0; i < 50; ++i) {
    CHECK(seen.calls_of("good-" + std::to_string(i)).size() == 1);
  }
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
}

TEST_CASE("amqp consumer graceful stop finishes in-flight handlers and loses nothing",
          "[amqp][consumer]") {
  constexpr int kMessages = 40;
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  publish_confirmed(publisher, notifications(topology, "slow-", kMessages));

  std::mutex workers_mutex;
  std::vector<std::thread> workers;
  std::atomic<int> started{0};
  std::atomic<int> completed{0};
  amqp::Consumer consumer(consumer_settings(topology, 8), publisher,
                          [&](amqp::Delivery, amqp::Completion done) {
                            ++started;
                            // Long work on a thread of its own, completed from there.
                            std::lock_guard lock(workers_mutex);
                            workers.emplace_back([&completed, done = std::move(done)] {
                              std::this_thread::sleep_for(200ms);
                              ++completed;
                              done(amqp::Outcome::ack());
                            });
                          },
                          registry);
  consumer.start();
  REQUIRE(t::wait_until([&] { return started >= 8; }, 10s));
  consumer.stop();
  // Every handler that started had finished, and its ack went out, when stop() returned.
  const int handled = started.load();
  CHECK(completed == handled);
  {
    std::lock_guard lock(workers_mutex);
    for (auto& worker : workers) worker.join();
  }
  CHECK(started == handled);  // nothing was handed to a handler after stop()
  const std::string queue = topology.names.main_queue("email");
  CHECK(metric(*registry, "amqp_acked_total", {{"queue", queue}}) == handled);
  // Nothing lost, nothing left unacked: the rest is back in the queue, ready.
  const auto expected = static_cast<std::uint32_t>(kMessages - handled);
  CHECK(settled_count(queue, expected) == expected);
}

namespace {

// Consumes with a handler slow enough (1 ms) that a fault lands mid-stream, runs `fault`
// after a fifth of the first batch was handled, publishes a second batch afterwards, and
// checks that every message was handled at least once and nothing stays in the queue.
// `delete_after` is false after a broker restart: RabbitMQ 3.10.8 can crash its
// dead-letter supervisor for good when quorum queues with at-least-once dead-lettering are
// deleted while still recovering (see the publisher's stop_app test); the node is thrown
// away after the run anyway.
void check_recovery(const std::function<void()>& fault, bool delete_after = true) {
  constexpr int kBatch = 1000;
  const auto topology = t::test_topology();
  std::optional<t::TopologyCleanup> cleanup;
  if (delete_after) cleanup.emplace(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  publish_confirmed(publisher, notifications(topology, "before-", kBatch));

  Recorder seen;
  amqp::Consumer consumer(consumer_settings(topology, 16), publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            std::this_thread::sleep_for(1ms);
                            seen.add(delivery);
                            done(amqp::Outcome::ack());
                          },
                          registry);
  consumer.start();
  REQUIRE(t::wait_until([&] { return seen.distinct() >= kBatch / 5; }, 20s));
  fault();
  publish_confirmed(publisher, notifications(topology, "after-", kBatch));

  REQUIRE(t::wait_until([&] { return seen.distinct() == 2 * kBatch; }, 60s));
  CHECK(t::wait_until([&] { return consumer.connected(); }, 10s));
  consumer.stop();
  const auto counts = seen.counts();
  for (int i = 0; i < kBatch; ++i) {
    CHECK(counts.count("before-" + std::to_string(i)) == 1);
    CHECK(counts.count("after-" + std::to_string(i)) == 1);
  }
  CHECK(metric(*registry, "amqp_reconnects_total", {{"role", "consumer"}}) >= 1);
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
}

}  // namespace

TEST_CASE("amqp consumer resumes after rabbitmqctl close_all_connections mid-stream",
          "[amqp][consumer][recovery]") {
  check_recovery([] { t::rabbitmqctl({"close_all_connections", "consumer test"}); });
}

TEST_CASE("amqp consumer resumes after the broker's stop_app and start_app",
          "[amqp][consumer][recovery]") {
  check_recovery([] {
    t::rabbitmqctl({"stop_app"});
    std::this_thread::sleep_for(500ms);
    t::rabbitmqctl({"start_app"});
  }, /*delete_after=*/false);
}

TEST_CASE("amqp consumer without retry tiers requeues a retry after a pause",
          "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  auto settings = consumer_settings(topology);
  settings.queue = topology.names.status_queue();
  settings.retries_enabled = false;
  settings.requeue_delay = 300ms;
  amqp::Consumer consumer(settings, publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            if (delivery.message_id == "bad-status") {
                              done(amqp::Outcome::dead_letter("unknown notification"));
                            } else if (!delivery.redelivered) {
                              done(amqp::Outcome::retry("database busy"));
                            } else {
                              done(amqp::Outcome::ack());
                            }
                          });
  consumer.start();

  auto status = notification(topology, "status-1");
  status.exchange = topology.names.status_exchange();
  status.routing_key = std::string(amqp::TopologyNames::kStatusRoutingKey);
  auto bad = status;
  bad.message_id = "bad-status";
  publish_confirmed(publisher, {status, bad});

  t::BrokerProbe probe;
  const auto failed = drain(probe, topology.names.failed_queue(), 1);
  REQUIRE(t::wait_until([&] { return seen.calls_of("status-1").size() == 2; }, 10s));
  consumer.stop();

  const auto calls = seen.calls_of("status-1");
  REQUIRE(calls.size() == 2);
  CHECK_FALSE(calls[0].redelivered);
  CHECK(calls[1].redelivered);
  CHECK(calls[1].attempt == 1);  // requeued as it was, not republished
  CHECK(calls[1].at - calls[0].at >= 300ms);
  // A status message the handler gives up on still reaches failed.queue.
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].message_id == "bad-status");
  CHECK(header_text(failed[0], amqp::kOriginalQueueHeader) == topology.names.status_queue());
  CHECK(header_text(failed[0], amqp::kFailureReasonHeader) == "unknown notification");
  CHECK(settled_count(topology.names.status_queue(), 0) == 0);
  for (std::uint32_t tier = 1; tier <= topology.retry_tiers; ++tier) {
    CHECK(probe.message_count(topology.names.retry_queue("email", tier)) == 0);
  }
}

TEST_CASE("amqp consumer requeue brings the same attempt back, past neither a tier nor failed.queue",
          "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  auto settings = consumer_settings(topology);
  settings.requeue_delay = 300ms;
  amqp::Consumer consumer(settings, publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            if (!delivery.redelivered) {
                              done(amqp::Outcome::requeue("status event not confirmed"));
                            } else {
                              done(amqp::Outcome::ack());
                            }
                          });
  consumer.start();
  // At the last attempt a retry would be dead-lettered; a requeue is not.
  auto last = notification(topology, "last-attempt");
  last.headers.set(std::string(amqp::kAttemptHeader),
                   static_cast<std::int64_t>(topology.retry_tiers + 1));
  publish_confirmed(publisher, {last});

  REQUIRE(t::wait_until([&] { return seen.calls_of("last-attempt").size() == 2; }, 10s));
  consumer.stop();
  const auto calls = seen.calls_of("last-attempt");
  REQUIRE(calls.size() == 2);
  CHECK(calls[1].redelivered);
  CHECK(calls[1].attempt == topology.retry_tiers + 1);
  CHECK(calls[1].at - calls[0].at >= 300ms);
  t::BrokerProbe probe;
  CHECK(probe.message_count(topology.names.failed_queue()) == 0);
  for (std::uint32_t tier = 1; tier <= topology.retry_tiers; ++tier) {
    CHECK(probe.message_count(topology.names.retry_queue("email", tier)) == 0);
  }
}

namespace {

// A publisher seam: fails the first `failures` publishes (from another thread, as the real
// one reports), then forwards to the real publisher.
class FlakyPublisher final : public amqp::MessagePublisher {
 public:
  FlakyPublisher(amqp::MessagePublisher& real, int failures) : real_(real), failures_(failures) {}
  ~FlakyPublisher() override {
    for (auto& thread : threads_) thread.join();
  }

  void async_publish(amqp::OutgoingMessage message, amqp::PublishCallback callback) override {
    if (failures_.fetch_sub(1) > 0) {
      std::lock_guard lock(mutex_);
      threads_.emplace_back([callback = std::move(callback)] {
        callback(make_error_code(amqp::AmqpErrc::nacked), "injected nack");
      });
      return;
    }
    real_.async_publish(std::move(message), std::move(callback));
  }

 private:
  amqp::MessagePublisher& real_;
  std::atomic<int> failures_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

}  // namespace

TEST_CASE("amqp consumer requeues the original when the retry republish is not confirmed",
          "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher real(publisher_settings(topology));
  FlakyPublisher flaky(real, 1);
  Recorder seen;
  amqp::Consumer consumer(consumer_settings(topology), flaky,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            if (delivery.attempt() == 1) {
                              done(amqp::Outcome::retry("provider 503"));
                            } else {
                              done(amqp::Outcome::ack());
                            }
                          },
                          registry);
  consumer.start();
  publish_confirmed(real, {notification(topology, "flaky")});
  REQUIRE(t::wait_until([&] { return seen.calls_of("flaky").size() == 3; }, 15s));
  consumer.stop();

  const auto calls = seen.calls_of("flaky");
  // 1: retry, republish nacked -> rejected back to the queue; 2: redelivered, retry
  // confirmed -> tier 1; 3: back from the tier as attempt 2, acked.
  CHECK(calls[0].attempt == 1);
  CHECK(calls[1].attempt == 1);
  CHECK(calls[1].redelivered);
  CHECK(calls[2].attempt == 2);
  CHECK(calls[2].last_error == "provider 503");
  const std::map<std::string, std::string> labels{
      {"queue", topology.names.main_queue("email")}};
  CHECK(metric(*registry, "amqp_rejected_total", labels) == 1);
  CHECK(metric(*registry, "amqp_retried_total", labels) == 1);
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
  CHECK(settled_count(topology.names.retry_queue("email", 1), 0) == 0);
}

TEST_CASE("amqp consumer counts a dropped completion as a retry", "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  amqp::Consumer consumer(consumer_settings(topology), publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            if (delivery.attempt() > 1) done(amqp::Outcome::ack());
                            // else: `done` goes out of scope uncalled
                          });
  consumer.start();
  publish_confirmed(publisher, {notification(topology, "dropped")});
  REQUIRE(t::wait_until([&] { return seen.calls_of("dropped").size() == 2; }, 15s));
  consumer.stop();
  const auto calls = seen.calls_of("dropped");
  CHECK(calls[1].attempt == 2);
  CHECK(calls[1].last_error == "handler dropped the delivery");
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
}

TEST_CASE("amqp consumer start fails visibly when its queue does not exist",
          "[amqp][consumer]") {
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  auto settings = consumer_settings(topology);
  settings.queue = topology.names.main_queue("nonexistent");
  amqp::Consumer consumer(settings, publisher, [](amqp::Delivery, amqp::Completion done) {
    done(amqp::Outcome::ack());
  });
  try {
    consumer.start();
    FAIL("start() returned for a queue that does not exist");
  } catch (const amqp::AmqpError& e) {
    CHECK(e.code() == 404);
    CHECK_THAT(e.what(), Catch::Contains(settings.queue));
  }
  CHECK_FALSE(consumer.connected());
}

TEST_CASE("amqp consumer start against an unreachable broker returns and keeps trying",
          "[amqp][consumer]") {
  // A port nobody listens on: bound, then closed.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  const int port = ntohs(address.sin_port);
  ::close(fd);

  const auto topology = t::test_topology();
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  auto settings = consumer_settings(topology);
  settings.connection.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "/%2f";
  amqp::Consumer consumer(settings, publisher,
                          [](amqp::Delivery, amqp::Completion done) { done(amqp::Outcome::ack()); },
                          registry);
  consumer.start();
  CHECK_FALSE(consumer.connected());
  const auto before = SteadyClock::now();
  consumer.stop();
  // stop() interrupts the backoff wait instead of sleeping it out (the ceiling is 1 s).
  CHECK(SteadyClock::now() - before < 5s);
  CHECK(metric(*registry, "amqp_reconnects_total", {{"role", "consumer"}}) == 0);
}

namespace {

// A TCP relay between the consumer and the broker that can go silent: freeze() stops
// relaying on the connections it has (sockets stay open, nothing moves), as a dead NAT entry
// or a frozen VM would. Connections made afterwards are relayed normally.
class FreezableProxy {
 public:
  explicit FreezableProxy(int target_port) : target_port_(target_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener_ >= 0);
    sockaddr_in address = loopback(0);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
    REQUIRE(::pipe(wake_) == 0);
    thread_ = std::thread([this] { run(); });
  }

  ~FreezableProxy() {
    stopping_ = true;
    wake();
    thread_.join();
    for (const auto& pair : pairs_) {
      ::close(pair.client);
      ::close(pair.upstream);
    }
    ::close(listener_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  FreezableProxy(const FreezableProxy&) = delete;
  FreezableProxy& operator=(const FreezableProxy&) = delete;

  int port() const { return port_; }

  // Returns once the relay thread has stopped relaying on every current connection.
  void freeze() {
    freeze_requested_ = true;
    wake();
    std::unique_lock lock(mutex_);
    frozen_.wait(lock, [&] { return !freeze_requested_; });
  }

 private:
  struct Pair {
    int client;
    int upstream;
    bool frozen;
  };

  static sockaddr_in loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    return address;
  }

  void wake() {
    const char byte = 0;
    [[maybe_unused]] const auto written = ::write(wake_[1], &byte, 1);
  }

  void run() {
    while (!stopping_) {
      if (freeze_requested_) {
        for (auto& pair : pairs_) pair.frozen = true;
        std::lock_guard lock(mutex_);
        freeze_requested_ = false;
        frozen_.notify_all();
      }
      std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
      std::vector<std::pair<std::size_t, bool>> owners;  // pair index, from client side
      for (std::size_t i = 0; i < pairs_.size(); ++i) {
        if (pairs_[i].frozen || pairs_[i].client < 0) continue;
        fds.push_back({pairs_[i].client, POLLIN, 0});
        owners.emplace_back(i, true);
        fds.push_back({pairs_[i].upstream, POLLIN, 0});
        owners.emplace_back(i, false);
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if ((fds[0].revents & POLLIN) != 0) {
        char byte = 0;
        [[maybe_unused]] const auto got = ::read(wake_[0], &byte, 1);
        continue;  // a freeze or stop request: act on it before relaying anything more
      }
      if ((fds[1].revents & POLLIN) != 0) accept_one();
      for (std::size_t k = 2; k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        Pair& pair = pairs_[owners[k - 2].first];
        if (pair.client < 0) continue;
        const int from = owners[k - 2].second ? pair.client : pair.upstream;
        const int to = owners[k - 2].second ? pair.upstream : pair.client;
        char buffer[16384];
        const ssize_t n = ::read(from, buffer, sizeof buffer);
        if (n <= 0 || !write_all(to, buffer, static_cast<std::size_t>(n))) {
          ::close(pair.client);
          ::close(pair.upstream);
          pair.client = pair.upstream = -1;
        }
      }
    }
  }

  void accept_one() {
    const int client = ::accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    const int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = loopback(target_port_);
    if (upstream < 0 ||
        ::connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      ::close(client);
      if (upstream >= 0) ::close(upstream);
      return;
    }
    pairs_.push_back({client, upstream, false});
  }

  static bool write_all(int fd, const char* data, std::size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(fd, data, size);
      if (n <= 0) return false;
      data += n;
      size -= static_cast<std::size_t>(n);
    }
    return true;
  }

  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> freeze_requested_{false};
  std::mutex mutex_;
  std::condition_variable frozen_;
  std::vector<Pair> pairs_;  // proxy thread only (and the destructor after the join)
  std::thread thread_;
};

}  // namespace

TEST_CASE("amqp consumer notices a silent broker by its missing heartbeats and reconnects",
          "[amqp][consumer]") {
  const std::string url = t::rabbitmq_url();
  std::smatch match;
  REQUIRE(std::regex_match(url, match, std::regex(R"((amqp://[^@]*@[^:/]*:)(\d+)(/.*))")));
  FreezableProxy proxy(std::stoi(match[2].str()));

  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  Recorder seen;
  auto settings = consumer_settings(topology);
  settings.connection.url = match[1].str() + std::to_string(proxy.port()) + match[3].str();
  settings.connection.heartbeat = 1s;
  amqp::Consumer consumer(settings, publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            seen.add(delivery);
                            done(amqp::Outcome::ack());
                          },
                          registry);
  consumer.start();
  publish_confirmed(publisher, {notification(topology, "before-silence")});
  REQUIRE(t::wait_until([&] { return seen.distinct() == 1; }, 10s));

  proxy.freeze();
  // Delivered into the frozen connection: the broker gets it back when it gives up on that
  // connection, and the consumer's new connection must receive it.
  publish_confirmed(publisher, {notification(topology, "during-silence")});
  REQUIRE(t::wait_until([&] { return seen.calls_of("during-silence").size() >= 1; }, 30s));
  CHECK(metric(*registry, "amqp_reconnects_total", {{"role", "consumer"}}) >= 1);
  CHECK(consumer.connected());
  consumer.stop();
  CHECK(settled_count(topology.names.main_queue("email"), 0) == 0);
}

TEST_CASE("amqp consumer crash loop ends in failed.queue through the quorum delivery limit",
          "[amqp][consumer]") {
  auto topology = t::test_topology();
  topology.delivery_limit = 2;
  t::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology));
  publish_confirmed(publisher, {notification(topology, "crasher")});

  // Each round is a worker that takes the message and dies with it unacked: the handler
  // keeps the Completion (so no retry is reported) and stop() gives up at once.
  std::vector<amqp::Completion> held;
  std::mutex held_mutex;
  t::BrokerProbe probe;
  int crashes = 0;
  std::vector<amqp::Delivery> failed;
  while (crashes < 8 && failed.empty()) {
    std::atomic<bool> got{false};
    auto settings = consumer_settings(topology);
    settings.stop_timeout = 0ms;
    amqp::Consumer worker(settings, publisher, [&](amqp::Delivery, amqp::Completion done) {
      std::lock_guard lock(held_mutex);
      held.push_back(std::move(done));
      got = true;
    });
    worker.start();
    const bool dead_lettered = [&] {
      bool in_failed = false;
      t::wait_until(
          [&] {
            in_failed = probe.message_count(topology.names.failed_queue()) > 0;
            return got.load() || in_failed;
          },
          10s);
      return in_failed && !got.load();
    }();
    if (dead_lettered) break;
    worker.stop();
    ++crashes;
  }
  if (failed.empty()) failed = drain(probe, topology.names.failed_queue(), 1, 5s);
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].message_id == "crasher");
  // The broker, not the consumer, dead-lettered it (with at-least-once safety).
  CHECK(header_text(failed[0], "x-first-death-reason") == "delivery_limit");
  CHECK(crashes >= 2);
  CHECK(crashes <= 4);
  CHECK(probe.message_count(topology.names.main_queue("email")) == 0);
}
