#include "notifs/messaging/amqp/consumer.hpp"

#include <amqp.h>
#include <poll.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <exception>
#include <future>
#include <limits>
#include <map>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "amqp/connection.hpp"
#include "amqp/consumer_inbox.hpp"
#include "amqp/consumer_metrics.hpp"
#include "amqp/message_codec.hpp"
#include "amqp/topology_declarer.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/resilience/backoff.hpp"

namespace notifs::messaging::amqp {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The consumer's one channel on its own connection.
constexpr amqp_channel_t kChannel = 1;
// Frames read before the mailbox and acks get a turn: a busy socket must not starve the
// completions that free prefetch slots.
constexpr int kMaxFramesPerTurn = 256;
// Longest poll() sleep. rabbitmq-c sends and checks heartbeats only when it is asked for a
// frame, so the loop asks at least this often even when nothing happens.
constexpr std::chrono::milliseconds kMaxIdleWait{500};
// How long a graceful stop lets the broker apply the last acks before closing (see
// settle_before_close).
constexpr std::chrono::milliseconds kSettleLinger{200};
// Repeated reconnect failures are logged at most this often (the first one always).
constexpr std::chrono::seconds kReconnectLogInterval{10};

// Headers the broker writes when it dead-letters or redelivers (x-death is an array of
// tables the codec only keeps as text). A republished copy starts without them: sending
// the text back would give the broker and tools a malformed x-death to trip over.
bool is_broker_owned_header(std::string_view name) {
  return name == "x-death" || name == "x-delivery-count" ||
         name.rfind("x-first-death-", 0) == 0 || name.rfind("x-last-death-", 0) == 0;
}

OutgoingMessage copy_for_republish(const Delivery& delivery, std::string exchange,
                                   std::string routing_key) {
  OutgoingMessage message;
  message.exchange = std::move(exchange);
  message.routing_key = std::move(routing_key);
  message.body = delivery.body;
  message.content_type = delivery.content_type;
  message.message_id = delivery.message_id;
  message.correlation_id = delivery.correlation_id;
  message.priority = delivery.priority;
  message.timestamp = delivery.timestamp;
  for (const auto& [name, value] : delivery.headers) {
    if (!is_broker_owned_header(name)) message.headers.set(name, value);
  }
  message.persistent = true;
  message.mandatory = true;
  return message;
}

std::string queue_of(const ConsumerSettings& settings) {
  return settings.queue.empty() ? settings.topology.names.main_queue(settings.channel)
                                : settings.queue;
}

// failed.queue is bound to the dead-letter exchange with the topology's channel names. A
// consumer of another queue (status.queue) dead-letters under the first channel's key so
// the message still lands in failed.queue; x-original-queue says where it came from.
std::string dead_letter_key_of(const ConsumerSettings& settings) {
  const auto& channels = settings.topology.channels;
  if (channels.empty() ||
      std::find(channels.begin(), channels.end(), settings.channel) != channels.end()) {
    return settings.channel;
  }
  return channels.front();
}

std::string describe(std::exception_ptr error) {
  try {
    std::rethrow_exception(std::move(error));
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown exception";
  }
}

}  // namespace

struct Consumer::Impl {
  // Where one unacked delivery of the current connection stands.
  enum class Stage {
    handling,     // the handler has it; waiting for its Completion
    republishing, // copied to a retry tier or the dead-letter exchange; waiting for the confirm
    acking,       // ack queued for the next flush
    requeueing,   // will be rejected with requeue when its timer fires
  };
  enum class Republish { retry, dead_letter };

  struct InFlight {
    Delivery delivery;  // kept for a republish after the handler decided
    Stage stage = Stage::handling;
    Republish republish = Republish::retry;
  };

  // A delivery whose frames are still arriving: basic.deliver, a content header, then
  // body frames until body_size bytes came. The header's properties live in rabbitmq-c's
  // channel pool, which is therefore not recycled while a delivery is partial.
  struct PartialDelivery {
    bool active = false;
    bool have_header = false;
    std::uint64_t delivery_tag = 0;
    std::string exchange;
    std::string routing_key;
    bool redelivered = false;
    const amqp_basic_properties_t* properties = nullptr;
    std::uint64_t body_size = 0;
    std::string body;
  };

