#pragma once

// A small SMTP server that speaks TLS, for testing the worker's SMTP client with peer
// verification (Postfix's smtp-sink, used elsewhere, has no TLS). Plain sockets and
// OpenSSL on threads of its own: one accepting, one per connection. It listens on
// 127.0.0.1 on a port the OS picks, accepts every MAIL FROM, RCPT TO and DATA, and records
// each message with whether it came over TLS. AUTH PLAIN is offered once the session is
// encrypted (or always with SmtpTls::none) and accepts any credentials, which it records.
//
// Thread-safe: inspect it from the test thread while it serves. The destructor closes the
// listener and every connection and joins the threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fakes/test_ca.hpp"

namespace notifs::fakes {

enum class SmtpTls {
  implicit,  // TLS from the first byte (smtps://)
  starttls,  // plain greeting, STARTTLS offered in EHLO
  none,      // plain only, no STARTTLS offered
};

struct ReceivedMail {
  std::string mail_from;  // the MAIL FROM argument as sent, e.g. "<a@example.org>"
  std::string rcpt_to;    // the last RCPT TO argument
  std::string data;       // the message, CRLF line ends, dot-stuffing undone, no final "."
  bool over_tls = false;  // the session was encrypted when DATA began
};

struct SmtpLogin {
  std::string user;
  std::string password;
  bool over_tls = false;
};

class TlsSmtpServer {
 public:
  // `identity` is the certificate presented (unused with SmtpTls::none). Throws
  // std::runtime_error when it cannot listen or load the certificate.
  TlsSmtpServer(SmtpTls mode, TlsIdentityFiles identity);
  ~TlsSmtpServer();
  TlsSmtpServer(const TlsSmtpServer&) = delete;
  TlsSmtpServer& operator=(const TlsSmtpServer&) = delete;

  std::uint16_t port() const;
  // "smtps://HOST:PORT" for implicit TLS, "smtp://HOST:PORT" otherwise.
  std::string url(const std::string& host = "localhost") const;

  std::vector<ReceivedMail> messages() const;
  // Waits up to `within` for at least `count` messages; true when they arrived.
  bool wait_for_messages(std::size_t count, std::chrono::milliseconds within) const;
  // Connections accepted, and TLS handshakes (implicit or after STARTTLS) that failed:
  // a client that refuses the certificate aborts its handshake.
  std::size_t connections() const;
  std::size_t failed_handshakes() const;
  // Every command line received, in order, across connections (for "nothing was sent").
  std::vector<std::string> commands() const;
  // The credentials of every AUTH PLAIN, in order.
  std::vector<SmtpLogin> logins() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::fakes
