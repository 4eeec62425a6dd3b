// The worker's SMTP client over TLS with peer verification, against a TLS SMTP server the
// test starts (tests/fakes/tls_smtp_server) and certificate authorities the test makes:
// STARTTLS and smtps:// deliver over TLS with a trusted CA; an untrusted CA, a certificate
// for another name and a server without STARTTLS (under require_tls) are refused before
// MAIL FROM, as provider faults that sent nothing.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "fakes/test_ca.hpp"
#include "fakes/tls_smtp_server.hpp"
#include "send_result.hpp"
#include "smtp_sender.hpp"

using namespace std::chrono_literals;
using notifs::fakes::SmtpTls;
using notifs::fakes::TestCa;
using notifs::fakes::TlsSmtpServer;
using notifs::worker::SendOutcome;
using notifs::worker::SendResult;
using notifs::worker::SmtpEnvelope;
using notifs::worker::SmtpSender;
using notifs::worker::SmtpSettings;

namespace {

SmtpSettings tls_settings(const std::string& url, const std::string& ca_file) {
  SmtpSettings settings;
  settings.url = url;
  settings.max_connections = 1;
  settings.connect_timeout = 5s;
  settings.transfer_timeout = 15s;
  settings.verify_tls = true;
  settings.ca_file = ca_file;
  return settings;
}

// Sends one message and waits for its outcome (bounded: the sender's own timeouts end it
// well before).
SendResult send_one(const SmtpSettings& settings, const std::string& marker) {
  std::mutex mutex;
  std::condition_variable done;
  std::optional<SendResult> outcome;
  {
    SmtpSender sender(settings);
    sender.send(SmtpEnvelope{"sender@example.com", "user@example.org",
                             "From: sender@example.com\r\nTo: user@example.org\r\nSubject: " +
                                 marker + "\r\n\r\nbody of " + marker + "\r\n"},
                [&](SendResult result) {
                  const std::lock_guard lock(mutex);
                  outcome = std::move(result);
                  done.notify_all();
                });
    std::unique_lock lock(mutex);
    done.wait_for(lock, 30s, [&] { return outcome.has_value(); });
  }
  REQUIRE(outcome.has_value());
  return *outcome;
}

bool mail_command_seen(const TlsSmtpServer& server) {
  for (const auto& line : server.commands()) {
    if (line.rfind("MAIL FROM", 0) == 0 || line.rfind("RCPT TO", 0) == 0 || line == "DATA") {
      return true;
    }
  }
  return false;
}

// The client aborts its handshake before the server thread records it: wait a little.
bool wait_for_failed_handshake(const TlsSmtpServer& server) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (server.failed_handshakes() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  return server.failed_handshakes() > 0;
}

void check_refused_before_sending(const SendResult& result, const TlsSmtpServer& server) {
  CAPTURE(result.detail);
  CHECK(result.outcome == SendOutcome::transient);
  CHECK(result.provider_fault);
  CHECK(result.nothing_sent);
  CHECK(server.messages().empty());
  CHECK_FALSE(mail_command_seen(server));
  CHECK(server.logins().empty());  // the URL's credentials never went out
}

// The server's URL with credentials, as SMTP_URL carries them.
std::string with_login(const std::string& url) {
  const auto scheme_end = url.find("://") + 3;
  return url.substr(0, scheme_end) + "mailer:" + "S3cret%40pw" + "@" + url.substr(scheme_end);
}

}  // namespace

TEST_CASE("tls smtp: STARTTLS with a trusted CA delivers over TLS", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::starttls, ca.issue({"localhost"}));
  auto settings = tls_settings(server.url(), ca.ca_file());
  settings.require_tls = true;
  const auto result = send_one(settings, "starttls-trusted");
  CAPTURE(result.detail);
  REQUIRE(result.outcome == SendOutcome::delivered);
  CHECK_THAT(result.detail, Catch::StartsWith("250"));
  const auto mails = server.messages();
  REQUIRE(mails.size() == 1);
  CHECK(mails[0].over_tls);
  CHECK_THAT(mails[0].mail_from, Catch::StartsWith("<sender@example.com>"));
  CHECK(mails[0].rcpt_to == "<user@example.org>");
  CHECK_THAT(mails[0].data, Catch::Contains("body of starttls-trusted\r\n"));
  const auto commands = server.commands();
  CHECK(std::find(commands.begin(), commands.end(), "STARTTLS") != commands.end());
  CHECK(server.failed_handshakes() == 0);
}

