#include "delivery_pipeline.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker {

namespace amqp = messaging::amqp;
using contract::Status;

struct DeliveryPipeline::Attempt {
  amqp::Completion done;
  contract::NotificationJob job;
  std::uint32_t number = 1;  // x-attempt
  std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();

  contract::StatusEvent event(Status status, std::string error = {}) const {
    return contract::StatusEvent{job.notification_id, status, number, std::move(error),
                                 std::chrono::system_clock::now()};
  }
  std::chrono::steady_clock::duration elapsed() const {
    return std::chrono::steady_clock::now() - received;
  }
};

namespace {

auto log() { return messaging::common::logger("notification_worker"); }

}  // namespace

DeliveryPipeline::DeliveryPipeline(DeliveryPipelineSettings settings, RenderClient& renderer,
                                   SendLedger& ledger, ChannelSender& sender,
                                   StatusReporter& status, WorkerMetrics& metrics)
    : settings_(std::move(settings)),
      renderer_(renderer),
      ledger_(ledger),
      sender_(sender),
      status_(status),
      metrics_(metrics) {}

amqp::DeliveryHandler DeliveryPipeline::handler() {
  return [this](amqp::Delivery delivery, amqp::Completion done) {
    handle(std::move(delivery), std::move(done));
  };
}

void DeliveryPipeline::handle(amqp::Delivery delivery, amqp::Completion done) {
  auto attempt = std::make_shared<Attempt>();
  attempt->done = std::move(done);
  // A forged x-attempt beyond what a status event may carry would make the report throw.
  attempt->number = std::min(delivery.attempt(), contract::kMaxAttempt);
  try {
    attempt->job = contract::decode_notification_job(delivery.body);
  } catch (const contract::JobFormatError& error) {
    log()->warn("message {} is not a notification message: {}", delivery.message_id, error.what());
    metrics_.message(MessageResult::invalid, attempt->elapsed());
    attempt->done(amqp::Outcome::dead_letter(std::string("invalid message: ") + error.what()));
    return;
  }
  if (attempt->job.notification_type != settings_.channel) {
    const auto reason = "a " + attempt->job.notification_type + " notification on the " +
                        settings_.channel + " queue";
    log()->warn("notification {}: {}", attempt->job.notification_id, reason);
    metrics_.message(MessageResult::invalid, attempt->elapsed());
    attempt->done(amqp::Outcome::dead_letter(reason));
    return;
  }
  check_ledger(std::move(attempt));
}

void DeliveryPipeline::check_ledger(std::shared_ptr<Attempt> attempt) {
  const auto id = attempt->job.notification_id;
  ledger_.lookup(id, [this, attempt = std::move(attempt)](SentLookup found) mutable {
    switch (found) {
      case SentLookup::sent:
        // Sent by an earlier delivery that did not live to ack (or whose status event was
        // lost): tell the gateway again, send nothing.
        delivered(std::move(attempt), MessageResult::duplicate, {});
        return;
      case SentLookup::unavailable:
        // Without the ledger a redelivered message could go out twice; wait in a retry tier.
        transient(std::move(attempt), "send ledger unavailable");
        return;
      case SentLookup::not_sent:
        status_.report(attempt->event(Status::processing));
        render(std::move(attempt));
        return;
    }
  });
}

void DeliveryPipeline::render(std::shared_ptr<Attempt> attempt) {
  const auto& job = attempt->job;
  renderer_.render(job, [this, attempt = std::move(attempt)](RenderResult result) mutable {
    switch (result.status) {
      case RenderStatus::rendered:
        send(std::move(attempt), std::move(result.content));
        return;
      case RenderStatus::unrenderable:
        permanent(std::move(attempt), std::move(result.reason));
        return;
      case RenderStatus::unavailable:
        transient(std::move(attempt), std::move(result.reason));
        return;
    }
  });
}

void DeliveryPipeline::send(std::shared_ptr<Attempt> attempt,
                            std::shared_ptr<const RenderedTemplate> content) {
  const auto started = std::chrono::steady_clock::now();
  const auto& job = attempt->job;
  sender_.send(job, *content,
               [this, attempt = std::move(attempt), content, started](ChannelResult sent) mutable {
                 metrics_.send_took(std::chrono::steady_clock::now() - started);
                 switch (sent.result.outcome) {
                   case SendOutcome::delivered:
                     record(std::move(attempt), std::move(sent));
                     return;
                   case SendOutcome::permanent:
                     permanent(std::move(attempt), std::move(sent.result.detail));
                     return;
                   case SendOutcome::transient:
                     transient(std::move(attempt), std::move(sent.result.detail));
                     return;
                 }
               });
}

