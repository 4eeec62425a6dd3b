#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "directory.hpp"
#include "gateway_metrics.hpp"
#include "ledger.hpp"
#include "notification_request.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/http/message.hpp"

namespace notifs::api_gateway {

// One authenticated, validated POST /api/v1/notifications on its way to an answer.
struct IntakeRequest {
  std::string api_key_id;  // ApiKeys::key_id
  NotificationRequest notification;
  std::string http_request_id;  // X-Request-ID, sent upstream and logged
  std::string traceparent;      // this hop's span; the message carries it on
};

// Everything after validation, as a chain of callbacks that never blocks a thread:
//
//   ledger.claim ─ conflict ─────────────────────────────────────────── 409 idempotency_conflict
//      │        ─ in_progress (the same request is being answered) ──── 409 idempotency_in_progress
//      │        ─ replay ───────────────────────────────────────────── 200 first answer, replayed
//      │        ─ error ────────────────────────────────────────────── 503 database_unavailable
//      └ claimed: directory.find_user, then find_template in the user's locale
//          ─ unknown user / template (or one of the other channel) ─ release, 404
//          ─ upstream unavailable, nothing cached ──────────────────── release, 503
//          ─ channel off or no address ─ confirm(skipped, reason) ──── 202 skipped
//          └ publisher.async_publish (persistent, mandatory, confirmed)
//              ─ ack ──────────────────────────────── 202 queued, then confirm(queued)
//              ─ nack, unroutable, timeout, broker down ─ release ─── 503 broker_unavailable
//
// The 202 is sent on the broker's ack, the promise the contract asks for; the ledger
// records `queued` just after, off the request's path (one commit less per request).
// Until it lands, the row is `pending`: GET shows it as queued, a duplicate reaching this
// gateway gets the replay (it remembers what it acked and has not recorded yet), and one
// reaching another replica gets 409 idempotency_in_progress for those milliseconds. If
// that write fails (the database went away), the answer stays 202: the broker holds the
// message, and a 503 would invite a retry that publishes it twice; workers' status events
// still apply to the pending row.
//
// A failure after the claim releases it before answering, so the client's retry with the
// same request_id is never blocked; if the release itself fails, the pending row is taken
// over after LedgerSettings::pending_takeover.
//
// A concurrent duplicate gets 409 idempotency_in_progress with Retry-After: 1 (as the IETF
// Idempotency-Key draft asks) rather than waiting: the first request holds the claim for
// at most the publish deadline, and the retry then gets the replay.
//
// Thread-safe. The ledger, directory, publisher and metrics must outlive every submitted
// request: stop the HTTP server before destroying them.
class NotificationIntake {
 public:
  using Respond = std::function<void(messaging::http::Response)>;

  NotificationIntake(Ledger& ledger, Directory& directory,
                     messaging::amqp::MessagePublisher& publisher, GatewayMetrics& metrics,
                     messaging::amqp::TopologyNames names);

  // Answers through `respond` exactly once, from whichever thread finishes the request
  // (a ledger writer, a client io thread or a publisher thread). Never blocks.
  void submit(IntakeRequest request, Respond respond);

 private:
  struct Attempt;
  void start_claim(const std::shared_ptr<Attempt>& attempt);
  void on_claim(const std::shared_ptr<Attempt>& attempt, LedgerResult<ClaimResult> result);
  void replay(const std::shared_ptr<Attempt>& attempt, const NotificationRecord& existing);
  void on_user(const std::shared_ptr<Attempt>& attempt, UserLookup user);
  void on_template(const std::shared_ptr<Attempt>& attempt, TemplateLookup found);
  void publish(const std::shared_ptr<Attempt>& attempt);
  void skip(const std::shared_ptr<Attempt>& attempt, std::string reason);
  // Releases the claim, then answers `error` (counted as `rejection`).
  void fail(const std::shared_ptr<Attempt>& attempt, Rejection rejection,
            messaging::http::Response error);

  // Acked by the broker, answered 202, `queued` not yet recorded: see the class comment.
  void remember_acked(const std::string& notification_id);
  void forget_acked(const std::string& notification_id);
  bool is_acked_unrecorded(const std::string& notification_id) const;

  Ledger& ledger_;
  Directory& directory_;
  messaging::amqp::MessagePublisher& publisher_;
  GatewayMetrics& metrics_;
  messaging::amqp::TopologyNames names_;
  mutable std::mutex acked_mutex_;
  std::unordered_set<std::string> acked_unrecorded_;
};

// The answers of the intake, also used to rebuild a replay: `data` of the contract's 202
// ({"notification_id", "request_id", "notification_type", "status"} plus `reason` when
// skipped).
nlohmann::json intake_answer(const std::string& notification_id, const std::string& request_id,
                             Channel channel, Status status, const std::string& reason);

}  // namespace notifs::api_gateway
