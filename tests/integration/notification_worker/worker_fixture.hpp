#pragma once

// The whole delivery path in-process for the worker's end-to-end tests: the gateway's
// fixture (api_gateway, user_service, template_service, a topology of its own with short
// retry tiers, a BrokerProbe), a real SMTP server (smtp-sink), the fake FCM-style push
// provider, and notification_worker (WorkerApp) per channel, each channel with a send
// ledger schema of its own. Notifications go in through the gateway's POST and come out at
// the sink or the push provider; the tests read the outcome where users would: the
// gateway's GET, failed.queue, the received bytes.
//
// Everything blocks and must be called from the test thread.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fakes/fake_push_provider.hpp"
#include "integration/api_gateway/gateway_fixture.hpp"
#include "integration/notification_worker/smtp_sink.hpp"
#include "integration/pg_test_support.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/amqp/message.hpp"
#include "worker_app.hpp"
#include "worker_settings.hpp"

namespace notifs::worker_test {

using nlohmann::json;

inline constexpr const char* kSmtpFrom = "Notifs Team <noreply@notifs.example>";
inline constexpr const char* kPushProviderToken = "push-provider-test-token";

class WorkerFixture {
 public:
  explicit WorkerFixture(gateway_test::GatewayOptions options = {});
  ~WorkerFixture();
  WorkerFixture(const WorkerFixture&) = delete;
  WorkerFixture& operator=(const WorkerFixture&) = delete;

  gateway_test::GatewayFixture& gateway() { return *gateway_; }
  amqp_test::BrokerProbe& probe() { return gateway_->probe(); }
  const messaging::amqp::TopologyNames& names() const { return gateway_->topology().names; }
  // The SMTP server the email worker's settings name by default.
  test_support::SmtpSink& smtp() { return *smtp_; }
  fakes::FakePushProvider& push_provider() { return push_; }

  // Settings of an in-process worker wired to this fixture: the gateway's broker and
  // topology, template_service (and user_service for push), smtp() or push_provider(), the
  // channel's ledger schema (workers of one channel share it, as processes share a
  // database), port 0, short timeouts. Tests adjust them before start_worker().
  worker::WorkerSettings worker_settings(std::string_view channel);
  // Starts a worker (kept until the fixture ends; stopped first).
  worker::WorkerApp& start_worker(worker::WorkerSettings settings);
  worker::WorkerApp& start_worker(std::string_view channel) {
    return start_worker(worker_settings(channel));
  }
  // Stops every worker started so far (gracefully). Idempotent.
  void stop_workers();
  // The send ledger schema of a channel's workers (created on first use).
  pg_test::TestSchema& ledger_schema(std::string_view channel);
  // How many sends the channel's ledger has recorded for this notification.
  int recorded_sends(std::string_view channel, const std::string& notification_id);

  // GET /api/v1/notifications/{id}: the data; REQUIREs a 200.
  json notification(const std::string& notification_id);
  // Polls the gateway's GET until the notification shows `status` and returns its data.
  // FAILs with the last answer when it does not within `within`, or as soon as it shows a
  // different terminal status (delivered, failed, skipped never change).
  json wait_for_status(const std::string& notification_id, std::string_view status,
                       std::chrono::milliseconds within = std::chrono::seconds(30));

  // Every status event published for the notification so far, in the order the broker
  // delivered them (a queue of the fixture's own bound to notifications.status: the
  // gateway consumes status.queue, this one only watches).
  std::vector<contract::StatusEvent> status_events(const std::string& notification_id);
  // Waits until at least `count` events with `status` were published for the notification
  // and returns all of its events; FAILs when they do not come within `within`.
  std::vector<contract::StatusEvent> wait_for_events(
      const std::string& notification_id, contract::Status status, std::size_t count = 1,
      std::chrono::milliseconds within = std::chrono::seconds(30));

  // The dead letter of a message in failed.queue, by message_id (the notification id for
  // notification messages); waits up to `within`. Messages taken from failed.queue are
  // kept, so several lookups can find theirs.
  std::optional<messaging::amqp::Delivery> failed_message(
      const std::string& message_id, std::chrono::milliseconds within = std::chrono::seconds(15));
  // Every dead letter taken from failed.queue so far, after waiting until there are at
  // least `count` (or `within` passed).
  const std::vector<messaging::amqp::Delivery>& failed_messages(
      std::size_t count, std::chrono::milliseconds within = std::chrono::seconds(15));

 private:
  void drain_status_tap();

  std::unique_ptr<gateway_test::GatewayFixture> gateway_;
  std::unique_ptr<test_support::SmtpSink> smtp_;
  fakes::FakePushProvider push_;
  std::string status_tap_;
  std::vector<contract::StatusEvent> events_;
  std::vector<messaging::amqp::Delivery> failed_;
  std::map<std::string, std::unique_ptr<pg_test::TestSchema>, std::less<>> ledgers_;
  std::vector<std::unique_ptr<worker::WorkerApp>> workers_;
};

// --- Reading what an SMTP server received --------------------------------------------

// The received messages (smtp-sink's dumps) whose Message-ID is <notification_id@...> and
// that are complete. Never waits.
std::vector<std::string> emails_for(const test_support::SmtpSink& sink,
                                    const std::string& notification_id);
// Waits until the sink holds the notification's email and returns it; FAILs after `within`.
std::string wait_for_email(const test_support::SmtpSink& sink, const std::string& notification_id,
                           std::chrono::milliseconds within = std::chrono::seconds(30));
// Complete received messages per notification id (from their Message-ID headers).
std::map<std::string, int> received_per_notification(const test_support::SmtpSink& sink);

// A message as smtp-sink wrote it, taken apart: header fields (unfolded, names lower
// case, in order) and the body.
struct ParsedMessage {
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // The first value of a header (name compared case-insensitively); empty when absent.
  std::string header(std::string_view name) const;
  std::size_t count(std::string_view name) const;
};
// Parses a dump (LF line ends). smtp-sink's own X-Mail-Args, X-Rcpt-Args and Received
// lines are kept as headers.
ParsedMessage parse_message(std::string_view text);
// The parts of a multipart message (boundary from its Content-Type), each parsed.
std::vector<ParsedMessage> multipart_parts(const ParsedMessage& message);
// RFC 2047 decoding of a header value (B and Q encoded-words in UTF-8; whitespace between
// adjacent encoded-words dropped). FAILs on a malformed encoded-word.
std::string decode_rfc2047(std::string_view value);
// Quoted-printable decoding (RFC 2045 6.7) of a body with LF line ends; hard breaks come
// back as "\n".
std::string decode_quoted_printable(std::string_view text);
std::string decode_base64(std::string_view text);

}  // namespace notifs::worker_test
