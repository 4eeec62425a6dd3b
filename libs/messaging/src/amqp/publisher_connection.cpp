#include "amqp/publisher_connection.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "amqp/message_codec.hpp"
#include "amqp/publisher_metrics.hpp"
#include "amqp/topology_declarer.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace notifs::messaging::amqp::detail {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Messages taken from the shared queue per step: enough to amortize the queue lock and
// the poll() between steps, small enough that acks are read often while a burst is sent.
constexpr std::size_t kMaxBatch = 256;
// A streak of connection failures is logged at most this often.
constexpr auto kFailureLogInterval = std::chrono::seconds{30};
// Consecutive failures past this no longer grow the backoff (it is capped anyway).
constexpr std::uint32_t kMaxBackoffExponent = 64;
// A channel whose every confirm for this long (and this many messages) was a nack is
// rebuilt on a new connection. Seen in tests/cluster/run with RabbitMQ 3.10: a channel
// opened while a quorum queue was electing a new leader (its old leader's node killed) went
// on nacking every publish to it, for as long as the test ran, while a new channel on the
// same node was fine. A queue that is really full (x-overflow reject-publish) also nacks
// everything; for it the rebuild costs a reconnect every few seconds and changes nothing.
constexpr std::size_t kNackStreakMessages = 64;
constexpr auto kNackStreakWindow = std::chrono::seconds{3};

const std::string kNoDetail;

amqp_bytes_t bytes_of(const std::string& text) {
  amqp_bytes_t bytes{};
  bytes.len = text.size();
  // rabbitmq-c only reads what it is given to send; the cast only drops const.
  bytes.bytes = const_cast<char*>(text.data());
  return bytes;
}

std::chrono::milliseconds heartbeat_tick(const ConnectionSettings& settings) {
  // rabbitmq-c sends heartbeats and notices missing ones only inside its wait functions:
  // reading at least this often keeps both sides of the heartbeat contract.
  const std::chrono::milliseconds heartbeat = settings.heartbeat;
  if (heartbeat.count() <= 0) return std::chrono::milliseconds{1000};
  return std::clamp(heartbeat / 2, std::chrono::milliseconds{50}, std::chrono::milliseconds{1000});
}

std::string broker_reason(std::uint16_t code, amqp_bytes_t text) {
  return std::to_string(code) + " " + to_string(text);
}

}  // namespace

PublisherConnection::PublisherConnection(std::size_t index, const PublisherSettings& settings,
                                         PublishQueue& queue, PublisherMetrics& metrics,
                                         common::Random& random)
    : index_(index),
      settings_(settings),
      // The pool's connections start at different addresses of a cluster's list, so losing
      // one node costs only the connections that were on it.
      next_address_(index),
      queue_(queue),
      metrics_(metrics),
      backoff_(settings.connection.reconnect, random),
      tick_(heartbeat_tick(settings.connection)) {
  batch_.reserve(kMaxBatch);
}

PublisherConnection::~PublisherConnection() {
  request_stop();
  join();
}

void PublisherConnection::start() { thread_ = std::thread([this] { run(); }); }

void PublisherConnection::request_stop() {
  stop_.store(true, std::memory_order_release);
  wake_.signal();
}

void PublisherConnection::join() {
  if (thread_.joinable()) thread_.join();
}

void PublisherConnection::run() {
  std::uint32_t failures = 0;
  while (!stopping()) {
    if (failures > 0 && !sleep_unless_stopped(backoff_.next_delay(failures))) break;
    try {
      connect();
    } catch (const TopologyMismatch& e) {
      // Not transient: an operator has to act. Still retried, so the publisher recovers
      // by itself once the queue is fixed, and logged at error level.
      failures = std::min(failures + 1, kMaxBackoffExponent);
      queue_.connect_failed(e.what());
      log_failure(std::string("publisher refuses the broker's topology: ") + e.what(),
                  spdlog::level::err);
      continue;
    } catch (const std::exception& e) {
      failures = std::min(failures + 1, kMaxBackoffExponent);
      queue_.connect_failed(e.what());
      log_failure(std::string("publisher cannot connect: ") + e.what());
      continue;
    }
    try {
      serve();  // returns only when asked to stop
    } catch (const std::exception& e) {
      lose_connection(e.what());
      failures = 1;
    }
  }
  fail_in_flight(AmqpErrc::shutting_down,
                 "the publisher stopped before the broker confirmed the message");
  if (connection_) {
    queue_.connection_down(wake_, "the publisher stopped");
    connection_.reset();
  }
  queue_.forget_waiter(wake_);
}