TEST_CASE("tls smtp: credentials in the URL go out only inside TLS", "[tls][smtp]") {
  const auto mode = GENERATE(SmtpTls::starttls, SmtpTls::implicit);
  CAPTURE(mode == SmtpTls::implicit ? "smtps" : "starttls");
  TestCa ca;
  TlsSmtpServer server(mode, ca.issue({"localhost"}));
  auto settings = tls_settings(with_login(server.url()), ca.ca_file());
  settings.require_tls = mode == SmtpTls::starttls;
  const auto result = send_one(settings, "with-login");
  CAPTURE(result.detail);
  REQUIRE(result.outcome == SendOutcome::delivered);
  const auto logins = server.logins();
  REQUIRE(logins.size() == 1);
  CHECK(logins[0].user == "mailer");
  CHECK(logins[0].password == "S3cret@pw");  // percent-decoded by libcurl
  CHECK(logins[0].over_tls);
  CHECK_THAT(result.detail, !Catch::Contains("S3cret"));
}

TEST_CASE("tls smtp: with an untrusted CA the URL's credentials are never sent", "[tls][smtp]") {
  TestCa server_ca("server's CA");
  TestCa trusted_ca("another CA");
  TlsSmtpServer server(SmtpTls::starttls, server_ca.issue({"localhost"}));
  auto settings = tls_settings(with_login(server.url()), trusted_ca.ca_file());
  settings.require_tls = true;
  const auto result = send_one(settings, "login-untrusted");
  check_refused_before_sending(result, server);
  CHECK_THAT(result.detail, !Catch::Contains("S3cret"));
}

TEST_CASE("tls smtp: STARTTLS is used when offered even without require_tls", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::starttls, ca.issue({"localhost"}));
  const auto result = send_one(tls_settings(server.url(), ca.ca_file()), "starttls-try");
  REQUIRE(result.outcome == SendOutcome::delivered);
  REQUIRE(server.messages().size() == 1);
  CHECK(server.messages()[0].over_tls);
}

TEST_CASE("tls smtp: smtps:// with a trusted CA delivers over TLS", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::implicit, ca.issue({"localhost"}));
  REQUIRE_THAT(server.url(), Catch::StartsWith("smtps://"));
  const auto result = send_one(tls_settings(server.url(), ca.ca_file()), "smtps-trusted");
  CAPTURE(result.detail);
  REQUIRE(result.outcome == SendOutcome::delivered);
  const auto mails = server.messages();
  REQUIRE(mails.size() == 1);
  CHECK(mails[0].over_tls);
  CHECK_THAT(mails[0].data, Catch::Contains("body of smtps-trusted\r\n"));
}

TEST_CASE("tls smtp: a server certificate from an untrusted CA is refused and nothing is sent",
          "[tls][smtp]") {
  const auto mode = GENERATE(SmtpTls::starttls, SmtpTls::implicit);
  CAPTURE(mode == SmtpTls::implicit ? "smtps" : "starttls");
  TestCa server_ca("server's CA");
  TestCa trusted_ca("another CA");
  TlsSmtpServer server(mode, server_ca.issue({"localhost"}));
  auto settings = tls_settings(server.url(), trusted_ca.ca_file());
  settings.require_tls = mode == SmtpTls::starttls;
  const auto result = send_one(settings, "untrusted");
  check_refused_before_sending(result, server);
  CHECK_THAT(result.detail, Catch::Contains("certificate", Catch::CaseSensitive::No));
  CHECK(wait_for_failed_handshake(server));
}

