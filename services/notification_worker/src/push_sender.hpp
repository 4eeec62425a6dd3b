#pragma once

// Push delivery over an FCM HTTP v1 style API: one POST per device token.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "provider_chain.hpp"
#include "send_result.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::worker {

// One notification for one user's devices, already rendered.
struct PushMessage {
  std::string notification_id;
  std::vector<std::string> tokens;  // the device tokens to send to (a retry: only those still pending)
  std::string title;
  std::string body;
  std::map<std::string, std::string> data;  // FCM data values are strings; notification_id is added
  std::string traceparent;                  // continued on every provider call when set
};

// One request: one notification to one device token.
struct PushDelivery {
  std::shared_ptr<const PushMessage> message;
  std::string token;
};

// What one device token's request came to.
struct TokenOutcome {
  SendResult result;
  // The provider says the token no longer exists (HTTP 404 / NOT_FOUND with an FCM error, or
  // errorCode UNREGISTERED): result is permanent and the worker removes the token through
  // user_service.
  bool unregistered = false;
};

template <>
struct ChainResultTraits<TokenOutcome> {
  static const SendResult& outcome(const TokenOutcome& result) { return result.result; }
  static TokenOutcome from_outcome(SendResult outcome) { return TokenOutcome{std::move(outcome), false}; }
};

struct TokenReport {
  std::string token;
  TokenOutcome outcome;
};

// A notification's outcome over all its tokens.
//
// The rule (aggregate_push):
//   - no tokens at all                          -> permanent "no push tokens"
//   - any token transient                       -> transient: send the notification again
//     to pending_tokens() only, so that the devices that got it do not get it twice;
//     provider_fault when any of those transient tokens was a provider fault
//   - otherwise, at least one token delivered   -> delivered (unregistered and rejected
//     tokens are reported in detail but do not fail a notification some device received)
//   - otherwise (every token permanent)         -> permanent, with the first token's reason
struct PushResult {
  SendResult result;
  std::vector<TokenReport> tokens;  // in the message's token order

  std::vector<std::string> unregistered_tokens() const;  // to remove through user_service
  std::vector<std::string> pending_tokens() const;       // transient: to send again
};

PushResult aggregate_push(std::vector<TokenReport> tokens);

// The FCM HTTP v1 body for one token:
// {"message": {"token", "notification": {"title", "body"}, "data": {...}}}; data carries
// notification_id (overriding a data key of that name).
std::string fcm_request_body(const PushMessage& message, std::string_view token);

// Classifies one call's result:
//   2xx                                    -> delivered (detail: the provider's message name)
//   NOT_FOUND / UNREGISTERED FCM error     -> permanent, unregistered
//   404 without an FCM error body          -> transient provider fault: the URL is wrong, and
//                                             unregistering every token on that would be a disaster
//   400 (INVALID_ARGUMENT), 403 SENDER_ID_MISMATCH, other 4xx -> permanent
//   401 / 403 (our credentials)            -> transient provider fault (another provider may take it)
//   408, 429 (QUOTA_EXCEEDED)              -> transient, not a provider fault (as ServiceClient counts it)
//   5xx, no response (refused, timeout, breaker open) -> transient provider fault
//   client shutting down                   -> transient, not a provider fault
TokenOutcome classify_push_response(const messaging::http::ClientResult& result);

struct PushSenderSettings {
  std::string name = "push";  // provider name: logs, metrics label, /ready
  // PUSH_PROVIDER_URL: the whole endpoint, e.g.
  // "https://fcm.googleapis.com/v1/projects/my-project/messages:send".
  std::string url;
  std::string token;  // PUSH_PROVIDER_TOKEN, sent as Authorization: Bearer; never logged
  // Timeouts, retries (429 and 5xx, honouring Retry-After), pool and breaker of the HTTP
  // client. Its name, base_url and service_token are taken from the fields above.
  messaging::http::ServiceClientSettings client{};
};

// One push provider.
//
// send() makes one POST per call through a ServiceClient, which retries 429 and 5xx within
// its deadline (waiting out Retry-After when it fits); what is left after that is classified
// by classify_push_response(). send_all() sends every token of a message at once and
// aggregates.
//
// Thread-safe; never blocks the caller. Callbacks run on the client's io thread and must
// not block. The constructor throws std::invalid_argument for a URL that is not
// http(s)://host[:port]/path. Destroying the sender completes pending sends with a
// transient "shutting down" result before the destructor returns.
class PushSender {
 public:
  using Callback = std::function<void(TokenOutcome outcome)>;
  using AllCallback = std::function<void(PushResult result)>;

  explicit PushSender(PushSenderSettings settings,
                      std::shared_ptr<prometheus::Registry> registry = nullptr,
                      const messaging::common::Clock& clock = messaging::common::SystemClock::instance());
  ~PushSender();
  PushSender(const PushSender&) = delete;
  PushSender& operator=(const PushSender&) = delete;

  // One token (the form a ProviderChain<PushDelivery, TokenOutcome> calls).
  void send(const PushDelivery& delivery, Callback callback);
  void send_all(std::shared_ptr<const PushMessage> message, AllCallback callback);

  const std::string& name() const;
  messaging::resilience::BreakerState breaker_state() const;

 private:
  std::string name_;
  std::string target_;  // path (and query) of the endpoint
  std::unique_ptr<messaging::http::ServiceClient> client_;
};

// Sends a message to each of its tokens through `send_one` (a PushSender's send, or a
// ProviderChain's so that every token fails over on its own) and calls `done` once with
// the aggregate. The requests run concurrently; `done` runs on the thread of the last one
// to finish (the caller's when there are no tokens).
using TokenSendFunction = std::function<void(const PushDelivery& delivery, PushSender::Callback callback)>;
void send_to_each_token(std::shared_ptr<const PushMessage> message, const TokenSendFunction& send_one,
                        PushSender::AllCallback done);

}  // namespace notifs::worker
