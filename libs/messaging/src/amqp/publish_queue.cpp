#include "amqp/publish_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <utility>

#include "amqp/publisher_metrics.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace notifs::messaging::amqp::detail {

namespace {

using Clock = std::chrono::steady_clock;

const char* refusal_detail(AmqpErrc reason) {
  switch (reason) {
    case AmqpErrc::backpressure:
      return "the publisher's queue is full (queue_capacity reached); nothing was sent";
    case AmqpErrc::shutting_down: return "the publisher is shutting down; nothing was sent";
    default: return "the publish was refused; nothing was sent";
  }
}

}  // namespace

WakeFd::WakeFd() : fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "eventfd for an AMQP publisher");
  }
}

WakeFd::~WakeFd() { ::close(fd_); }

void WakeFd::signal() noexcept {
  const std::uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: the fd is readable then anyway.
  [[maybe_unused]] const auto written = ::write(fd_, &one, sizeof one);
}

void WakeFd::drain() noexcept {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto read = ::read(fd_, &value, sizeof value);
}

void invoke_callback(PublishCallback& callback, std::error_code error,
                     const std::string& detail) noexcept {
  if (!callback) return;
  try {
    callback(error, detail);
  } catch (const std::exception& e) {
    common::logger("amqp")->error("publish callback threw; callbacks must not throw err={}",
                                  e.what());
  } catch (...) {
    common::logger("amqp")->error("publish callback threw a non-exception; callbacks must not "
                                  "throw");
  }
}

PublishQueue::PublishQueue(std::size_t capacity, std::chrono::milliseconds connect_wait,
                           PublisherMetrics& metrics)
    : capacity_(capacity), connect_wait_(connect_wait), metrics_(metrics),
      down_since_(Clock::now()) {}

void PublishQueue::submit(OutgoingMessage message, PublishCallback callback) {
  const auto now = Clock::now();
  WakeFd* wake = nullptr;
  {
    std::unique_lock lock(mutex_);
    if (!accepting_ || queue_.size() >= capacity_) {
      // The callback must run on a publisher thread (never inside the caller's call, which
      // may hold locks the callback wants): the dispatcher runs it.
      refusals_.push_back({std::move(callback),
                           make_error_code(accepting_ ? AmqpErrc::backpressure
                                                      : AmqpErrc::shutting_down),
                           {}});
      lock.unlock();
      dispatcher_cv_.notify_one();
      return;
    }
    const bool start_expiry_timer = connected_count_ == 0 && queue_.empty();
    queue_.push_back({std::move(message), std::move(callback), now});
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    if (!waiters_.empty()) {
      wake = waiters_.back();
      waiters_.pop_back();
    }
    lock.unlock();
    if (start_expiry_timer) dispatcher_cv_.notify_one();
  }
  if (wake != nullptr) wake->signal();
}

void PublishQueue::refuse(PublishCallback callback, std::error_code error, std::string detail) {
  {
    std::lock_guard lock(mutex_);
    refusals_.push_back({std::move(callback), error, std::move(detail)});
  }
  dispatcher_cv_.notify_one();
}

void PublishQueue::stop_accepting() {
  std::lock_guard lock(mutex_);
  accepting_ = false;
}

bool PublishQueue::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return idle_cv_.wait_for(lock, timeout, [this] {
    return outstanding_.load(std::memory_order_acquire) == 0;
  });
}

void PublishQueue::take(std::vector<PendingPublish>& out, std::size_t max, WakeFd& wake) {
  std::lock_guard lock(mutex_);
  if (queue_.empty()) {
    if (std::find(waiters_.begin(), waiters_.end(), &wake) == waiters_.end()) {
      waiters_.push_back(&wake);
    }
    return;
  }
  const std::size_t count = std::min(max, queue_.size());
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  // Busy now: the next submit should wake a thread that is asleep, not this one.
  remove_waiter_locked(wake);
}

void PublishQueue::put_back(std::vector<PendingPublish>& out, std::size_t from) {
  if (from >= out.size()) return;
  WakeFd* wake = nullptr;
  {
    std::lock_guard lock(mutex_);
    for (std::size_t i = out.size(); i > from; --i) {
      queue_.push_front(std::move(out[i - 1]));
    }
    if (!waiters_.empty()) {
      wake = waiters_.back();
      waiters_.pop_back();
    }
  }
  out.resize(from);
  dispatcher_cv_.notify_one();
  if (wake != nullptr) wake->signal();
}