bool PublisherConnection::sleep_unless_stopped(std::chrono::milliseconds delay) {
  const auto deadline = SteadyClock::now() + delay;
  while (!stopping()) {
    const auto remaining = deadline - SteadyClock::now();
    if (remaining <= SteadyClock::duration::zero()) return true;
    pollfd wake{wake_.fd(), POLLIN, 0};
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(remaining).count();
    if (::poll(&wake, 1, static_cast<int>(ms)) > 0) wake_.drain();
  }
  return false;
}

void PublisherConnection::connect() {
  // Each attempt takes the next address of a cluster's list; after a lost connection that
  // is another node than the one that went away.
  address_ = Connection::address_of(settings_.connection, next_address_);
  std::unique_ptr<Connection> connection =
      Connection::open(settings_.connection, next_address_++);
  connection->open_channel(kChannel);
  if (settings_.topology) declare_topology(*connection, kChannel, *settings_.topology);
  connection->confirm_select(kChannel);

  connection_ = std::move(connection);
  in_flight_.clear();
  first_tag_ = 1;
  next_tag_ = 1;
  unsettled_ = 0;
  nack_streak_ = 0;
  blocked_ = false;
  last_read_ = SteadyClock::now();
  queue_.connection_up();
  if (ever_connected_) metrics_.reconnected();

  auto log = common::logger("amqp");
  if (failing_) {
    log->info("publisher connection restored connection={} url={} suppressed_errors={}", index_,
              address_, suppressed_failures_);
  } else {
    log->info("publisher connected connection={} url={}", index_, address_);
  }
  ever_connected_ = true;
  failing_ = false;
  suppressed_failures_ = 0;
}

void PublisherConnection::lose_connection(const std::string& reason) {
  // Order matters: the callers learn about the loss before anything else can block
  // (the polite close below waits up to the rpc timeout on a half-dead peer).
  fail_in_flight(AmqpErrc::connection_lost,
                 "the connection was lost before the broker confirmed the message: " + reason);
  queue_.connection_down(wake_, reason);
  connection_.reset();
  log_failure("publisher connection lost: " + reason);
}

void PublisherConnection::log_failure(const std::string& what, spdlog::level::level_enum level) {
  const auto now = SteadyClock::now();
  auto log = common::logger("amqp");
  if (!failing_ || now - last_failure_log_ >= kFailureLogInterval) {
    log->log(level, "{} connection={} url={} suppressed_errors={}", what, index_, address_,
             suppressed_failures_);
    last_failure_log_ = now;
    suppressed_failures_ = 0;
  } else {
    ++suppressed_failures_;
    log->debug("{} connection={}", what, index_);
  }
  failing_ = true;
}

void PublisherConnection::serve() {
  const int socket = connection_->socket_fd();
  while (!stopping()) {
    bool busy = false;
    if (!blocked_ && unsettled_ < settings_.max_in_flight) busy = send_some();
    // Frames rabbitmq-c already read (for instance while it checked heartbeats inside
    // basic.publish) sit in its buffer, where poll() cannot see them.
    if (connection_->has_buffered_frames()) {
      read_frames();
      busy = true;
    }
    const auto now = SteadyClock::now();
    expire_confirms(now);
    if (nack_streak_ >= kNackStreakMessages && now - nack_streak_since_ >= kNackStreakWindow) {
      throw std::runtime_error("the broker nacked all of the last " +
                               std::to_string(nack_streak_) +
                               " messages: rebuilding the connection");
    }

    // With more to send, only peek (timeout 0) so acks are read between batches; idle,
    // sleep until the socket, a submit or stop wakes us, or the next deadline.
    std::array<pollfd, 2> fds{pollfd{socket, POLLIN, 0}, pollfd{wake_.fd(), POLLIN, 0}};
    const int ready = ::poll(fds.data(), fds.size(), busy ? 0 : poll_timeout_ms(now));
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw std::system_error(errno, std::generic_category(), "poll on the AMQP socket");
    }
    if (fds[1].revents != 0) wake_.drain();
    if (fds[0].revents != 0 || SteadyClock::now() - last_read_ >= tick_) read_frames();
  }
}

