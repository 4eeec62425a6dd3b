#pragma once

#include <amqp.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/common.h>

#include "amqp/connection.hpp"
#include "amqp/publish_queue.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/resilience/backoff.hpp"

namespace notifs::messaging::amqp::detail {

class PublisherMetrics;

// The header a publisher adds to every message: its publish sequence number on the
// channel (the delivery tag its confirm will carry). basic.return carries no delivery tag,
// so this is how a returned message is matched to its entry in the confirm window, exactly
// even when several in-flight messages share exchange, routing key and message id.
inline constexpr std::string_view kPublishSeqHeader = "x-publish-seq";

// One connection of the AmqpPublisher pool: a thread that owns a rabbitmq-c connection
// with one channel in confirm mode. It pulls messages from the shared PublishQueue while
// its confirm window (max_in_flight) has room, writes them, and matches basic.ack /
// basic.nack (with `multiple`) and basic.return to the messages by delivery tag. It sleeps
// in poll() on the socket and its WakeFd (signalled by submit), with a timeout bounded by
// the next confirm deadline and the heartbeat tick.
//
// On a broken connection or a close from the broker it fails every unconfirmed message
// with connection_lost (never a success without an ack), destroys the connection and
// builds a new one with jittered exponential backoff, declaring the topology again when
// configured. A channel closed by the broker (e.g. 404 for a missing exchange) fails the
// unconfirmed messages the same way and reopens the channel on the same connection.
class PublisherConnection {
 public:
  PublisherConnection(std::size_t index, const PublisherSettings& settings, PublishQueue& queue,
                      PublisherMetrics& metrics, common::Random& random);
  ~PublisherConnection();  // request_stop() + join()
  PublisherConnection(const PublisherConnection&) = delete;
  PublisherConnection& operator=(const PublisherConnection&) = delete;

  void start();
  // Unconfirmed messages fail with shutting_down; the thread closes its connection.
  void request_stop();
  void join();

 private:
  static constexpr amqp_channel_t kChannel = 1;

  // One message written to the channel and not yet settled, at index tag - first_tag_.
  struct InFlight {
    PublishCallback callback;
    std::chrono::steady_clock::time_point sent;
    bool settled = false;
    bool returned = false;      // basic.return seen: its ack means unroutable
    std::string return_detail;  // the broker's reason, for the callback
  };
  enum class Verdict { ack, nack };

  void run();
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  // Sleeps up to `delay`, returning false early when asked to stop.
  bool sleep_unless_stopped(std::chrono::milliseconds delay);
  void connect();
  void lose_connection(const std::string& reason);
  void serve();
  bool send_some();
  void read_frames();
  void handle_frame(const amqp_frame_t& frame);
  void on_return(const amqp_frame_t& frame);
  void on_channel_close(const amqp_frame_t& frame);
  [[noreturn]] void on_connection_close(const amqp_frame_t& frame);
  void settle(std::uint64_t tag, bool multiple, Verdict verdict);
  void settle_one(InFlight& entry, std::uint64_t tag, Verdict verdict,
                  std::chrono::steady_clock::time_point now);
  void pop_settled();
  void expire_confirms(std::chrono::steady_clock::time_point now);
  void fail_in_flight(AmqpErrc reason, const std::string& detail);
  int poll_timeout_ms(std::chrono::steady_clock::time_point now) const;
  // Logs a connection failure: the first of a streak at warn, then at most one line per
  // interval with the number of similar ones suppressed.
  void log_failure(const std::string& what,
                   spdlog::level::level_enum level = spdlog::level::warn);

  const std::size_t index_;
  const PublisherSettings& settings_;
  std::size_t next_address_;  // connection attempts made, counting from index_
  std::string address_;       // masked URL of the current or last attempted address
  PublishQueue& queue_;
  PublisherMetrics& metrics_;
  resilience::JitteredExponentialBackoff backoff_;
  const std::chrono::milliseconds tick_;
  WakeFd wake_;
  std::atomic<bool> stop_{false};
  std::thread thread_;

  std::unique_ptr<Connection> connection_;
  std::deque<InFlight> in_flight_;
  std::uint64_t first_tag_ = 1;  // delivery tag of in_flight_.front()
  std::uint64_t next_tag_ = 1;   // delivery tag of the next message written
  std::size_t unsettled_ = 0;
  std::vector<PendingPublish> batch_;
  bool blocked_ = false;  // connection.blocked: the broker is in an alarm, do not write
  std::size_t nack_streak_ = 0;  // nacks since the last ack
  std::chrono::steady_clock::time_point nack_streak_since_{};
  bool ever_connected_ = false;
  std::chrono::steady_clock::time_point last_read_;

  std::size_t suppressed_failures_ = 0;
  std::chrono::steady_clock::time_point last_failure_log_{};
  bool failing_ = false;
};

}  // namespace notifs::messaging::amqp::detail
