#include "status_reporter.hpp"

#include <string>
#include <system_error>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker {

namespace amqp = messaging::amqp;

StatusReporter::StatusReporter(amqp::MessagePublisher& publisher, amqp::TopologyNames names)
    : publisher_(publisher), names_(std::move(names)) {}

void StatusReporter::report(contract::StatusEvent event, Done done) {
  amqp::OutgoingMessage message;
  // Encoded first: an event the gateway would refuse (not a UUID) throws here, on the
  // caller's thread, instead of turning up in the gateway's dead-letter queue.
  message.body = contract::encode_status_event(event);
  message.exchange = names_.status_exchange();
  message.routing_key = std::string(amqp::TopologyNames::kStatusRoutingKey);
  message.content_type = "application/json";
  message.message_id = event.notification_id + ":" +
                       std::string(contract::to_string(event.status)) + ":" +
                       std::to_string(event.attempt);
  message.timestamp = event.at;
  message.persistent = true;
  // An unroutable event (status.queue gone) must show as a failure, not vanish.
  message.mandatory = true;

  publisher_.async_publish(std::move(message), [id = std::move(event.notification_id),
                                                status = event.status, attempt = event.attempt,
                                                done = std::move(done)](std::error_code error,
                                                                        const std::string& detail) {
    if (error) {
      messaging::common::logger("notification_worker")
          ->warn("status event not confirmed notification_id={} status={} attempt={} err={}{}{}",
                 id, contract::to_string(status), attempt, error.message(),
                 detail.empty() ? "" : ": ", detail);
    }
    if (done) {
      done(!error);
    }
  });
}

}  // namespace notifs::worker