  Impl(ConsumerSettings settings_in, MessagePublisher& publisher_in, DeliveryHandler handler_in,
       std::shared_ptr<prometheus::Registry> registry_in)
      : settings_(std::move(settings_in)),
        publisher_(publisher_in),
        handler_(std::move(handler_in)),
        registry_(std::move(registry_in)),
        queue_(queue_of(settings_)),
        dead_letter_key_(dead_letter_key_of(settings_)),
        metrics_(registry_.get(), queue_),
        inbox_(std::make_shared<detail::ConsumerInbox>()),
        backoff_(settings_.connection.reconnect, random_),
        log_(common::logger("amqp")) {
    if (!handler_) throw std::invalid_argument("Consumer needs a handler");
    if (settings_.prefetch == 0) {
      // 0 means "unlimited" to the broker: every message of the queue would be in flight.
      throw std::invalid_argument("Consumer prefetch must be at least 1");
    }
    validate_url(settings_.connection.url);
    detail::validate_topology(settings_.topology);
  }

  // ---- control thread --------------------------------------------------------------

  void start() {
    if (started_) throw std::logic_error("Consumer::start called twice");
    started_ = true;
    std::future<void> first = first_attempt_.get_future();
    thread_ = std::thread([this] { run(); });
    try {
      first.get();
    } catch (...) {
      thread_.join();
      throw;
    }
  }

  void stop() {
    if (!thread_.joinable()) return;
    stop_requested_.store(true);
    inbox_->wake();
    thread_.join();
  }

  // ---- consumer thread -------------------------------------------------------------

  void run() {
    inbox_->set_owner(std::this_thread::get_id());
    std::uint32_t failures = 0;
    SteadyClock::time_point last_warning{};
    std::uint32_t unlogged_failures = 0;
    while (!stop_requested_.load()) {
      std::exception_ptr failure;
      bool transient = true;
      try {
        connect(failures > 0);
        failures = 0;
        report_first_attempt(nullptr);
        serve();
        settle_before_close();
        close_connection();
        break;  // serve() returns only when stopping
      } catch (const TopologyMismatch&) {
        failure = std::current_exception();
        transient = false;
      } catch (const AmqpError& e) {
        failure = std::current_exception();
        transient = e.is_transient();
      } catch (const std::invalid_argument&) {
        failure = std::current_exception();
        transient = false;
      } catch (const std::exception&) {
        failure = std::current_exception();
      }
      const bool was_connected = connected_.exchange(false);
      close_connection();
      if (!first_reported_ && !transient) {
        // A mismatched topology or a refused queue will not fix itself: start() says so.
        log_->error("consumer cannot start queue={} err={}", queue_, describe(failure));
        report_first_attempt(failure);
        return;
      }
      report_first_attempt(nullptr);  // start() returns; reconnecting goes on behind it
      if (stop_requested_.load()) break;
      ++failures;
      const auto delay = backoff_.next_delay(failures);
      const auto now = SteadyClock::now();
      if (was_connected || failures == 1 || now - last_warning >= kReconnectLogInterval) {
        log_->warn("consumer connection {} queue={} failures={} unlogged={} retry_in_ms={} "
                   "err={}",
                   was_connected ? "lost" : "failed", queue_, failures, unlogged_failures,
                   delay.count(), describe(failure));
        last_warning = now;
        unlogged_failures = 0;
      } else {
        ++unlogged_failures;
      }
      if (!sleep_unless_stopped(delay)) break;
    }
    report_first_attempt(nullptr);
  }

  void report_first_attempt(std::exception_ptr error) {
    if (first_reported_) return;
    first_reported_ = true;
    if (error) {
      first_attempt_.set_exception(std::move(error));
    } else {
      first_attempt_.set_value();
    }
  }

  // Waits out a reconnect delay; false when stop() was called meanwhile. Completions of
  // the dead connection arrive here too and are dropped: their deliveries are requeued.
  bool sleep_unless_stopped(std::chrono::milliseconds delay) {
    const auto deadline = SteadyClock::now() + delay;
    while (!stop_requested_.load()) {
      const auto now = SteadyClock::now();
      if (now >= deadline) return true;
      pollfd fd{inbox_->fd(), POLLIN, 0};
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
      ::poll(&fd, 1, static_cast<int>(wait));
      inbox_->take();
    }
    return false;
  }

