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
  // The provider certainly did not take the message (connection refused, DNS or TLS failure,
  // a refusal before the end of the message): sending it to another provider at once cannot
  // make a double send. False when in doubt (a timeout after the message went out).
  bool nothing_sent = false;

  static SendResult delivered_ok(std::string detail = {}) {
    return SendResult{SendOutcome::delivered, std::move(detail), false, false};
  }
  static SendResult transient_failure(std::string detail, bool provider_fault) {
    return SendResult{SendOutcome::transient, std::move(detail), provider_fault, false};
  }
  // The provider could not be reached or refused before taking anything: a provider fault
  // the provider chain fails over at once (ProviderChain).
  static SendResult never_sent(std::string detail) {
    return SendResult{SendOutcome::transient, std::move(detail), true, true};
  }
  // A permanent failure is about the message or its recipient, never the provider: trying
  // another provider would fail the same way.
  static SendResult permanent_failure(std::string detail) {
    return SendResult{SendOutcome::permanent, std::move(detail), false, false};
  }
};

}  // namespace notifs::worker
