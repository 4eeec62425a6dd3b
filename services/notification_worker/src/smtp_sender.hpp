#pragma once

// One SMTP provider, driven through libcurl's multi interface on a thread of its own.
//
// send() never blocks: it queues the message and returns. The sender thread runs up to
// `max_connections` SMTP transactions at once, keeps the connections open between messages
// (libcurl's connection cache: a warm connection goes straight to MAIL FROM) and reports
// each outcome through the callback.
//
// Thread-safety: send() and name() may be called from any thread. Callbacks run on the
// sender thread, one at a time, and must not block (post heavy work elsewhere); a callback
// may call send(). A send refused at once (queue full, sender stopping) calls its callback
// on the caller's thread before send() returns.
//
// Destruction stops taking sends, fails the queued ones that never started (transient,
// "smtp sender stopped"), lets the started transactions finish (each bounded by
// `transfer_timeout`) so that their callbacks report what really happened, then joins the
// thread and closes the connections with QUIT. Drain before destroying to send everything.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "send_result.hpp"

namespace notifs::worker {

struct SmtpSettings {
  // smtp://[user:password@]host[:port][/ehlo-domain] (STARTTLS when the server offers it)
  // or smtps://... (TLS from the first byte). Credentials percent-encoded; given, they are
  // used for AUTH. The optional path is the name sent in EHLO.
  std::string url;
  std::size_t max_connections = 8;                    // transactions (and connections) at once
  std::size_t max_queued = 10000;                     // waiting for a connection; more fail fast
  std::chrono::milliseconds connect_timeout{5000};    // TCP connect and TLS handshake
  std::chrono::milliseconds transfer_timeout{30000};  // one whole message, connect included
  bool require_tls = false;  // smtp:// only: fail rather than send in clear without STARTTLS
  bool verify_tls = true;    // check the server certificate and its name
  std::string ca_file;       // PEM bundle to trust; empty: the system's
};

// What SMTP needs besides the message: the envelope addresses (bare addr-specs, no angle
// brackets) and the RFC 5322 bytes with CRLF line ends (dot-stuffing is libcurl's job).
struct SmtpEnvelope {
  std::string from;
  std::string to;
  std::string message;
};

// Outcome rules (SendResult):
//   250 after the message                 -> delivered, detail is the server's reply
//   4xx on MAIL/RCPT/DATA                 -> transient; provider_fault only for 421
//   5xx on RCPT TO, MAIL FROM, DATA, or
//   after the message                     -> permanent; detail names the command and the reply
//   530/534/535/538 (authentication), any
//   error in the greeting, EHLO, STARTTLS
//   or AUTH                               -> transient, provider_fault (config or provider trouble:
//                                            another provider may work)
//   connect refused, DNS, TLS, timeout,
//   connection lost                       -> transient, provider_fault
//   sender stopping or queue full         -> transient, not a provider fault
// Any failure before libcurl has been handed the whole message also sets nothing_sent:
// without the final "." no server can have accepted it, so the provider chain may try the
// next provider at once. A connection lost after the final "." may have delivered.
class SmtpSender {
 public:
  using Callback = std::function<void(SendResult)>;

  // Throws std::invalid_argument for a URL that is not smtp:// or smtps:// with a host,
  // and for zero max_connections; std::runtime_error when libcurl cannot start.
  explicit SmtpSender(SmtpSettings settings);
  ~SmtpSender();

  SmtpSender(const SmtpSender&) = delete;
  SmtpSender& operator=(const SmtpSender&) = delete;

  void send(SmtpEnvelope envelope, Callback done);

  // "smtp://host:port" without credentials: for logs, metrics and /ready.
  const std::string& name() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::worker
