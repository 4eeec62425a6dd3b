#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "notifs/messaging/amqp/publisher.hpp"

namespace notifs::messaging::amqp::detail {

class PublisherMetrics;

// An eventfd a publisher thread poll()s next to its AMQP socket: writing to it ends the
// poll, so other threads wake that thread without it ever polling on a timer.
class WakeFd {
 public:
  WakeFd();  // throws std::system_error when no eventfd can be made
  ~WakeFd();
  WakeFd(const WakeFd&) = delete;
  WakeFd& operator=(const WakeFd&) = delete;

  void signal() noexcept;
  void drain() noexcept;  // owner thread, after poll() reported it readable
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// One accepted message on its way to the broker.
struct PendingPublish {
  OutgoingMessage message;
  PublishCallback callback;
  std::chrono::steady_clock::time_point accepted;
};

// Runs a publish callback, which must not throw: an exception is logged and swallowed so a
// careless caller cannot take a publisher thread down.
void invoke_callback(PublishCallback& callback, std::error_code error,
                     const std::string& detail) noexcept;

// The part of AmqpPublisher that every thread shares: the bounded queue of messages not
// yet written to a broker, the count of connections that are up, and the bookkeeping of
// unresolved publishes for flush(). Its own thread (run_dispatcher) runs the callbacks of
// publishes refused at the door (backpressure, shutting down) so that every callback runs
// on a publisher thread as the header promises, and fails queued messages with
// not_connected once no connection has been up for connect_wait.
//
// Distribution: connection threads pull from this one queue when they have room in their
// confirm window, so a busy or reconnecting connection takes nothing and the others carry
// the load (least-loaded by construction, no per-connection queue to strand messages in).
// Thread-safe.
class PublishQueue {
 public:
  PublishQueue(std::size_t capacity, std::chrono::milliseconds connect_wait,
               PublisherMetrics& metrics);
  PublishQueue(const PublishQueue&) = delete;
  PublishQueue& operator=(const PublishQueue&) = delete;

  // --- callers (any thread, never blocks beyond the queue mutex) ---
  void submit(OutgoingMessage message, PublishCallback callback);
  // Fails a publish without queueing it (a message that cannot be encoded); the callback
  // runs on the dispatcher thread like every refusal.
  void refuse(PublishCallback callback, std::error_code error, std::string detail);
  // From now on submit() refuses with shutting_down.
  void stop_accepting();
  // Waits until every accepted publish has been resolved, or the timeout passes.
  bool wait_idle(std::chrono::milliseconds timeout);
  std::size_t connected() const { return connected_.load(std::memory_order_relaxed); }

  // --- connection threads ---
  // Moves up to `max` (> 0) messages to the end of `out`. When there are none it remembers
  // `wake` and signals it on the next submit, so the thread may sleep in poll().
  void take(std::vector<PendingPublish>& out, std::size_t max, WakeFd& wake);
  // Returns out[from..] (taken but never handed to the broker) to the front of the queue,
  // in their order, for whichever connection is up next.
  void put_back(std::vector<PendingPublish>& out, std::size_t from);
  void connection_up();
  // `reason` is kept for the not_connected failures that may follow.
  void connection_down(WakeFd& wake, const std::string& reason);
  // A connection attempt failed; its reason is kept for the same purpose.
  void connect_failed(const std::string& reason);
  // The thread owning `wake` stops taking (it is exiting or disconnected).
  void forget_waiter(WakeFd& wake);
  // `count` accepted publishes have reached their callbacks.
  void resolved(std::size_t count);

  // --- the dispatcher thread ---
  // Returns after shutdown() once everything queued has been failed.
  void run_dispatcher();
  // Fails what is still queued with shutting_down (on the dispatcher thread) and lets
  // run_dispatcher return. Call after the connection threads have stopped.
  void shutdown();

 private:
  struct Refusal {
    PublishCallback callback;
    std::error_code error;
    std::string detail;  // empty: the standard text for `error`
  };

  void remove_waiter_locked(WakeFd& wake);
  std::chrono::steady_clock::time_point expiry_locked(const PendingPublish& pending) const;

  const std::size_t capacity_;
  const std::chrono::milliseconds connect_wait_;
  PublisherMetrics& metrics_;

  mutable std::mutex mutex_;
  std::condition_variable dispatcher_cv_;
  std::condition_variable idle_cv_;
  std::deque<PendingPublish> queue_;
  std::vector<Refusal> refusals_;
  std::vector<WakeFd*> waiters_;
  bool accepting_ = true;
  bool shutdown_ = false;
  std::size_t connected_count_ = 0;  // under mutex_; connected_ mirrors it for readers
  std::chrono::steady_clock::time_point down_since_;
  std::string last_error_ = "not connected yet";

  std::atomic<std::size_t> connected_{0};
  std::atomic<std::size_t> outstanding_{0};  // accepted and not yet resolved
};

}  // namespace notifs::messaging::amqp::detail