int PublisherConnection::poll_timeout_ms(SteadyClock::time_point now) const {
  auto wake_at = last_read_ + tick_;
  // The front of the window is its oldest unsettled message, so the next confirm deadline.
  if (!in_flight_.empty()) {
    wake_at = std::min(wake_at, in_flight_.front().sent + settings_.confirm_timeout);
  }
  if (wake_at <= now) return 0;
  // Rounded up: waking a hair early would only spin through a zero timeout.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count());
}

bool PublisherConnection::send_some() {
  const std::size_t room = settings_.max_in_flight - unsettled_;
  batch_.clear();
  queue_.take(batch_, std::min(room, kMaxBatch), wake_);
  if (batch_.empty()) return false;

  amqp_connection_state_t state = connection_->state();
  const auto sent_at = SteadyClock::now();
  const auto wall_now = std::chrono::system_clock::now();
  std::size_t written = 0;
  try {
    for (; written < batch_.size(); ++written) {
      PendingPublish& pending = batch_[written];
      OutgoingMessage& message = pending.message;
      message.headers.set(std::string(kPublishSeqHeader), static_cast<std::int64_t>(next_tag_));
      const EncodedProperties properties(message, wall_now);
      const int status = amqp_basic_publish(
          state, kChannel, bytes_of(message.exchange), bytes_of(message.routing_key),
          message.mandatory ? 1 : 0, /*immediate=*/0, properties.get(), bytes_of(message.body));
      // From here the message may have reached the broker (a failed write can be partial),
      // so it is never handed to another connection: it waits for its confirm, or fails.
      in_flight_.push_back(InFlight{std::move(pending.callback), sent_at, false, false, {}});
      ++next_tag_;
      ++unsettled_;
      if (status != AMQP_STATUS_OK) {
        ++written;
        connection_->mark_broken();
        throw AmqpError(AmqpError::Scope::library, status, "basic.publish",
                        amqp_error_string2(status));
      }
    }
  } catch (...) {
    metrics_.published(written);
    // Messages rabbitmq-c never saw are still safe to send on another connection.
    queue_.put_back(batch_, written);
    batch_.clear();
    throw;
  }
  metrics_.published(batch_.size());
  batch_.clear();
  return true;
}

void PublisherConnection::read_frames() {
  amqp_connection_state_t state = connection_->state();
  last_read_ = SteadyClock::now();
  for (;;) {
    amqp_frame_t frame{};
    timeval no_wait{0, 0};
    const int status = amqp_simple_wait_frame_noblock(state, &frame, &no_wait);
    if (status == AMQP_STATUS_TIMEOUT) break;
    if (status != AMQP_STATUS_OK) {
      connection_->mark_broken();
      throw AmqpError(AmqpError::Scope::library, status, "reading from the broker",
                      amqp_error_string2(status));
    }
    handle_frame(frame);
    // Stop when rabbitmq-c has nothing decoded or buffered: another call would cost a
    // recv() that finds nothing; poll() reports the socket when more arrives.
    if (!connection_->has_buffered_frames()) break;
  }
  // Decoded frames live in rabbitmq-c's per-channel pools until released; everything
  // needed from them has been copied by now.
  amqp_maybe_release_buffers(state);
}

