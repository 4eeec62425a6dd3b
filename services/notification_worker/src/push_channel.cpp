#include "push_channel.hpp"

#include <stdexcept>
#include <utility>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker {

PushChannel::PushChannel(PushChannelSettings settings, PushTokenRegistry* tokens,
                         std::shared_ptr<prometheus::Registry> registry,
                         const messaging::common::Clock& clock)
    : tokens_(tokens) {
  if (settings.providers.empty()) {
    throw std::invalid_argument("push channel: no push provider (PUSH_PROVIDER_URL)");
  }
  std::vector<ProviderChain<PushDelivery, TokenOutcome>::Provider> chain;
  for (auto& provider : settings.providers) {
    auto sender = std::make_unique<PushSender>(std::move(provider), registry, clock);
    PushSender* raw = sender.get();
    chain.push_back({raw->name(), [raw](const PushDelivery& delivery, auto callback) {
                       raw->send(delivery, std::move(callback));
                     }});
    senders_.push_back(std::move(sender));
  }
  chain_ = std::make_unique<ProviderChain<PushDelivery, TokenOutcome>>(std::move(chain),
                                                                       settings.breaker, clock);
}

// Senders first: their clients finish or fail in-flight calls, whose callbacks reach the
// chain, which must not fail them over into a sender already destroyed.
PushChannel::~PushChannel() {
  chain_->stop_failover();
  senders_.clear();
}

void PushChannel::send(const contract::NotificationJob& job, const RenderedTemplate& content,
                       Callback callback) {
  auto message = std::make_shared<PushMessage>();
  message->notification_id = job.notification_id;
  message->tokens = job.recipient.push_tokens;
  message->title = content.title;
  message->body = content.body;
  for (const auto& [key, value] : job.metadata.items()) {
    // FCM data values are strings; structured metadata travels as its JSON text.
    message->data[key] = value.is_string() ? value.get<std::string>() : value.dump();
  }
  const std::string user_id = job.user_id;
  send_to_each_token(
      std::move(message),
      [this](const PushDelivery& delivery, PushSender::Callback done) {
        chain_->send(delivery, std::move(done));
      },
      [this, user_id, callback = std::move(callback)](PushResult result) {
        for (const auto& token : result.unregistered_tokens()) {
          if (tokens_ != nullptr) {
            tokens_->remove(user_id, token);
          } else {
            messaging::common::logger("notification_worker")
                ->warn("push token of user {} is unregistered; no user_service to remove it",
                       user_id);
          }
        }
        std::size_t delivered = 0;
        for (const auto& token : result.tokens) {
          delivered += token.outcome.result.outcome == SendOutcome::delivered ? 1 : 0;
        }
        if (result.result.outcome == SendOutcome::transient && delivered > 0) {
          result.result = SendResult::delivered_ok(
              "delivered to " + std::to_string(delivered) + " of " +
              std::to_string(result.tokens.size()) + " devices; the others failed for now: " +
              result.result.detail);
        }
        callback(ChannelResult{std::move(result.result), "push"});
      });
}

std::vector<ProviderStatus> PushChannel::providers() const { return chain_->statuses(); }

messaging::http::DependencyStatus PushChannel::readiness(std::size_t provider) const {
  return chain_->readiness(provider);
}

}  // namespace notifs::worker
