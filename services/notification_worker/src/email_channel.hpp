#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "channel_sender.hpp"
#include "email_message.hpp"
#include "notifs/messaging/resilience/circuit_breaker.hpp"
#include "smtp_sender.hpp"

namespace notifs::worker {

struct EmailChannelSettings {
  std::vector<SmtpSettings> providers;  // SMTP_URL, in order of preference; at least one
  std::string from;                     // SMTP_FROM: "Name <addr>" or "addr"
  messaging::resilience::CircuitBreakerSettings breaker{};
  // SmtpSenders (each a thread with its own libcurl multi handle) per provider, sharing
  // the provider's max_connections. libcurl 7.88's multi interface waits for the reply
  // to the final "." in a blocking call, so one sender has one message's final reply in
  // flight at a time however many connections it holds; lanes run that wait in parallel.
  std::size_t lanes_per_provider = 4;
};

// Email: builds the RFC 5322 message from the rendered template and sends it through the
// first SMTP provider whose breaker allows it (ProviderChain). A message that cannot be
// built (an address that is not one, a control character in a name) is a permanent
// failure: no provider could send it.
class EmailChannel final : public ChannelSender {
 public:
  // Throws std::invalid_argument when `from` is not a mailbox or no provider is given.
  explicit EmailChannel(EmailChannelSettings settings,
                        const messaging::common::Clock& clock =
                            messaging::common::SystemClock::instance());
  ~EmailChannel() override;

  void send(const contract::NotificationJob& job, const RenderedTemplate& content,
            Callback callback) override;
  std::vector<ProviderStatus> providers() const override;
  messaging::http::DependencyStatus readiness(std::size_t provider) const override;

 private:
  Mailbox from_;
  std::vector<std::unique_ptr<SmtpSender>> senders_;  // every lane of every provider
  std::unique_ptr<ProviderChain<SmtpEnvelope, ChannelResult>> chain_;
};

}  // namespace notifs::worker
