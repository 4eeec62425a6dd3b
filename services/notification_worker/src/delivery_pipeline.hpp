#pragma once

#include <cstdint>
#include <string>

#include "channel_sender.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "send_ledger.hpp"
#include "status_reporter.hpp"
#include "render_client.hpp"
#include "worker_metrics.hpp"

namespace notifs::worker {

struct DeliveryPipelineSettings {
  std::string channel = "email";  // the queue served: a message of the other type is invalid
  std::uint32_t retry_tiers = 3;  // TopologySettings::retry_tiers: an attempt past it is the last
};

// What happens to one message from email.queue or push.queue (issue 6, CONTRACT.md):
//
//   decode ─ invalid ──────────────────────────────────────────────► dead letter
//   send ledger: already sent? ─ yes ─► status delivered ────────────► ack (no second send)
//   status processing; render ─ unrenderable ─► status failed ───────► dead letter
//   channel send ─ delivered ─► record the send ─► status delivered ─► ack
//                ─ permanent ─► status failed ───────────────────────► dead letter
//                ─ transient ─► status retrying (or failed, after the ─► retry tier
//                                last tier: the consumer dead-letters it)
//
// The ack waits for the send to be recorded and the terminal status event to be confirmed,
// so a crash at any point before it leaves a message the broker redelivers, and the
// redelivery finds the record instead of sending again. Only a crash between the
// provider's answer and the record can send twice. A record that fails even after the
// ledger's patience still acks: the ack is what prevents a redelivery; the miss is logged
// and counted. A terminal event the broker does not confirm turns into a retry, whose
// next attempt finds the record and reports `delivered` again.
//
// Thread-safe: handle() runs on the consumer's thread, never blocks, and completes on
// whichever thread the last step answered on.
class DeliveryPipeline {
 public:
  DeliveryPipeline(DeliveryPipelineSettings settings, RenderClient& renderer,
                   SendLedger& ledger, ChannelSender& sender, StatusReporter& status,
                   WorkerMetrics& metrics);

  void handle(messaging::amqp::Delivery delivery, messaging::amqp::Completion done);

  // handle() as the consumer's handler; the pipeline must outlive the consumer.
  messaging::amqp::DeliveryHandler handler();

 private:
  struct Attempt;

  void check_ledger(std::shared_ptr<Attempt> attempt);
  void render(std::shared_ptr<Attempt> attempt);
  void send(std::shared_ptr<Attempt> attempt, std::shared_ptr<const RenderedTemplate> content);
  void record(std::shared_ptr<Attempt> attempt, ChannelResult sent);
  void delivered(std::shared_ptr<Attempt> attempt, MessageResult result, std::string detail);
  void transient(std::shared_ptr<Attempt> attempt, std::string reason);
  void permanent(std::shared_ptr<Attempt> attempt, std::string reason);

  DeliveryPipelineSettings settings_;
  RenderClient& renderer_;
  SendLedger& ledger_;
  ChannelSender& sender_;
  StatusReporter& status_;
  WorkerMetrics& metrics_;
};

}  // namespace notifs::worker