void PublishQueue::connection_up() {
  std::lock_guard lock(mutex_);
  ++connected_count_;
  connected_.store(connected_count_, std::memory_order_relaxed);
}

void PublishQueue::connection_down(WakeFd& wake, const std::string& reason) {
  {
    std::lock_guard lock(mutex_);
    remove_waiter_locked(wake);
    if (connected_count_ > 0) --connected_count_;
    connected_.store(connected_count_, std::memory_order_relaxed);
    last_error_ = reason;
    // Queued messages get connect_wait from the moment the last connection went away, not
    // from when they were accepted: a message that waited behind a busy window still gets
    // the whole grace period to bridge the outage.
    if (connected_count_ == 0) down_since_ = Clock::now();
  }
  dispatcher_cv_.notify_one();
}

void PublishQueue::connect_failed(const std::string& reason) {
  std::lock_guard lock(mutex_);
  last_error_ = reason;
}

void PublishQueue::forget_waiter(WakeFd& wake) {
  std::lock_guard lock(mutex_);
  remove_waiter_locked(wake);
}

void PublishQueue::resolved(std::size_t count) {
  if (count == 0) return;
  if (outstanding_.fetch_sub(count, std::memory_order_acq_rel) == count) {
    // Taking the mutex orders this notify after a waiter's predicate check, so a flush()
    // cannot miss the moment the count reached zero.
    std::lock_guard lock(mutex_);
    idle_cv_.notify_all();
  }
}

Clock::time_point PublishQueue::expiry_locked(const PendingPublish& pending) const {
  return std::max(pending.accepted, down_since_) + connect_wait_;
}

void PublishQueue::run_dispatcher() {
  std::unique_lock lock(mutex_);
  std::vector<PendingPublish> failing;
  for (;;) {
    if (!refusals_.empty()) {
      std::vector<Refusal> refused;
      refused.swap(refusals_);
      lock.unlock();
      for (auto& refusal : refused) {
        if (refusal.error.category() == amqp_category()) {
          const auto reason = static_cast<AmqpErrc>(refusal.error.value());
          metrics_.failed(reason);
          if (refusal.detail.empty()) refusal.detail = refusal_detail(reason);
        } else {
          metrics_.invalid();
        }
        invoke_callback(refusal.callback, refusal.error, refusal.detail);
      }
      lock.lock();
      continue;
    }

    AmqpErrc reason = AmqpErrc::not_connected;
    std::string detail;
    if (shutdown_) {
      if (queue_.empty()) return;
      reason = AmqpErrc::shutting_down;
      detail = "the publisher stopped before the message was sent";
      while (!queue_.empty()) {
        failing.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    } else if (connected_count_ == 0 && !queue_.empty()) {
      const auto now = Clock::now();
      while (!queue_.empty() && expiry_locked(queue_.front()) <= now) {
        failing.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (failing.empty()) {
        dispatcher_cv_.wait_until(lock, expiry_locked(queue_.front()));
        continue;
      }
      detail = "no connection to the broker within connect_wait (" +
               std::to_string(connect_wait_.count()) + " ms); last error: " + last_error_;
    } else {
      dispatcher_cv_.wait(lock);
      continue;
    }

    lock.unlock();
    metrics_.failed(reason, failing.size());
    for (auto& pending : failing) {
      invoke_callback(pending.callback, make_error_code(reason), detail);
    }
    resolved(failing.size());
    failing.clear();
    lock.lock();
  }
}

void PublishQueue::shutdown() {
  {
    std::lock_guard lock(mutex_);
    accepting_ = false;
    shutdown_ = true;
  }
  dispatcher_cv_.notify_one();
}

void PublishQueue::remove_waiter_locked(WakeFd& wake) {
  const auto it = std::find(waiters_.begin(), waiters_.end(), &wake);
  if (it != waiters_.end()) waiters_.erase(it);
}

}  // namespace notifs::messaging::amqp::detail
