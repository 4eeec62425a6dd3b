#pragma once

#include <cstdint>
#include <string>
#include <vector>

// What the fault suite asks RabbitMQ, over a short-lived rabbitmq-c connection of its own
// (one per call: the node may have restarted since the last one). Blocking; throws
// std::runtime_error with the broker's or the socket's reason.
namespace notifs::faults {

struct DeadLetter {
  std::string message_id;  // the notification id
  std::string reason;      // x-failure-reason, empty when the header is missing
};

// Ready messages of each queue (a passive declare), in the order asked.
std::vector<std::uint32_t> ready_counts(const std::string& amqp_url,
                                        const std::vector<std::string>& queues);

// Every message of `queue`, read with basic.get and never acknowledged: closing the channel
// puts them all back, so the dead-letter queue stays as an operator would find it.
std::vector<DeadLetter> peek_all(const std::string& amqp_url, const std::string& queue);

}  // namespace notifs::faults