void PublisherConnection::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return;  // content of nothing we track
  const amqp_method_t& method = frame.payload.method;
  switch (method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      const auto* ack = static_cast<const amqp_basic_ack_t*>(method.decoded);
      settle(ack->delivery_tag, ack->multiple != 0, Verdict::ack);
      return;
    }
    case AMQP_BASIC_NACK_METHOD: {
      const auto* nack = static_cast<const amqp_basic_nack_t*>(method.decoded);
      settle(nack->delivery_tag, nack->multiple != 0, Verdict::nack);
      return;
    }
    case AMQP_BASIC_RETURN_METHOD:
      on_return(frame);
      return;
    case AMQP_CHANNEL_CLOSE_METHOD:
      on_channel_close(frame);
      return;
    case AMQP_CONNECTION_CLOSE_METHOD:
      on_connection_close(frame);
    case AMQP_CONNECTION_BLOCKED_METHOD: {
      const auto* blocked = static_cast<const amqp_connection_blocked_t*>(method.decoded);
      blocked_ = true;
      common::logger("amqp")->warn(
          "broker blocked publishing (resource alarm); messages wait in the queue "
          "connection={} reason={}",
          index_, to_string(blocked->reason));
      return;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
      blocked_ = false;
      common::logger("amqp")->info("broker unblocked publishing connection={}", index_);
      return;
    default:
      common::logger("amqp")->debug("publisher ignored method={} channel={} connection={}",
                                    method.id, frame.channel, index_);
      return;
  }
}

void PublisherConnection::on_return(const amqp_frame_t& frame) {
  const auto* returned = static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
  // Copied now: reading the content below may reuse the pool the method lives in.
  const std::string detail = "the broker returned the message as unroutable: " +
                             broker_reason(returned->reply_code, returned->reply_text) +
                             " (exchange '" + to_string(returned->exchange) +
                             "', routing key '" + to_string(returned->routing_key) + "')";
  metrics_.returned();

  // The content header and body follow the method on the same channel.
  amqp_message_t message{};
  const amqp_rpc_reply_t reply =
      amqp_read_message(connection_->state(), frame.channel, &message, 0);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    connection_->check(reply, "basic.return content", kChannel);
  }
  std::optional<std::int64_t> seq;
  if ((message.properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
    const Delivery decoded = decode_delivery(message.properties, {}, {}, {}, false);
    seq = decoded.headers.get_int(kPublishSeqHeader);
  }
  amqp_destroy_message(&message);

  // RabbitMQ sends basic.return before the ack of the same message, so the entry is
  // still in the window unless its confirm timed out meanwhile.
  if (!seq || *seq < 0 || static_cast<std::uint64_t>(*seq) < first_tag_ ||
      static_cast<std::uint64_t>(*seq) >= next_tag_) {
    common::logger("amqp")->debug("basic.return for no message in the window connection={}",
                                  index_);
    return;
  }
  InFlight& entry = in_flight_[static_cast<std::uint64_t>(*seq) - first_tag_];
  if (entry.settled) return;
  entry.returned = true;
  entry.return_detail = detail;
}

