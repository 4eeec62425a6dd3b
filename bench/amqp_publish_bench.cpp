// Confirmed publish rate of AmqpPublisher against a raw rabbitmq-c loop, in one run against
// the same broker and a fresh queue of the same type per phase, with 512-byte persistent
// messages:
//   (a) raw, pipelined: one connection, confirm mode, up to --window messages unconfirmed,
//       acks (`multiple` included) read as they arrive;
//   (b) raw, synchronous: each publish waits for its confirm (the ~2,000/s reference);
//   (c) AmqpPublisher: --callers threads publishing concurrently, each keeping at most
//       --caller-window publishes unresolved (like concurrent requests awaiting a 202).
// Rounds alternate (a) and (c) so noise of the shared machine lands on both; it prints
// every figure and the ratio (c)/(a) of the best rounds. The bar is (c) >= 0.7 (a).
//
//   amqp_publish_bench [--url URL] [--messages N] [--callers N] [--connections N]
//                      [--window N] [--caller-window N] [--sync-messages N] [--rounds N]
//                      [--queue-type quorum|classic] [--max-in-flight N]
// The URL defaults to $NOTIFS_BENCH_RABBITMQ_URL (bench/amqp.sh starts a throwaway broker).

#include <amqp.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "amqp/connection.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
using Clock = std::chrono::steady_clock;

constexpr amqp_channel_t kChannel = 1;
constexpr std::size_t kBodySize = 512;

struct Options {
  std::string url;
  std::size_t messages = 50000;
  std::size_t callers = 8;
  std::size_t connections = 2;
  std::size_t window = 1000;
  std::size_t caller_window = 500;
  std::size_t sync_messages = 2000;
  std::size_t rounds = 2;
  std::size_t max_in_flight = 4096;
  amqp::QueueType queue_type = amqp::QueueType::quorum;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "amqp_publish_bench: " << problem
            << "\nusage: amqp_publish_bench [--url URL] [--messages N] [--callers N] "
               "[--connections N] [--window N] [--caller-window N] [--sync-messages N] "
               "[--rounds N] [--queue-type quorum|classic] [--max-in-flight N]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  if (const char* url = std::getenv("NOTIFS_BENCH_RABBITMQ_URL")) options.url = url;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    const auto number = [&] {
      try {
        const long long parsed = std::stoll(value);
        if (parsed <= 0) usage(flag + " must be positive");
        return static_cast<std::size_t>(parsed);
      } catch (const std::logic_error&) {
        usage(flag + " needs a number, got " + value);
      }
    };
    if (flag == "--url") options.url = value;
    else if (flag == "--messages") options.messages = number();
    else if (flag == "--callers") options.callers = number();
    else if (flag == "--connections") options.connections = number();
    else if (flag == "--window") options.window = number();
    else if (flag == "--caller-window") options.caller_window = number();
    else if (flag == "--sync-messages") options.sync_messages = number();
    else if (flag == "--rounds") options.rounds = number();
    else if (flag == "--max-in-flight") options.max_in_flight = number();
    else if (flag == "--queue-type") {
      const auto type = amqp::parse_queue_type(value);
      if (!type) usage("--queue-type is quorum or classic");
      options.queue_type = *type;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (options.url.empty()) usage("no broker: pass --url or set NOTIFS_BENCH_RABBITMQ_URL");
  return options;
}

amqp::ConnectionSettings connection_settings(const Options& options, const std::string& name) {
  amqp::ConnectionSettings settings;
  settings.url = options.url;
  settings.connection_name = name;
  return settings;
}

amqp_bytes_t bytes_of(const std::string& text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

std::string make_body() {
  std::string body = R"({"notification_id":"bench","padding":")";
  body.append(kBodySize - body.size() - 2, 'x');
  body += "\"}";
  return body;
}

// Queues are declared and deleted on a connection of their own, outside the timed part.
class QueueAdmin {
 public:
  explicit QueueAdmin(const Options& options)
      : options_(options),
        connection_(detail::Connection::open(connection_settings(options, "bench-admin"))) {
    connection_->open_channel(kChannel);
  }

