#pragma once

#include <functional>
#include <string>
#include <vector>

#include "notifs/contract/notification_job.hpp"
#include "notifs/messaging/http/server.hpp"
#include "provider_chain.hpp"
#include "send_result.hpp"
#include "render_client.hpp"

namespace notifs::worker {

// What one delivery attempt of a rendered notification came to.
struct ChannelResult {
  SendResult result;
  std::string provider;  // which provider answered (for the send ledger and logs)
};

// A provider chain over ChannelResult stamps the answering provider's name on the result.
template <>
struct ChainResultTraits<ChannelResult> {
  static const SendResult& outcome(const ChannelResult& result) { return result.result; }
  static ChannelResult from_outcome(SendResult outcome) { return ChannelResult{std::move(outcome), {}}; }
};

// One channel's way out: email through SMTP providers, push through push providers. The
// delivery pipeline is the same for both and talks to this seam only.
//
// Implementations are thread-safe, never block in send(), and call back exactly once,
// from any thread. They must outlive every send in flight.
class ChannelSender {
 public:
  using Callback = std::function<void(ChannelResult result)>;

  virtual ~ChannelSender() = default;

  virtual void send(const contract::NotificationJob& job, const RenderedTemplate& content,
                    Callback callback) = 0;

  // Each provider's breaker, in order of preference, for /ready.
  virtual std::vector<ProviderStatus> providers() const = 0;
  virtual messaging::http::DependencyStatus readiness(std::size_t provider) const = 0;
};

}  // namespace notifs::worker
