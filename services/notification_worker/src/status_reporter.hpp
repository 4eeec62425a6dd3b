#pragma once

#include <functional>

#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace notifs::worker {

// Publishes a worker's status events (processing, retrying, delivered, failed) to
// notifications.status with key "status" (CONTRACT.md), persistent and confirmed, so the
// gateway's ledger follows each notification. message_id is "<notification_id>:<status>:
// <attempt>", so a duplicate is recognizable in the management UI; the gateway's
// never-backwards rule makes duplicates harmless anyway.
//
// Thread-safe; never blocks (the publisher queues). `done` (optional) runs on a publisher
// thread with whether the broker confirmed the event.
class StatusReporter {
 public:
  using Done = std::function<void(bool confirmed)>;

  StatusReporter(messaging::amqp::MessagePublisher& publisher,
                 messaging::amqp::TopologyNames names);

  void report(contract::StatusEvent event, Done done = {});

 private:
  messaging::amqp::MessagePublisher& publisher_;
  messaging::amqp::TopologyNames names_;
};

}  // namespace notifs::worker