  std::string fresh_queue(const std::string& phase) {
    const std::string name = "bench." + std::to_string(::getpid()) + "." + phase + "." +
                             std::to_string(counter_++);
    amqp_table_entry_t type{};
    type.key = amqp_cstring_bytes("x-queue-type");
    type.value.kind = AMQP_FIELD_KIND_UTF8;
    const std::string type_name(amqp::to_string(options_.queue_type));
    type.value.value.bytes = bytes_of(type_name);
    amqp_table_t arguments{1, &type};
    amqp_queue_declare(connection_->state(), kChannel, bytes_of(name), 0, /*durable=*/1, 0, 0,
                       arguments);
    connection_->check_last_reply("queue.declare " + name, kChannel);
    return name;
  }

  std::uint32_t message_count(const std::string& queue) {
    const auto* ok = amqp_queue_declare(connection_->state(), kChannel, bytes_of(queue),
                                        /*passive=*/1, 0, 0, 0, amqp_empty_table);
    connection_->check_last_reply("queue.declare passive " + queue, kChannel);
    return ok->message_count;
  }

  void remove(const std::string& queue) {
    amqp_queue_delete(connection_->state(), kChannel, bytes_of(queue), 0, 0);
    connection_->check_last_reply("queue.delete " + queue, kChannel);
  }

 private:
  const Options& options_;
  std::unique_ptr<detail::Connection> connection_;
  int counter_ = 0;
};

// Reads frames of a raw confirm-mode channel and counts confirmed delivery tags, with
// `multiple` acks and out-of-order single acks both handled.
class ConfirmTracker {
 public:
  explicit ConfirmTracker(std::size_t messages) : confirmed_(messages + 1, 0) {}

  // Waits up to 30 s for one frame, then takes whatever else is already buffered.
  void read(detail::Connection& connection) {
    amqp_connection_state_t state = connection.state();
    timeval wait{30, 0};
    handle(connection, next_frame(connection, &wait));
    while (connection.has_buffered_frames()) {
      timeval none{0, 0};
      amqp_frame_t frame{};
      const int status = amqp_simple_wait_frame_noblock(state, &frame, &none);
      if (status == AMQP_STATUS_TIMEOUT) break;
      detail::check_status(status, "read confirms");
      handle(connection, frame);
    }
    amqp_maybe_release_buffers(state);
  }

  std::size_t count() const { return count_; }

 private:
  static amqp_frame_t next_frame(detail::Connection& connection, timeval* wait) {
    amqp_frame_t frame{};
    const int status = amqp_simple_wait_frame_noblock(connection.state(), &frame, wait);
    if (status == AMQP_STATUS_TIMEOUT) throw std::runtime_error("no confirm within 30 s");
    detail::check_status(status, "read confirms");
    return frame;
  }

  void handle(detail::Connection& connection, const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD) return;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
        const std::uint64_t tag = std::min<std::uint64_t>(ack->delivery_tag, confirmed_.size() - 1);
        if (ack->multiple != 0) {
          for (std::uint64_t t = low_ + 1; t <= tag; ++t) mark(t);
          low_ = std::max(low_, tag);
        } else {
          mark(tag);
        }
        return;
      }
      case AMQP_BASIC_NACK_METHOD: throw std::runtime_error("the broker nacked a message");
      case AMQP_BASIC_RETURN_METHOD: throw std::runtime_error("the broker returned a message");
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_rpc_reply_t reply{};
        reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
        reply.reply = frame.payload.method;
        connection.check(reply, "raw publish", kChannel);
        return;
      }
      default: return;
    }
  }

  void mark(std::uint64_t tag) {
    if (tag == 0 || confirmed_[tag] != 0) return;
    confirmed_[tag] = 1;
    ++count_;
  }

  std::vector<char> confirmed_;
  std::uint64_t low_ = 0;
  std::size_t count_ = 0;
};

amqp_basic_properties_t raw_properties(const std::string& message_id) {
  amqp_basic_properties_t properties{};
  properties._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                      AMQP_BASIC_MESSAGE_ID_FLAG;
  properties.content_type = amqp_cstring_bytes("application/json");
  properties.delivery_mode = AMQP_DELIVERY_PERSISTENT;
  properties.message_id = bytes_of(message_id);
  return properties;
}