void DeliveryPipeline::record(std::shared_ptr<Attempt> attempt, ChannelResult sent) {
  SentRecord entry{attempt->job.notification_id, settings_.channel, sent.provider,
                   sent.result.detail, attempt->number};
  ledger_.record(std::move(entry), [this, attempt = std::move(attempt),
                                    detail = std::move(sent.result.detail)](bool recorded) mutable {
    if (!recorded) {
      log()->error("notification {} was sent but the send ledger could not record it; acking "
                   "anyway (only a redelivery could send it twice)",
                   attempt->job.notification_id);
      metrics_.unrecorded_send();
    }
    delivered(std::move(attempt), MessageResult::delivered, std::move(detail));
  });
}

void DeliveryPipeline::delivered(std::shared_ptr<Attempt> attempt, MessageResult result,
                                 std::string detail) {
  log()->debug("notification {} delivered (attempt {}): {}", attempt->job.notification_id,
               attempt->number, detail);
  auto event = attempt->event(Status::delivered);
  status_.report(std::move(event), [this, attempt = std::move(attempt), result](bool confirmed) {
    if (!confirmed) {
      // The send is recorded: the next attempt acks at once and reports delivered again.
      metrics_.message(MessageResult::retried, attempt->elapsed());
      attempt->done(amqp::Outcome::retry("status event 'delivered' not confirmed by the broker"));
      return;
    }
    metrics_.message(result, attempt->elapsed());
    attempt->done(amqp::Outcome::ack());
  });
}

void DeliveryPipeline::transient(std::shared_ptr<Attempt> attempt, std::string reason) {
  const bool last = attempt->number > settings_.retry_tiers;
  log()->info("notification {} attempt {} failed for now{}: {}", attempt->job.notification_id,
              attempt->number, last ? " (retries exhausted)" : "", reason);
  auto event = last ? attempt->event(Status::failed, "retries exhausted after " +
                                                         std::to_string(attempt->number) +
                                                         " attempts: " + reason)
                    : attempt->event(Status::retrying, reason);
  status_.report(std::move(event), [this, attempt = std::move(attempt), last,
                                    reason = std::move(reason)](bool confirmed) mutable {
    if (last && !confirmed) {
      // Dead-lettered now, the notification would show its last `retrying` for good (see
      // permanent()). The same last attempt runs again instead, and reports again.
      metrics_.message(MessageResult::retried, attempt->elapsed());
      attempt->done(amqp::Outcome::requeue("status event 'failed' not confirmed by the broker (" +
                                           reason + ")"));
      return;
    }
    // The consumer republishes to the next tier, or dead-letters past the last one.
    metrics_.message(last ? MessageResult::failed : MessageResult::retried, attempt->elapsed());
    attempt->done(amqp::Outcome::retry(std::move(reason)));
  });
}

void DeliveryPipeline::permanent(std::shared_ptr<Attempt> attempt, std::string reason) {
  log()->warn("notification {} failed permanently (attempt {}): {}", attempt->job.notification_id,
              attempt->number, reason);
  auto event = attempt->event(Status::failed, reason);
  status_.report(std::move(event), [this, attempt = std::move(attempt),
                                    reason = std::move(reason)](bool confirmed) mutable {
    if (!confirmed) {
      // Dead-lettered now, the notification would stay `queued` in the gateway for good
      // (tests/faults caught it while the publisher reconnected). A retry fails the same
      // way on its next attempt, which reports `failed` again.
      metrics_.message(MessageResult::retried, attempt->elapsed());
      attempt->done(amqp::Outcome::retry("status event 'failed' not confirmed by the broker (" +
                                         reason + ")"));
      return;
    }
    metrics_.message(MessageResult::failed, attempt->elapsed());
    attempt->done(amqp::Outcome::dead_letter(std::move(reason)));
  });
}

}  // namespace notifs::worker