void PublisherConnection::on_channel_close(const amqp_frame_t& frame) {
  const auto* close = static_cast<const amqp_channel_close_t*>(frame.payload.method.decoded);
  const std::string reason =
      "channel closed by the broker: " + broker_reason(close->reply_code, close->reply_text);
  // The broker discards whatever was published on the channel after the failing message,
  // and confirms still owed on it will never come: every unconfirmed message fails.
  fail_in_flight(AmqpErrc::connection_lost,
                 "the channel was closed before the broker confirmed the message: " + reason);
  common::logger("amqp")->warn("publisher channel closed by broker, reopening connection={} {}",
                               index_, reason);

  amqp_channel_close_ok_t close_ok{};
  const int status =
      amqp_send_method(connection_->state(), kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
  if (status != AMQP_STATUS_OK) {
    connection_->mark_broken();
    throw AmqpError(AmqpError::Scope::library, status, "channel.close-ok",
                    amqp_error_string2(status));
  }
  // The connection is fine: a fresh channel is much cheaper than a reconnect. Tags start
  // at 1 again on the new channel.
  connection_->open_channel(kChannel);
  connection_->confirm_select(kChannel);
  first_tag_ = 1;
  next_tag_ = 1;
}

void PublisherConnection::on_connection_close(const amqp_frame_t& frame) {
  const auto* close = static_cast<const amqp_connection_close_t*>(frame.payload.method.decoded);
  const int code = close->reply_code;
  std::string text = to_string(close->reply_text);
  amqp_connection_close_ok_t close_ok{};
  amqp_send_method(connection_->state(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
  connection_->mark_broken();
  throw AmqpError(AmqpError::Scope::connection, code, "connection closed by the broker",
                  std::move(text));
}

void PublisherConnection::settle(std::uint64_t tag, bool multiple, Verdict verdict) {
  if (in_flight_.empty()) return;
  std::uint64_t last = tag;
  // AMQP: multiple with tag 0 means every message so far.
  if (multiple && tag == 0) last = next_tag_ - 1;
  if (last >= next_tag_) {
    common::logger("amqp")->warn("confirm for a delivery tag never sent tag={} next={} "
                                 "connection={}",
                                 tag, next_tag_, index_);
    last = next_tag_ - 1;
  }
  if (last < first_tag_) return;  // settled already (its confirm timed out)
  const std::uint64_t first = multiple ? first_tag_ : last;
  const auto now = SteadyClock::now();
  std::size_t count = 0;
  for (std::uint64_t t = first; t <= last; ++t) {
    InFlight& entry = in_flight_[t - first_tag_];
    if (entry.settled) continue;
    settle_one(entry, t, verdict, now);
    ++count;
  }
  pop_settled();
  queue_.resolved(count);
}

void PublisherConnection::settle_one(InFlight& entry, std::uint64_t tag, Verdict verdict,
                                     SteadyClock::time_point now) {
  entry.settled = true;
  --unsettled_;
  PublishCallback callback = std::move(entry.callback);
  if (verdict == Verdict::nack) {
    if (nack_streak_++ == 0) nack_streak_since_ = now;
    metrics_.nacked(1);
    metrics_.failed(AmqpErrc::nacked);
    invoke_callback(callback, make_error_code(AmqpErrc::nacked),
                    "the broker nacked the message (delivery tag " + std::to_string(tag) +
                        "); it was not stored");
  } else if (entry.returned) {
    metrics_.failed(AmqpErrc::unroutable);
    invoke_callback(callback, make_error_code(AmqpErrc::unroutable), entry.return_detail);
  } else {
    nack_streak_ = 0;
    metrics_.confirmed(1);
    metrics_.confirm_latency(now - entry.sent);
    invoke_callback(callback, {}, kNoDetail);
  }
}

void PublisherConnection::pop_settled() {
  while (!in_flight_.empty() && in_flight_.front().settled) {
    in_flight_.pop_front();
    ++first_tag_;
  }
}

void PublisherConnection::expire_confirms(SteadyClock::time_point now) {
  std::size_t count = 0;
  // Entries are in the order they were written, so the oldest deadline is at the front.
  while (!in_flight_.empty() && in_flight_.front().sent + settings_.confirm_timeout <= now) {
    InFlight& entry = in_flight_.front();
    if (!entry.settled) {
      entry.settled = true;
      --unsettled_;
      PublishCallback callback = std::move(entry.callback);
      metrics_.failed(AmqpErrc::confirm_timeout);
      invoke_callback(callback, make_error_code(AmqpErrc::confirm_timeout),
                      "no confirm from the broker within " +
                          std::to_string(settings_.confirm_timeout.count()) +
                          " ms (delivery tag " + std::to_string(first_tag_) +
                          "); the message may or may not be stored");
      ++count;
    }
    in_flight_.pop_front();
    ++first_tag_;
    pop_settled();
  }
  queue_.resolved(count);
}

void PublisherConnection::fail_in_flight(AmqpErrc reason, const std::string& detail) {
  std::size_t count = 0;
  for (InFlight& entry : in_flight_) {
    if (entry.settled) continue;
    entry.settled = true;
    PublishCallback callback = std::move(entry.callback);
    // A returned message's fate is known: it matched no queue.
    const AmqpErrc why = entry.returned ? AmqpErrc::unroutable : reason;
    metrics_.failed(why);
    invoke_callback(callback, make_error_code(why), entry.returned ? entry.return_detail : detail);
    ++count;
  }
  in_flight_.clear();
  first_tag_ = next_tag_;
  unsettled_ = 0;
  queue_.resolved(count);
}

}  // namespace notifs::messaging::amqp::detail
