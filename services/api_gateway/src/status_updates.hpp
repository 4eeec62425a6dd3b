#pragma once

#include "gateway_metrics.hpp"
#include "ledger.hpp"
#include "notifs/messaging/amqp/consumer.hpp"

namespace notifs::api_gateway {

// The handler of the gateway's status.queue consumer: each worker event goes to
// Ledger::apply_status, which drops stale and duplicate ones.
//   applied or stale         -> ack;
//   not a status event       -> dead_letter (to failed.queue: redelivery cannot fix it);
//   the ledger write failed  -> retry: status.queue has no retry tiers, so the consumer
//                               requeues it after its requeue_delay and it comes back once
//                               the database does. Nothing is acked before it is recorded.
// The ledger and metrics must outlive the consumer.
messaging::amqp::DeliveryHandler make_status_handler(Ledger& ledger, GatewayMetrics& metrics);

}  // namespace notifs::api_gateway
