#pragma once

#include <memory>
#include <string>
#include <vector>

#include "channel_sender.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"
#include "push_sender.hpp"
#include "push_token_registry.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::worker {

struct PushChannelSettings {
  std::vector<PushSenderSettings> providers;  // PUSH_PROVIDER_URL, in order; at least one
  messaging::resilience::CircuitBreakerSettings breaker{};
};

// Push: one FCM v1 request per device token through the first push provider whose breaker
// allows it, the tokens concurrently; tokens the provider calls unregistered are removed
// through user_service (PushTokenRegistry).
//
// Partial success: when some devices received the notification and others failed
// transiently, the notification counts as delivered (the detail says how many devices
// missed it). Retrying would resend to the devices that already have it, because a retry
// replays the original message with all its tokens; a duplicate on a phone is worse than a
// missed copy on a second device.
class PushChannel final : public ChannelSender {
 public:
  // `tokens` may be null (no user_service configured): unregistered tokens are then only
  // logged. Throws std::invalid_argument when no provider is given.
  PushChannel(PushChannelSettings settings, PushTokenRegistry* tokens,
              std::shared_ptr<prometheus::Registry> registry = nullptr,
              const messaging::common::Clock& clock = messaging::common::SystemClock::instance());
  ~PushChannel() override;

  void send(const contract::NotificationJob& job, const RenderedTemplate& content,
            Callback callback) override;
  std::vector<ProviderStatus> providers() const override;
  messaging::http::DependencyStatus readiness(std::size_t provider) const override;

 private:
  PushTokenRegistry* tokens_;
  std::vector<std::unique_ptr<PushSender>> senders_;
  std::unique_ptr<ProviderChain<PushDelivery, TokenOutcome>> chain_;
};

}  // namespace notifs::worker
