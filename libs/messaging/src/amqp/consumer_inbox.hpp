#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "notifs/messaging/amqp/consumer.hpp"

namespace notifs::messaging::amqp::detail {

// Something another thread tells the consumer thread about one delivery: the handler's
// outcome, or how the republish (retry tier / dead-letter) of that delivery ended.
// `generation` names the connection the delivery came from: a delivery tag means nothing
// on any other connection, so events of an older generation are dropped.
struct ConsumerEvent {
  enum class Kind { outcome, republished };

  Kind kind = Kind::outcome;
  std::uint64_t generation = 0;
  std::uint64_t delivery_tag = 0;
  Outcome outcome;                              // kind == outcome
  std::chrono::steady_clock::duration handled_in{};  // kind == outcome: handler time
  std::error_code error;                        // kind == republished: no error = confirmed
  std::string detail;                           // kind == republished: context of a failure
};

// The consumer thread's mailbox. Any thread pushes; the consumer thread takes everything
// at once. An eventfd is signalled on the empty -> non-empty transition so the consumer
// thread can poll() it together with the AMQP socket instead of polling on a timer.
// Shared (shared_ptr) with every Completion and publish callback, so a completion that
// runs after the consumer is gone pushes into a mailbox nobody reads, harmlessly.
class ConsumerInbox {
 public:
  ConsumerInbox();  // throws std::system_error when no eventfd can be made
  ~ConsumerInbox();
  ConsumerInbox(const ConsumerInbox&) = delete;
  ConsumerInbox& operator=(const ConsumerInbox&) = delete;

  void push(ConsumerEvent event);
  // Consumer thread only: clears the eventfd and returns what was queued, oldest first.
  std::vector<ConsumerEvent> take();
  // Makes the next poll() return (stop requests).
  void wake();
  int fd() const { return fd_; }

  // The consumer thread drains the mailbox after every step, so a push from that thread
  // (a handler that completes before returning) needs no wake-up system call.
  void set_owner(std::thread::id owner) { owner_.store(owner); }

 private:
  void signal();

  int fd_ = -1;
  std::atomic<std::thread::id> owner_{};
  std::mutex mutex_;
  std::vector<ConsumerEvent> events_;
};

// Builds the Completion handed to a handler for one delivery: copyable, callable from any
// thread, the first call wins, and when the last copy is destroyed without a call it
// reports retry("handler dropped the delivery").
Completion make_completion(std::shared_ptr<ConsumerInbox> inbox, std::uint64_t generation,
                           std::uint64_t delivery_tag);

}  // namespace notifs::messaging::amqp::detail