// (a) and (b): messages/s from the first publish to the last confirm. window 1 is (b).
double raw_rate(const Options& options, const std::string& queue, std::size_t messages,
                std::size_t window) {
  auto connection = detail::Connection::open(connection_settings(options, "bench-raw"));
  connection->open_channel(kChannel);
  connection->confirm_select(kChannel);
  const std::string body = make_body();
  const std::string message_id = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";
  const amqp_basic_properties_t properties = raw_properties(message_id);
  ConfirmTracker tracker(messages);

  const auto started = Clock::now();
  std::size_t sent = 0;
  while (tracker.count() < messages) {
    while (sent < messages && sent - tracker.count() < window) {
      detail::check_status(amqp_basic_publish(connection->state(), kChannel, amqp_empty_bytes,
                                              bytes_of(queue), 1, 0, &properties,
                                              bytes_of(body)),
                           "basic.publish");
      ++sent;
    }
    tracker.read(*connection);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return static_cast<double>(messages) / seconds;
}

// (c): messages/s from the first publish to the last confirm, over all callers.
double library_rate(const Options& options, const std::string& queue, std::size_t& failures) {
  amqp::PublisherSettings settings;
  settings.connection = connection_settings(options, "bench-library");
  settings.connections = options.connections;
  settings.max_in_flight = options.max_in_flight;
  amqp::AmqpPublisher publisher(settings);
  // The pool connects on its own threads; connecting is not part of the figure.
  for (int i = 0; i < 1000 && publisher.connected() < options.connections; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  if (publisher.connected() < options.connections) {
    throw std::runtime_error("the publisher's connections did not come up within 10 s");
  }

  const std::string body = make_body();
  std::atomic<std::size_t> failed{0};
  const std::size_t per_caller = options.messages / options.callers;
  std::vector<std::thread> callers;
  const auto started = Clock::now();
  for (std::size_t c = 0; c < options.callers; ++c) {
    callers.emplace_back([&, c] {
      std::counting_semaphore<> window(static_cast<std::ptrdiff_t>(options.caller_window));
      for (std::size_t i = 0; i < per_caller; ++i) {
        window.acquire();
        amqp::OutgoingMessage message;
        message.routing_key = queue;
        message.body = body;
        message.message_id = "6f1c9a8e-2b7d-4c1a-9e3f-" + std::to_string(c * per_caller + i);
        publisher.async_publish(std::move(message),
                                [&window, &failed](std::error_code error, const std::string&) {
                                  if (error) ++failed;
                                  window.release();
                                });
      }
      // Every callback of this caller has run before its window goes away.
      for (std::size_t k = 0; k < options.caller_window; ++k) window.acquire();
    });
  }
  for (auto& caller : callers) caller.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  failures = failed.load();
  return static_cast<double>(per_caller * options.callers) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  notifs::messaging::common::configure_logging({spdlog::level::warn});
  try {
    QueueAdmin admin(options);
    std::printf("broker %s, %s queues, %zu-byte persistent messages, %zu messages per phase, "
                "cores %u\n",
                amqp::mask_url(options.url).c_str(),
                std::string(amqp::to_string(options.queue_type)).c_str(), kBodySize,
                options.messages, std::thread::hardware_concurrency());
    std::printf("(a) raw pipelined: window %zu | (c) AmqpPublisher: %zu callers x window %zu, "
                "%zu connections, max_in_flight %zu\n",
                options.window, options.callers, options.caller_window, options.connections,
                options.max_in_flight);

    {
      const std::string queue = admin.fresh_queue("sync");
      const double sync = raw_rate(options, queue, options.sync_messages, 1);
      admin.remove(queue);
      std::printf("(b) raw, waiting for each confirm: %10.0f msg/s (%zu messages)\n", sync,
                  options.sync_messages);
    }

    double best_raw = 0;
    double best_library = 0;
    for (std::size_t round = 1; round <= options.rounds; ++round) {
      std::string queue = admin.fresh_queue("raw");
      const double raw = raw_rate(options, queue, options.messages, options.window);
      const std::uint32_t raw_stored = admin.message_count(queue);
      admin.remove(queue);

      queue = admin.fresh_queue("library");
      std::size_t failures = 0;
      const double library = library_rate(options, queue, failures);
      const std::uint32_t library_stored = admin.message_count(queue);
      admin.remove(queue);

      std::printf("round %zu: (a) raw pipelined %10.0f msg/s   (c) AmqpPublisher %10.0f msg/s   "
                  "ratio %.2f   [stored %u / %u, failures %zu]\n",
                  round, raw, library, library / raw, raw_stored, library_stored, failures);
      best_raw = std::max(best_raw, raw);
      best_library = std::max(best_library, library);
    }
    std::printf("best: (a) %.0f msg/s, (c) %.0f msg/s, ratio (c)/(a) %.2f (bar: 0.70)\n",
                best_raw, best_library, best_library / best_raw);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amqp_publish_bench: %s\n", e.what());
    return 1;
  }
}