  void connect(bool reconnecting) {
    // Each attempt takes the next address of a cluster's list; after a lost connection
    // that is another node than the one that went away.
    connection_ = detail::Connection::open(settings_.connection, next_address_++);
    ++generation_;
    connection_->open_channel(kChannel);
    // On every connect: a broker that restarted without its definitions (or someone
    // deleting a queue) gets the topology back before we consume from it.
    detail::declare_topology(*connection_, kChannel, settings_.topology);
    connection_->basic_qos(kChannel, settings_.prefetch);
    const amqp_basic_consume_ok_t* ok = amqp_basic_consume(
        connection_->state(), kChannel, amqp_cstring_bytes(queue_.c_str()), amqp_empty_bytes,
        /*no_local=*/0, /*no_ack=*/0, /*exclusive=*/0, amqp_empty_table);
    connection_->check_last_reply("basic.consume " + queue_, kChannel);
    consumer_tag_ = detail::to_string(ok->consumer_tag);
    cancelled_ = false;
    last_ack_at_ = SteadyClock::time_point{};
    connected_.store(true);
    if (reconnecting) metrics_.reconnected();
    log_->info("consumer {} queue={} prefetch={} generation={} url={}",
               reconnecting ? "reconnected" : "connected", queue_, settings_.prefetch,
               generation_, connection_->address());
  }

  // RabbitMQ hands a channel's acks to a quorum queue asynchronously (and holds some back
  // while the queue is busy); a channel that goes away right after its last acks can have
  // those dropped, and the messages come back as ready. Nothing is lost that way, but every
  // such message is handled twice. bench/amqp_consume_bench saw up to half a prefetch
  // window come back after a bare connection.close, and still one now and then after a
  // channel.close; a short pause first, then channel.close, left none in its runs.
  void settle_before_close() {
    if (!connection_ || connection_->broken()) return;
    // Only the last acks are at risk: a consumer idle for a while closes at once.
    const auto settled_at = last_ack_at_ + kSettleLinger;
    const auto now = SteadyClock::now();
    if (last_ack_at_ != SteadyClock::time_point{} && now < settled_at) {
      std::this_thread::sleep_for(settled_at - now);
    }
    connection_->close_channel(kChannel);
  }

  // Ends the current connection and forgets its deliveries: their tags mean nothing on
  // the next connection, and the broker requeues whatever was not acked.
  void close_connection() {
    connected_.store(false);
    if (!in_flight_.empty()) {
      log_->warn("consumer closing with unacked deliveries queue={} count={} (requeued by the "
                 "broker)",
                 queue_, in_flight_.size());
    }
    in_flight_.clear();
    acks_.clear();
    requeues_.clear();
    partial_ = PartialDelivery{};
    connection_.reset();
  }

  // The frame loop of one connection. Returns after a graceful stop; throws when the
  // connection fails.
  void serve() {
    bool more_frames = false;
    for (;;) {
      if (stop_requested_.load() && !cancelled_) begin_stop();
      if (cancelled_) {
        if (in_flight_.empty()) {
          log_->info("consumer stopped queue={}", queue_);
          return;
        }
        if (SteadyClock::now() >= stop_deadline_) {
          log_->warn("consumer stop timed out queue={} unacked={}", queue_, in_flight_.size());
          return;
        }
      }
      const bool quiet = wait_for_work(more_frames);
      more_frames = read_frames(quiet);
      drain_inbox();
      fire_due_requeues();
      flush_acks();
      if (!partial_.active) {
        amqp_maybe_release_buffers_on_channel(connection_->state(), kChannel);
        amqp_maybe_release_buffers_on_channel(connection_->state(), 0);
      }
    }
  }

