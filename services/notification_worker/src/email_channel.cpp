#include "email_channel.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <stdexcept>
#include <utility>

namespace notifs::worker {

EmailChannel::EmailChannel(EmailChannelSettings settings, const messaging::common::Clock& clock)
    : from_(parse_mailbox(settings.from)) {
  if (settings.providers.empty()) {
    throw std::invalid_argument("email channel: no SMTP provider (SMTP_URL)");
  }
  std::vector<ProviderChain<SmtpEnvelope, ChannelResult>::Provider> chain;
  for (auto& provider : settings.providers) {
    // The provider's connections are split over its lanes, at least one each.
    const auto lanes = std::max<std::size_t>(
        1, std::min(settings.lanes_per_provider, provider.max_connections));
    std::vector<SmtpSender*> lane_senders;
    for (std::size_t i = 0; i < lanes; ++i) {
      SmtpSettings lane = provider;
      lane.max_connections = provider.max_connections / lanes +
                             (i < provider.max_connections % lanes ? 1 : 0);
      lane.max_queued = std::max<std::size_t>(1, provider.max_queued / lanes);
      senders_.push_back(std::make_unique<SmtpSender>(std::move(lane)));
      lane_senders.push_back(senders_.back().get());
    }
    auto next = std::make_shared<std::atomic<std::size_t>>(0);
    const std::string name = lane_senders.front()->name();
    chain.push_back({name, [lane_senders, next, name](const SmtpEnvelope& envelope, auto callback) {
                       SmtpSender* lane = lane_senders[next->fetch_add(1, std::memory_order_relaxed) %
                                                       lane_senders.size()];
                       lane->send(envelope, [name, callback = std::move(callback)](SendResult result) {
                         callback(ChannelResult{std::move(result), name});
                       });
                     }});
  }
  chain_ = std::make_unique<ProviderChain<SmtpEnvelope, ChannelResult>>(std::move(chain),
                                                                        settings.breaker, clock);
}

// The senders finish (or fail) their transfers and join in their destructors; the chain
// must still be alive while their callbacks run, so they go first, and a late fault must
// not fail over into a sender already destroyed.
EmailChannel::~EmailChannel() {
  chain_->stop_failover();
  senders_.clear();
}

void EmailChannel::send(const contract::NotificationJob& job, const RenderedTemplate& content,
                        Callback callback) {
  SmtpEnvelope envelope;
  try {
    EmailContent email;
    email.from = from_;
    email.to = Mailbox{job.recipient.name, job.recipient.email};
    email.subject = content.subject;
    email.text_body = content.body;
    email.html_body = content.html_body;
    email.notification_id = job.notification_id;
    email.date = std::chrono::system_clock::now();
    envelope.message = build_email_message(email);
  } catch (const EmailFormatError& error) {
    callback(ChannelResult{SendResult::permanent_failure(std::string("cannot build the email: ") +
                                                          error.what()),
                           {}});
    return;
  }
  envelope.from = from_.address;
  envelope.to = job.recipient.email;
  chain_->send(envelope, std::move(callback));
}

std::vector<ProviderStatus> EmailChannel::providers() const { return chain_->statuses(); }

messaging::http::DependencyStatus EmailChannel::readiness(std::size_t provider) const {
  return chain_->readiness(provider);
}

}  // namespace notifs::worker
