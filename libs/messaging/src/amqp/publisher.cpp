#include "notifs/messaging/amqp/publisher.hpp"

#include <algorithm>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "amqp/publish_queue.hpp"
#include "amqp/publisher_connection.hpp"
#include "amqp/publisher_metrics.hpp"
#include "amqp/topology_declarer.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/common/random.hpp"

namespace notifs::messaging::amqp {

namespace {

// The destructor lets accepted messages finish for at most this long (or the confirm
// timeout, when shorter) before failing the rest with shutting_down.
constexpr std::chrono::milliseconds kMaxDrain{5000};

PublisherSettings validated(PublisherSettings settings) {
  validate_url(settings.connection.url);
  if (settings.connections == 0) {
    throw std::invalid_argument("publisher: connections must be at least 1");
  }
  if (settings.max_in_flight == 0) {
    throw std::invalid_argument("publisher: max_in_flight must be at least 1");
  }
  if (settings.queue_capacity == 0) {
    throw std::invalid_argument("publisher: queue_capacity must be at least 1");
  }
  if (settings.confirm_timeout.count() <= 0) {
    throw std::invalid_argument("publisher: confirm_timeout must be positive");
  }
  if (settings.connect_wait.count() < 0) {
    throw std::invalid_argument("publisher: connect_wait must not be negative");
  }
  if (settings.topology) detail::validate_topology(*settings.topology);
  return settings;
}

// AMQP short strings (names, routing keys, most properties) hold at most 255 bytes.
constexpr std::size_t kMaxShortString = 255;
// Properties must fit one frame with the rest of the content header (frame_max is
// 128 KiB); this leaves generous room for the fixed fields.
constexpr std::size_t kMaxHeadersSize = 96 * 1024;

// Why rabbitmq-c could not encode `message`, or nullopt. Checked before queueing, because
// an encoding failure halfway through basic.publish (method frame written, content header
// not) leaves the channel unusable and would fail every other message in flight on it.
std::optional<std::string> unencodable(const OutgoingMessage& message) {
  const auto too_long = [](const std::string& text) { return text.size() > kMaxShortString; };
  if (too_long(message.exchange)) return "exchange name longer than 255 bytes";
  if (too_long(message.routing_key)) return "routing key longer than 255 bytes";
  if (too_long(message.content_type)) return "content_type longer than 255 bytes";
  if (too_long(message.message_id)) return "message_id longer than 255 bytes";
  if (too_long(message.correlation_id)) return "correlation_id longer than 255 bytes";
  std::size_t headers_size = 0;
  for (const auto& [name, value] : message.headers) {
    if (too_long(name)) return "header name longer than 255 bytes: " + name.substr(0, 64) + "...";
    headers_size += name.size() + 16;
    if (const auto* text = std::get_if<std::string>(&value)) headers_size += text->size();
  }
  if (headers_size > kMaxHeadersSize) {
    return "headers of " + std::to_string(headers_size) + " bytes do not fit one AMQP frame";
  }
  return std::nullopt;
}

}  // namespace

std::future<void> MessagePublisher::publish(OutgoingMessage message) {
  auto promise = std::make_shared<std::promise<void>>();
  std::future<void> future = promise->get_future();
  async_publish(std::move(message), [promise](std::error_code error, const std::string& detail) {
    if (!error) {
      promise->set_value();
    } else {
      promise->set_exception(std::make_exception_ptr(std::system_error(error, detail)));
    }
  });
  return future;
}

struct AmqpPublisher::Impl {
  Impl(PublisherSettings publisher_settings, std::shared_ptr<prometheus::Registry> registry_ptr)
      : settings(validated(std::move(publisher_settings))),
        registry(std::move(registry_ptr)),
        metrics(registry.get()),
        queue(settings.queue_capacity, settings.connect_wait, metrics) {}

  void start() {
    dispatcher = std::thread([this] { queue.run_dispatcher(); });
    try {
      for (std::size_t i = 0; i < settings.connections; ++i) {
        connections.push_back(
            std::make_unique<detail::PublisherConnection>(i, settings, queue, metrics, random));
        connections.back()->start();
      }
    } catch (...) {
      stop(std::chrono::milliseconds{0});
      throw;
    }
  }

  void stop(std::chrono::milliseconds drain) {
    queue.stop_accepting();
    if (drain.count() > 0 && !queue.wait_idle(drain)) {
      common::logger("amqp")->warn(
          "publisher stopping with unconfirmed messages after {} ms; they fail with "
          "shutting_down",
          drain.count());
    }
    for (auto& connection : connections) connection->request_stop();
    for (auto& connection : connections) connection->join();
    connections.clear();
    queue.shutdown();
    if (dispatcher.joinable()) dispatcher.join();
  }

  const PublisherSettings settings;
  const std::shared_ptr<prometheus::Registry> registry;  // keeps the series alive
  detail::PublisherMetrics metrics;
  common::DefaultRandom random;
  detail::PublishQueue queue;
  std::vector<std::unique_ptr<detail::PublisherConnection>> connections;
  std::thread dispatcher;
};

AmqpPublisher::AmqpPublisher(PublisherSettings settings,
                             std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(registry))) {
  impl_->start();
}

AmqpPublisher::~AmqpPublisher() {
  impl_->stop(std::min(kMaxDrain, impl_->settings.confirm_timeout));
}

void AmqpPublisher::async_publish(OutgoingMessage message, PublishCallback callback) {
  if (auto problem = unencodable(message)) {
    impl_->queue.refuse(std::move(callback), std::make_error_code(std::errc::invalid_argument),
                        "the message cannot be published: " + *problem);
    return;
  }
  impl_->queue.submit(std::move(message), std::move(callback));
}

std::size_t AmqpPublisher::connected() const { return impl_->queue.connected(); }

bool AmqpPublisher::flush(std::chrono::milliseconds timeout) {
  return impl_->queue.wait_idle(timeout);
}

}  // namespace notifs::messaging::amqp
