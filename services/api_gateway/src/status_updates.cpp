#include "status_updates.hpp"

#include <exception>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::api_gateway {

namespace amqp = messaging::amqp;
using Result = GatewayMetrics::StatusEventResult;
using contract::decode_status_event;
using contract::StatusEventError;

amqp::DeliveryHandler make_status_handler(Ledger& ledger, GatewayMetrics& metrics) {
  return [&ledger, &metrics](amqp::Delivery delivery, amqp::Completion done) {
    StatusEvent event;
    try {
      event = decode_status_event(delivery.body);
    } catch (const StatusEventError& error) {
      metrics.status_event(Result::invalid);
      done(amqp::Outcome::dead_letter(std::string("not a status event: ") + error.what()));
      return;
    }
    ledger.apply_status(std::move(event), [&metrics, done = std::move(done)](
                                              LedgerResult<bool> result) {
      if (!result.ok()) {
        metrics.status_event(Result::failed);
        done(amqp::Outcome::retry("ledger unavailable: " + result.describe()));
        return;
      }
      metrics.status_event(result.value ? Result::applied : Result::stale);
      done(amqp::Outcome::ack());
    });
  };
}

}  // namespace notifs::api_gateway
