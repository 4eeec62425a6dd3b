#include "email_channel.hpp"

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
    auto sender = std::make_unique<SmtpSender>(std::move(provider));
    SmtpSender* raw = sender.get();
    chain.push_back({raw->name(), [raw](const SmtpEnvelope& envelope, auto callback) {
                       raw->send(envelope, [raw, callback = std::move(callback)](SendResult result) {
                         callback(ChannelResult{std::move(result), raw->name()});
                       });
                     }});
    senders_.push_back(std::move(sender));
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
