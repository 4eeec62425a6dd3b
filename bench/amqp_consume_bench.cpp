// Consume rate of the library's Consumer against raw rabbitmq-c loops, in one run, on the
// same broker and the same kind of queue (a quorum queue freshly filled with N persistent
// 512-byte messages by a raw pipelined publisher), with the same prefetch. The raw loops are
// what a hand-written consumer does (basic.consume, amqp_consume_message, basic.ack), once
// with an ack per message and once with `multiple` acks; the Consumer adds its frame loop,
// handler call, Completion, mailbox and metrics. Each consume must leave the queue empty.
// Rounds alternate so noise from the shared machine lands on all; the best of each counts.
//
//   amqp_consume_bench [messages] [prefetch] [rounds]
//
// The broker: NOTIFS_BENCH_RABBITMQ_URL, else NOTIFS_TEST_RABBITMQ_URL (scripts/test's).
#include <amqp.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/registry.h>

#include "amqp/connection.hpp"
#include "amqp/message_codec.hpp"
#include "amqp/topology_declarer.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
using Clock = std::chrono::steady_clock;

constexpr amqp_channel_t kChannel = 1;
constexpr std::size_t kBodySize = 512;
// Unconfirmed messages the filler keeps in flight.
constexpr std::size_t kFillWindow = 2000;