TEST_CASE("tls smtp: the system CAs alone do not trust a private CA", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::implicit, ca.issue({"localhost"}));
  const auto result = send_one(tls_settings(server.url(), ""), "no-ca-file");
  check_refused_before_sending(result, server);
}

TEST_CASE("tls smtp: a certificate for another host name is refused, verify_tls=false takes it",
          "[tls][smtp]") {
  const auto mode = GENERATE(SmtpTls::starttls, SmtpTls::implicit);
  CAPTURE(mode == SmtpTls::implicit ? "smtps" : "starttls");
  TestCa ca;
  // Names localhost only; the client connects by address.
  TlsSmtpServer server(mode, ca.issue({"localhost"}));
  auto settings = tls_settings(server.url("127.0.0.1"), ca.ca_file());
  settings.require_tls = true;
  const auto refused = send_one(settings, "wrong-name");
  check_refused_before_sending(refused, server);

  // The same server, CA and address without verification: the name was the only problem.
  settings.verify_tls = false;
  const auto accepted = send_one(settings, "unverified");
  CAPTURE(accepted.detail);
  CHECK(accepted.outcome == SendOutcome::delivered);
  REQUIRE(server.messages().size() == 1);
  CHECK(server.messages()[0].over_tls);
}

TEST_CASE("tls smtp: require_tls refuses a server that offers no STARTTLS", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::none, ca.issue({"localhost"}));
  auto settings = tls_settings(server.url(), ca.ca_file());
  settings.require_tls = true;
  const auto refused = send_one(settings, "cleartext-refused");
  check_refused_before_sending(refused, server);
  CHECK(server.connections() >= 1);  // it did talk to the server, and stopped at EHLO

  // Without require_tls the same server gets the message in clear: that is what the
  // setting is for.
  settings.require_tls = false;
  const auto sent = send_one(settings, "cleartext-allowed");
  CHECK(sent.outcome == SendOutcome::delivered);
  REQUIRE(server.messages().size() == 1);
  CHECK_FALSE(server.messages()[0].over_tls);
}

TEST_CASE("tls smtp: a CA file that does not exist refuses every send", "[tls][smtp]") {
  TestCa ca;
  TlsSmtpServer server(SmtpTls::implicit, ca.issue({"localhost"}));
  const auto result = send_one(tls_settings(server.url(), ca.ca_file() + ".missing"), "no-file");
  check_refused_before_sending(result, server);
}

TEST_CASE("tls smtp: an envelope address with a control byte is refused before connecting",
          "[smtp][security]") {
  using namespace std::string_literals;
  TestCa ca;
  TlsSmtpServer server(SmtpTls::none, ca.issue({"localhost"}));
  for (const auto& to : {"victim@example.org\0@other.example"s, "a@example.org\r\nRCPT TO:<b@x>"s,
                         "a@example.org\x7f"s, "<a@example.org>"s}) {
    CAPTURE(to);
    std::mutex mutex;
    std::condition_variable done;
    std::optional<SendResult> outcome;
    {
      SmtpSender sender(tls_settings(server.url(), ca.ca_file()));
      sender.send(SmtpEnvelope{"sender@example.com", to, "Subject: x\r\n\r\nx\r\n"},
                  [&](SendResult result) {
                    const std::lock_guard lock(mutex);
                    outcome = std::move(result);
                    done.notify_all();
                  });
      std::unique_lock lock(mutex);
      done.wait_for(lock, 10s, [&] { return outcome.has_value(); });
    }
    REQUIRE(outcome.has_value());
    CHECK(outcome->outcome == SendOutcome::transient);
    CHECK(outcome->nothing_sent);
    CHECK_FALSE(outcome->provider_fault);  // our input, not the provider's fault
    CHECK_THAT(outcome->detail, Catch::Contains("invalid envelope address"));
    // The quoted address cannot break a log line.
    CHECK(outcome->detail.find_first_of(std::string("\r\n\0", 3)) == std::string::npos);
  }
  CHECK(server.connections() == 0);
}
