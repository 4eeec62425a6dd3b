#include "amqp/consumer_inbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::messaging::amqp::detail {

ConsumerInbox::ConsumerInbox() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (fd_ < 0) throw std::system_error(errno, std::system_category(), "consumer eventfd");
}

ConsumerInbox::~ConsumerInbox() { ::close(fd_); }

void ConsumerInbox::push(ConsumerEvent event) {
  bool was_empty = false;
  {
    std::lock_guard lock(mutex_);
    was_empty = events_.empty();
    events_.push_back(std::move(event));
  }
  // Only the first event after a take() needs a wake-up: until the consumer thread takes
  // them, later ones ride on the same signal.
  if (was_empty && std::this_thread::get_id() != owner_.load()) signal();
}

std::vector<ConsumerEvent> ConsumerInbox::take() {
  // Clear the eventfd before taking the events: a push that lands after the swap then
  // signals again, so no event is left behind without a wake-up.
  std::uint64_t counter = 0;
  while (::read(fd_, &counter, sizeof counter) < 0 && errno == EINTR) {
  }
  std::vector<ConsumerEvent> events;
  std::lock_guard lock(mutex_);
  events.swap(events_);
  return events;
}

void ConsumerInbox::wake() { signal(); }

void ConsumerInbox::signal() {
  const std::uint64_t one = 1;
  // EAGAIN means the counter is saturated, i.e. a wake-up is pending anyway.
  while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

namespace {

// The state every copy of one delivery's Completion shares.
class CompletionState {
 public:
  CompletionState(std::shared_ptr<ConsumerInbox> inbox, std::uint64_t generation,
                  std::uint64_t delivery_tag)
      : inbox_(std::move(inbox)),
        generation_(generation),
        delivery_tag_(delivery_tag),
        started_(std::chrono::steady_clock::now()) {}

  ~CompletionState() {
    if (done_.load(std::memory_order_relaxed)) return;
    // Destructors must not throw; losing this event only means the delivery waits for the
    // broker's redelivery after the connection ends, which is still at-least-once.
    try {
      complete(Outcome::retry("handler dropped the delivery"));
    } catch (const std::exception& e) {
      common::logger("amqp")->error("dropped delivery could not be reported tag={} err={}",
                                    delivery_tag_, e.what());
    }
  }

  CompletionState(const CompletionState&) = delete;
  CompletionState& operator=(const CompletionState&) = delete;

  void complete(Outcome outcome) {
    if (done_.exchange(true)) return;  // the first call wins
    ConsumerEvent event;
    event.kind = ConsumerEvent::Kind::outcome;
    event.generation = generation_;
    event.delivery_tag = delivery_tag_;
    event.outcome = std::move(outcome);
    event.handled_in = std::chrono::steady_clock::now() - started_;
    inbox_->push(std::move(event));
  }

 private:
  std::shared_ptr<ConsumerInbox> inbox_;
  std::uint64_t generation_;
  std::uint64_t delivery_tag_;
  std::chrono::steady_clock::time_point started_;
  std::atomic<bool> done_{false};
};

}  // namespace

Completion make_completion(std::shared_ptr<ConsumerInbox> inbox, std::uint64_t generation,
                           std::uint64_t delivery_tag) {
  auto state = std::make_shared<CompletionState>(std::move(inbox), generation, delivery_tag);
  return [state = std::move(state)](Outcome outcome) { state->complete(std::move(outcome)); };
}

}  // namespace notifs::messaging::amqp::detail