  // Sleeps in poll() until the socket or the mailbox has something, a requeue timer or
  // the stop deadline is due, or kMaxIdleWait passed. True when nothing woke it (quiet).
  bool wait_for_work(bool more_frames) {
    if (more_frames || connection_->has_buffered_frames()) return false;
    const auto now = SteadyClock::now();
    auto wait = kMaxIdleWait;
    if (!requeues_.empty()) {
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                std::max(requeues_.begin()->first - now, SteadyClock::duration{})));
    }
    if (cancelled_) {
      wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(
                                std::max(stop_deadline_ - now, SteadyClock::duration{})));
    }
    std::array<pollfd, 2> fds{pollfd{connection_->socket_fd(), POLLIN, 0},
                              pollfd{inbox_->fd(), POLLIN, 0}};
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) {
      connection_->mark_broken();
      throw std::system_error(errno, std::system_category(), "consumer poll " + queue_);
    }
    // Socket errors and hang-ups are not handled here: the read that follows reports them
    // with rabbitmq-c's own status.
    return ready == 0;
  }

  // Reads what has arrived, without blocking. True when it stopped at the per-turn limit
  // (so more may be waiting in buffers poll() cannot see, such as TLS records).
  //
  // rabbitmq-c sends our heartbeats and checks the broker's only inside these reads, so a
  // broker that vanished without closing the socket shows up here as HEARTBEAT_TIMEOUT
  // (within about two heartbeat intervals, since quiet polls end every kMaxIdleWait).
  // After a quiet poll the first read gets a 1 ms timeout rather than zero: some
  // rabbitmq-c releases turn a zero timeout into an "immediate" deadline that is never
  // compared with the heartbeat deadline. Busy reads stay at zero and never block.
  bool read_frames(bool quiet) {
    for (int i = 0; i < kMaxFramesPerTurn; ++i) {
      amqp_frame_t frame{};
      timeval timeout{0, quiet && i == 0 ? 1000 : 0};
      const int status = amqp_simple_wait_frame_noblock(connection_->state(), &frame, &timeout);
      if (status == AMQP_STATUS_TIMEOUT) return false;
      if (status != AMQP_STATUS_OK) fail_status(status, "consume " + queue_);
      handle_frame(frame);
    }
    return true;
  }

  [[noreturn]] void fail_status(int status, const std::string& context) {
    connection_->mark_broken();
    detail::check_status(status, context);
    throw AmqpError(AmqpError::Scope::library, status, context, "unexpected status");
  }

  [[noreturn]] void protocol_error(const std::string& what) {
    connection_->mark_broken();
    throw AmqpError(AmqpError::Scope::connection, AMQP_STATUS_BAD_AMQP_DATA, "consume " + queue_,
                    what);
  }

  void handle_frame(const amqp_frame_t& frame) {
    switch (frame.frame_type) {
      case AMQP_FRAME_METHOD:
        handle_method(frame.channel, frame.payload.method);
        return;
      case AMQP_FRAME_HEADER:
        if (frame.channel != kChannel) return;
        if (!partial_.active || partial_.have_header) {
          protocol_error("content header without a basic.deliver before it");
        }
        partial_.have_header = true;
        partial_.properties =
            static_cast<const amqp_basic_properties_t*>(frame.payload.properties.decoded);
        partial_.body_size = frame.payload.properties.body_size;
        if (partial_.properties == nullptr) protocol_error("content header without properties");
        // Reserve no more than a sane amount up front: body_size comes off the wire.
        partial_.body.reserve(static_cast<std::size_t>(
            std::min<std::uint64_t>(partial_.body_size, std::uint64_t{1} << 20)));
        if (partial_.body_size == 0) finish_delivery();
        return;
      case AMQP_FRAME_BODY: {
        if (frame.channel != kChannel) return;
        if (!partial_.active || !partial_.have_header) {
          protocol_error("content body without a content header before it");
        }
        const amqp_bytes_t& fragment = frame.payload.body_fragment;
        if (fragment.len > 0) {
          partial_.body.append(static_cast<const char*>(fragment.bytes), fragment.len);
        }
        if (partial_.body.size() > partial_.body_size) {
          protocol_error("content body longer than its header announced");
        }
        if (partial_.body.size() == partial_.body_size) finish_delivery();
        return;
      }
      default:
        return;  // heartbeats are consumed by rabbitmq-c; nothing else is ours
    }
  }

  void handle_method(amqp_channel_t channel, const amqp_method_t& method) {
    switch (method.id) {
      case AMQP_BASIC_DELIVER_METHOD: {
        if (channel != kChannel) return;
        if (partial_.active) protocol_error("basic.deliver in the middle of another delivery");
        const auto* deliver = static_cast<const amqp_basic_deliver_t*>(method.decoded);
        partial_ = PartialDelivery{};
        partial_.active = true;
        partial_.delivery_tag = deliver->delivery_tag;
        partial_.exchange = detail::to_string(deliver->exchange);
        partial_.routing_key = detail::to_string(deliver->routing_key);
        partial_.redelivered = deliver->redelivered != 0;
        return;
      }
      case AMQP_CHANNEL_CLOSE_METHOD: {
        if (channel != kChannel) return;
        const auto* close = static_cast<const amqp_channel_close_t*>(method.decoded);
        amqp_channel_close_ok_t close_ok{};
        amqp_send_method(connection_->state(), kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
        // The whole connection is rebuilt: one code path for every kind of loss.
        throw AmqpError(AmqpError::Scope::channel, close->reply_code, "consume " + queue_,
                        detail::to_string(close->reply_text));
      }
      case AMQP_CONNECTION_CLOSE_METHOD: {
        const auto* close = static_cast<const amqp_connection_close_t*>(method.decoded);
        amqp_connection_close_ok_t close_ok{};
        amqp_send_method(connection_->state(), 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
        connection_->mark_broken();
        throw AmqpError(AmqpError::Scope::connection, close->reply_code, "consume " + queue_,
                        detail::to_string(close->reply_text));
      }
      case AMQP_BASIC_CANCEL_METHOD:
        if (channel != kChannel) return;
        // The broker ends a subscription by itself when the queue is deleted (or a
        // quorum queue's leader moves away): reconnecting declares the queue again.
        throw AmqpError(AmqpError::Scope::connection, 0, "consume " + queue_,
                        "the broker cancelled the subscription (queue deleted?)");
      case AMQP_CONNECTION_BLOCKED_METHOD:
        log_->warn("broker blocked the consumer connection queue={} (resource alarm)", queue_);
        return;
      case AMQP_CONNECTION_UNBLOCKED_METHOD:
        log_->info("broker unblocked the consumer connection queue={}", queue_);
        return;
      default:
        return;
    }
  }

  void finish_delivery() {
    PartialDelivery partial = std::move(partial_);
    partial_ = PartialDelivery{};
    const std::uint64_t tag = partial.delivery_tag;
    metrics_.consumed();

    Delivery delivery;
    std::string undecodable;
    try {
      // The body goes in afterwards, so it survives a decoding failure.
      delivery = detail::decode_delivery(*partial.properties, std::string(),
                                         partial.exchange, partial.routing_key,
                                         partial.redelivered);
    } catch (const std::exception& e) {
      undecodable = e.what();
      delivery = Delivery{};
      delivery.exchange = std::move(partial.exchange);
      delivery.routing_key = std::move(partial.routing_key);
      delivery.redelivered = partial.redelivered;
    }
    delivery.body = std::move(partial.body);

    if (cancelled_) {
      // Arrived between basic.cancel and its reply: not ours to start any more.
      reject(tag);
      return;
    }
    auto [it, inserted] = in_flight_.try_emplace(tag);
    if (!inserted) protocol_error("delivery tag " + std::to_string(tag) + " delivered twice");
    it->second.delivery = std::move(delivery);
    if (!undecodable.empty()) {
      log_->warn("undecodable delivery queue={} message_id={} err={}", queue_,
                 it->second.delivery.message_id, undecodable);
      dead_letter(it, "unparseable: " + undecodable);
      return;
    }

    Completion done = detail::make_completion(inbox_, generation_, tag);
    try {
      handler_(it->second.delivery, done);
    } catch (const std::exception& e) {
      done(Outcome::retry(e.what()));
    } catch (...) {
      done(Outcome::retry("handler threw a non-standard exception"));
    }
  }

  void drain_inbox() {
    // A publish callback may run inside async_publish and push again: loop until quiet.
    for (;;) {
      std::vector<detail::ConsumerEvent> events = inbox_->take();
      if (events.empty()) return;
      for (auto& event : events) on_event(event);
    }
  }

  void on_event(detail::ConsumerEvent& event) {
    // An event of an earlier connection: the broker has requeued that delivery, and this
    // tag (if it exists at all now) names a different message.
    if (event.generation != generation_ || !connection_) return;
    const auto it = in_flight_.find(event.delivery_tag);
    if (it == in_flight_.end()) return;
    if (event.kind == detail::ConsumerEvent::Kind::outcome) {
      if (it->second.stage != Stage::handling) return;
      metrics_.handler_time(event.handled_in);
      apply(it, std::move(event.outcome));
    } else {
      if (it->second.stage != Stage::republishing) return;
      on_republished(it, event.error, event.detail);
    }
  }

  using InFlightIt = std::map<std::uint64_t, InFlight>::iterator;

  void apply(InFlightIt it, Outcome outcome) {
    const Delivery& delivery = it->second.delivery;
    switch (outcome.action) {
      case Outcome::Action::ack:
        queue_ack(it);
        return;
      case Outcome::Action::dead_letter:
        dead_letter(it, std::move(outcome.reason));
        return;
      case Outcome::Action::retry:
        break;
      case Outcome::Action::requeue:
        log_->warn("delivery requeued queue={} message_id={} attempt={} delay_ms={} reason={}",
                   queue_, delivery.message_id, delivery.attempt(),
                   settings_.requeue_delay.count(), outcome.reason);
        schedule_requeue(it);
        return;
    }
    const std::uint32_t attempt = delivery.attempt();
    if (!settings_.retries_enabled) {
      log_->warn("delivery requeued (no retry tiers) queue={} message_id={} attempt={} "
                 "delay_ms={} reason={}",
                 queue_, delivery.message_id, attempt, settings_.requeue_delay.count(),
                 outcome.reason);
      schedule_requeue(it);
      return;
    }
    const TopologySettings& topology = settings_.topology;
    if (attempt > topology.retry_tiers) {
      dead_letter(it, "retries exhausted after " + std::to_string(attempt) +
                          " attempts: " + outcome.reason);
      return;
    }
    // Tier n holds a message for base * factor^(n-1): the wait grows with the attempts.
    OutgoingMessage copy =
        copy_for_republish(delivery, topology.names.retry_exchange(),
                           topology.names.retry_queue(settings_.channel, attempt));
    copy.headers.set(std::string(kAttemptHeader), std::int64_t{attempt} + 1);
    copy.headers.set(std::string(kLastErrorHeader), outcome.reason);
    log_->info("delivery retrying queue={} message_id={} attempt={} tier={} reason={}", queue_,
               delivery.message_id, attempt, attempt, outcome.reason);
    republish(it, Republish::retry, std::move(copy));
  }

  void dead_letter(InFlightIt it, std::string reason) {
    const Delivery& delivery = it->second.delivery;
    const TopologySettings& topology = settings_.topology;
    OutgoingMessage copy =
        copy_for_republish(delivery, topology.names.dead_letter_exchange(), dead_letter_key_);
    copy.headers.set(std::string(kFailureReasonHeader), reason);
    copy.headers.set(std::string(kAttemptHeader), std::int64_t{delivery.attempt()});
    copy.headers.set(std::string(kOriginalQueueHeader), queue_);
    log_->warn("delivery dead-lettering queue={} message_id={} attempt={} reason={}", queue_,
               delivery.message_id, delivery.attempt(), reason);
    republish(it, Republish::dead_letter, std::move(copy));
  }

  void republish(InFlightIt it, Republish kind, OutgoingMessage message) {
    it->second.stage = Stage::republishing;
    it->second.republish = kind;
    // The callback runs on a publisher thread and may outlive this consumer: it holds the
    // mailbox, never `this`.
    auto callback = [inbox = inbox_, generation = generation_, tag = it->first](
                        std::error_code error, const std::string& detail) {
      detail::ConsumerEvent event;
      event.kind = detail::ConsumerEvent::Kind::republished;
      event.generation = generation;
      event.delivery_tag = tag;
      event.error = error;
      event.detail = detail;
      inbox->push(std::move(event));
    };
    try {
      publisher_.async_publish(std::move(message), std::move(callback));
    } catch (const std::exception& e) {
      on_republished(it, make_error_code(AmqpErrc::not_connected), e.what());
    }
  }

  void on_republished(InFlightIt it, std::error_code error, const std::string& detail) {
    const Delivery& delivery = it->second.delivery;
    const bool retry = it->second.republish == Republish::retry;
    if (!error) {
      if (retry) {
        metrics_.retried();
      } else {
        metrics_.dead_lettered();
      }
      queue_ack(it);
      return;
    }
    // Not confirmed: the original stays the only safe copy, so it goes back to its queue
    // (after a pause, in case the failure is lasting).
    log_->warn("{} republish failed, requeueing queue={} message_id={} err={} detail={}",
               retry ? "retry" : "dead-letter", queue_, delivery.message_id, error.message(),
               detail);
    schedule_requeue(it);
  }

  void queue_ack(InFlightIt it) {
    it->second.stage = Stage::acking;
    acks_.push_back(it->first);
  }

  void schedule_requeue(InFlightIt it) {
    if (cancelled_) {
      reject(it->first);
      return;
    }
    it->second.stage = Stage::requeueing;
    requeues_.emplace(SteadyClock::now() + settings_.requeue_delay, it->first);
  }

  void fire_due_requeues() {
    const auto now = SteadyClock::now();
    while (!requeues_.empty() && requeues_.begin()->first <= now) {
      const std::uint64_t tag = requeues_.begin()->second;
      requeues_.erase(requeues_.begin());
      reject(tag);
    }
  }

  void reject(std::uint64_t tag) {
    const int status = amqp_basic_reject(connection_->state(), kChannel, tag, /*requeue=*/1);
    if (status != AMQP_STATUS_OK) fail_status(status, "basic.reject " + queue_);
    in_flight_.erase(tag);
    metrics_.rejected();
  }

  // Sends the queued acks. When they cover the oldest unacked deliveries without a gap,
  // one basic.ack with `multiple` settles all of them; the rest go one by one.
  void flush_acks() {
    if (acks_.empty()) return;
    std::sort(acks_.begin(), acks_.end());
    std::size_t prefix = 0;
    auto it = in_flight_.begin();
    while (prefix < acks_.size() && it != in_flight_.end() && it->first == acks_[prefix]) {
      ++prefix;
      ++it;
    }
    std::size_t sent = 0;
    if (prefix >= 2) {
      send_ack(acks_[prefix - 1], true);
      in_flight_.erase(in_flight_.begin(), it);
      sent = prefix;
    }
    for (std::size_t i = sent; i < acks_.size(); ++i) {
      send_ack(acks_[i], false);
      in_flight_.erase(acks_[i]);
    }
    metrics_.acked(acks_.size());
    acks_.clear();
    last_ack_at_ = SteadyClock::now();
  }

  void send_ack(std::uint64_t tag, bool multiple) {
    const int status = amqp_basic_ack(connection_->state(), kChannel, tag, multiple ? 1 : 0);
    if (status != AMQP_STATUS_OK) fail_status(status, "basic.ack " + queue_);
  }

  void begin_stop() {
    cancelled_ = true;
    stop_deadline_ = SteadyClock::now() + settings_.stop_timeout;
    log_->info("consumer stopping queue={} in_flight={}", queue_, in_flight_.size());
    amqp_bytes_t tag{consumer_tag_.size(), consumer_tag_.data()};
    amqp_basic_cancel(connection_->state(), kChannel, tag);
    connection_->check_last_reply("basic.cancel " + queue_, kChannel);
    // Deliveries waiting to be requeued would only hold the stop up: requeue them now.
    while (!requeues_.empty()) {
      const std::uint64_t delivery_tag = requeues_.begin()->second;
      requeues_.erase(requeues_.begin());
      reject(delivery_tag);
    }
  }

  // Immutable after construction.
  const ConsumerSettings settings_;
  MessagePublisher& publisher_;
  const DeliveryHandler handler_;
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::string queue_;
  const std::string dead_letter_key_;
  detail::ConsumerMetrics metrics_;
  const std::shared_ptr<detail::ConsumerInbox> inbox_;
  common::DefaultRandom random_;
  resilience::JitteredExponentialBackoff backoff_;
  const std::shared_ptr<spdlog::logger> log_;

  // Control thread.
  std::thread thread_;
  bool started_ = false;
  std::promise<void> first_attempt_;

  // Shared.
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> connected_{false};

  // Consumer thread only.
  bool first_reported_ = false;
  std::unique_ptr<detail::Connection> connection_;
  std::uint64_t generation_ = 0;
  std::size_t next_address_ = 0;  // connection attempts made: the next address of the list
  std::string consumer_tag_;
  bool cancelled_ = false;
  SteadyClock::time_point stop_deadline_{};
  SteadyClock::time_point last_ack_at_{};  // when acks last went out on this connection
  PartialDelivery partial_;
  std::map<std::uint64_t, InFlight> in_flight_;  // unacked deliveries, by tag
  std::vector<std::uint64_t> acks_;              // decided, not yet sent
  std::multimap<SteadyClock::time_point, std::uint64_t> requeues_;  // delayed rejects
};

Consumer::Consumer(ConsumerSettings settings, MessagePublisher& publisher,
                   DeliveryHandler handler, std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(settings), publisher, std::move(handler),
                                   std::move(registry))) {}

Consumer::~Consumer() { stop(); }

void Consumer::start() { impl_->start(); }

void Consumer::stop() { impl_->stop(); }

bool Consumer::connected() const { return impl_->connected_.load(); }

}  // namespace notifs::messaging::amqp