std::string broker_url() {
  for (const char* name : {"NOTIFS_BENCH_RABBITMQ_URL", "NOTIFS_TEST_RABBITMQ_URL"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  throw std::runtime_error(
      "set NOTIFS_BENCH_RABBITMQ_URL (or NOTIFS_TEST_RABBITMQ_URL) to the broker's amqp:// URL");
}

amqp::ConnectionSettings connection_settings(const std::string& name) {
  amqp::ConnectionSettings settings;
  settings.url = broker_url();
  settings.connection_name = name;
  return settings;
}

amqp::TopologySettings bench_topology() {
  std::random_device device;
  amqp::TopologySettings topology;
  topology.queue_type = amqp::QueueType::quorum;
  topology.channels = {"email"};
  topology.retry_tiers = 1;
  topology.names = amqp::TopologyNames("bench-" + std::to_string(::getpid()) + "-" +
                                       std::to_string(device() % 100000) + ".");
  return topology;
}

// Confirms of the filler, matched by delivery tag (`multiple` included).
class Confirms {
 public:
  void expect(std::uint64_t tag) {
    if (acked_.size() <= tag) acked_.resize(tag + 1, false);
  }
  void ack(std::uint64_t tag, bool multiple) {
    const std::uint64_t from = multiple ? lowest_ : tag;
    for (std::uint64_t t = from; t <= tag && t < acked_.size(); ++t) {
      if (!acked_[t]) {
        acked_[t] = true;
        ++count_;
      }
    }
    while (lowest_ < acked_.size() && acked_[lowest_]) ++lowest_;
  }
  std::uint64_t count() const { return count_; }

 private:
  std::vector<bool> acked_{true};  // tags start at 1
  std::uint64_t lowest_ = 1;
  std::uint64_t count_ = 0;
};

// Reads frames until fewer than `limit` messages are unconfirmed.
void read_confirms(detail::Connection& connection, std::uint64_t published, Confirms& confirms,
                   std::uint64_t limit) {
  while (published - confirms.count() > limit) {
    amqp_frame_t frame{};
    detail::check_status(amqp_simple_wait_frame(connection.state(), &frame), "wait for confirm");
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    if (frame.payload.method.id == AMQP_BASIC_ACK_METHOD) {
      const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
      confirms.ack(ack->delivery_tag, ack->multiple != 0);
    } else if (frame.payload.method.id == AMQP_BASIC_NACK_METHOD) {
      throw std::runtime_error("the broker nacked a message while filling the queue");
    } else if (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
               frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
      throw std::runtime_error("the broker closed the channel while filling the queue");
    }
    amqp_maybe_release_buffers(connection.state());
  }
}

// The raw pipelined filler: publishes N persistent messages with confirms, keeping up to
// kFillWindow unconfirmed, and waits for the last confirm.
void fill(const amqp::TopologySettings& topology, std::size_t messages) {
  auto connection = detail::Connection::open(connection_settings("bench-filler"));
  connection->open_channel(kChannel);
  connection->confirm_select(kChannel);
  const std::string body(kBodySize, 'x');
  const std::string exchange = topology.names.direct_exchange();
  Confirms confirms;
  for (std::uint64_t published = 1; published <= messages; ++published) {
    confirms.expect(published);
    amqp::OutgoingMessage message;
    message.message_id = std::to_string(published);
    const detail::EncodedProperties properties(message);
    amqp_bytes_t bytes{body.size(), const_cast<char*>(body.data())};
    detail::check_status(
        amqp_basic_publish(connection->state(), kChannel, amqp_cstring_bytes(exchange.c_str()),
                           amqp_cstring_bytes("email"), /*mandatory=*/0, /*immediate=*/0,
                           properties.get(), bytes),
        "basic.publish");
    read_confirms(*connection, published, confirms, kFillWindow);
  }
  read_confirms(*connection, messages, confirms, 0);
}

std::uint32_t ready_messages(const std::string& queue) {
  auto connection = detail::Connection::open(connection_settings("bench-probe"));
  connection->open_channel(kChannel);
  const auto* ok = amqp_queue_declare(connection->state(), kChannel,
                                      amqp_cstring_bytes(queue.c_str()), /*passive=*/1, 0, 0, 0,
                                      amqp_empty_table);
  connection->check_last_reply("queue.declare passive " + queue, kChannel);
  return ok->message_count;
}

// (a) The raw loop: one connection, prefetch, manual acks. `batch_acks` false: one
// basic.ack per message, as most hand-written consumers do. true: one basic.ack with
// `multiple` whenever rabbitmq-c has nothing more buffered or half the prefetch window
// is unacked, the same saving the Consumer makes.
double consume_raw(const amqp::TopologySettings& topology, std::size_t messages,
                   std::uint16_t prefetch, bool batch_acks) {
  const std::string queue = topology.names.main_queue("email");
  const std::size_t ack_every = std::max<std::size_t>(1, prefetch / 2);
  const auto start = Clock::now();
  {
    auto connection = detail::Connection::open(connection_settings("bench-raw-consumer"));
    amqp_connection_state_t state = connection->state();
    connection->open_channel(kChannel);
    connection->basic_qos(kChannel, prefetch);
    amqp_basic_consume(state, kChannel, amqp_cstring_bytes(queue.c_str()), amqp_empty_bytes, 0,
                       /*no_ack=*/0, 0, amqp_empty_table);
    connection->check_last_reply("basic.consume " + queue, kChannel);
    std::size_t unacked = 0;
    for (std::size_t received = 0; received < messages;) {
      amqp_envelope_t envelope{};
      amqp_maybe_release_buffers(state);
      const amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, nullptr, 0);
      connection->check(reply, "consume " + queue, kChannel);
      ++received;
      ++unacked;
      const bool idle = amqp_data_in_buffer(state) == 0 && amqp_frames_enqueued(state) == 0;
      if (!batch_acks || idle || unacked >= ack_every || received == messages) {
        detail::check_status(
            amqp_basic_ack(state, kChannel, envelope.delivery_tag, batch_acks ? 1 : 0),
            "basic.ack");
        unacked = 0;
      }
      amqp_destroy_envelope(&envelope);
    }
    // As the Consumer does on stop: a quorum queue may drop the last acks of a channel
    // that goes away at once (they come back as ready messages), so let them land first.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    connection->close_channel(kChannel);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(messages) / seconds;
}

// The Consumer only republishes on retry or dead-letter, which this bench never asks for.
class UnusedPublisher final : public amqp::MessagePublisher {
 public:
  void async_publish(amqp::OutgoingMessage, amqp::PublishCallback callback) override {
    callback(make_error_code(amqp::AmqpErrc::not_connected), "bench: no publisher");
  }
};

// (b) The library: Consumer with a handler that acks at once.
double consume_library(const amqp::TopologySettings& topology, std::size_t messages,
                       std::uint16_t prefetch) {
  UnusedPublisher publisher;
  std::mutex mutex;
  std::condition_variable all_handled;
  std::size_t handled = 0;
  amqp::ConsumerSettings settings;
  settings.connection = connection_settings("bench-library-consumer");
  settings.topology = topology;
  settings.channel = "email";
  settings.prefetch = prefetch;
  const auto start = Clock::now();
  {
    amqp::Consumer consumer(
        settings, publisher,
        [&](amqp::Delivery, amqp::Completion done) {
          done(amqp::Outcome::ack());
          std::lock_guard lock(mutex);
          if (++handled == messages) all_handled.notify_one();
        },
        std::make_shared<prometheus::Registry>());
    consumer.start();
    std::unique_lock lock(mutex);
    if (!all_handled.wait_for(lock, std::chrono::minutes(10), [&] { return handled >= messages; })) {
      throw std::runtime_error("library consumer did not finish in 10 minutes");
    }
    lock.unlock();
    consumer.stop();  // waits for the last acks, then closes
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return static_cast<double>(messages) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::size_t messages = argc > 1 ? std::stoul(argv[1]) : 100000;
    const auto prefetch = static_cast<std::uint16_t>(argc > 2 ? std::stoul(argv[2]) : 64);
    const int rounds = argc > 3 ? std::stoi(argv[3]) : 2;
    // Connection and topology lines from the library would interleave with the figures.
    notifs::messaging::common::logger("amqp")->set_level(spdlog::level::warn);

    const amqp::TopologySettings topology = bench_topology();
    const std::string queue = topology.names.main_queue("email");
    {
      auto connection = detail::Connection::open(connection_settings("bench-setup"));
      connection->open_channel(kChannel);
      detail::declare_topology(*connection, kChannel, topology);
    }
    std::printf("amqp consume bench: %zu persistent messages of %zu bytes per round, quorum "
                "queue, prefetch %u, %u cores\n",
                messages, kBodySize, static_cast<unsigned>(prefetch),
                std::thread::hardware_concurrency());
    double best_raw = 0;
    double best_batched = 0;
    double best_library = 0;
    // Every consume starts from a freshly filled queue and must leave it empty.
    const auto check_empty = [&](const char* who) {
      for (int i = 0; i < 50; ++i) {
        if (ready_messages(queue) == 0) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      throw std::runtime_error(std::string(who) + " left " +
                               std::to_string(ready_messages(queue)) + " messages in the queue");
    };
    for (int round = 1; round <= rounds; ++round) {
      fill(topology, messages);
      const double raw = consume_raw(topology, messages, prefetch, false);
      check_empty("raw consumer");
      fill(topology, messages);
      const double batched = consume_raw(topology, messages, prefetch, true);
      check_empty("raw consumer with multiple acks");
      fill(topology, messages);
      const double library = consume_library(topology, messages, prefetch);
      check_empty("Consumer");
      std::printf("round %d: raw (ack each) %8.0f msg/s   raw (multiple acks) %8.0f msg/s   "
                  "Consumer %8.0f msg/s   ratio %.2f / %.2f\n",
                  round, raw, batched, library, library / raw, library / batched);
      std::fflush(stdout);
      best_raw = std::max(best_raw, raw);
      best_batched = std::max(best_batched, batched);
      best_library = std::max(best_library, library);
    }
    std::printf("best: raw (ack each) %.0f msg/s, raw (multiple acks) %.0f msg/s, Consumer %.0f "
                "msg/s; Consumer/raw %.2f, Consumer/raw-multiple %.2f\n",
                best_raw, best_batched, best_library, best_library / best_raw,
                best_library / best_batched);

    auto connection = detail::Connection::open(connection_settings("bench-teardown"));
    connection->open_channel(kChannel);
    const auto& names = topology.names;
    for (const auto& name : {names.main_queue("email"), names.retry_queue("email", 1),
                             names.failed_queue(), names.status_queue()}) {
      amqp_queue_delete(connection->state(), kChannel, amqp_cstring_bytes(name.c_str()), 0, 0);
      connection->check_last_reply("queue.delete " + name, kChannel);
    }
    for (const auto& name : {names.direct_exchange(), names.retry_exchange(),
                             names.dead_letter_exchange(), names.status_exchange()}) {
      amqp_exchange_delete(connection->state(), kChannel, amqp_cstring_bytes(name.c_str()), 0);
      connection->check_last_reply("exchange.delete " + name, kChannel);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amqp_consume_bench: %s\n", e.what());
    return 1;
  }
}
