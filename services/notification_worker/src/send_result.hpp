#pragma once

// The outcome of one delivery attempt, shared by the email and push channels. The worker
// turns it into an ack, a retry through the tiers or a dead letter, and into a status event;
// the provider chain turns `provider_fault` into a breaker failure.

#include <string>
#include <utility>

namespace notifs::worker {

enum class SendOutcome { delivered, transient, permanent };

struct SendResult {
  SendOutcome outcome = SendOutcome::transient;
  std::string detail;           // "550 5.1.1 no such user", "HTTP 503 ...": goes into status events
  bool provider_fault = false;  // counts against the provider's breaker (connect refused,
                                // timeout, 5xx, 421); a recipient's 550 does not

  static SendResult delivered_ok(std::string detail = {}) {
    return SendResult{SendOutcome::delivered, std::move(detail), false};
  }
  static SendResult transient_failure(std::string detail, bool provider_fault) {
    return SendResult{SendOutcome::transient, std::move(detail), provider_fault};
  }
  // A permanent failure is about the message or its recipient, never the provider: trying
  // another provider would fail the same way.
  static SendResult permanent_failure(std::string detail) {
    return SendResult{SendOutcome::permanent, std::move(detail), false};
  }
};

}  // namespace notifs::worker
