// SmtpSender against a real SMTP server (Postfix's smtp-sink) on loopback: what arrives,
// how many connections it takes, and how each kind of refusal is classified.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "email_message.hpp"
#include "integration/notification_worker/smtp_sink.hpp"
#include "integration/notification_worker/tcp_gate.hpp"
#include "provider_chain.hpp"
#include "send_result.hpp"
#include "smtp_sender.hpp"

using namespace std::chrono_literals;
using notifs::test_support::free_loopback_port;
using notifs::test_support::SilentServer;
using notifs::test_support::SmtpSink;
using notifs::test_support::TcpGate;
using notifs::worker::SendOutcome;
using notifs::worker::SendResult;
using notifs::worker::SmtpEnvelope;
using notifs::worker::SmtpSender;
using notifs::worker::SmtpSettings;

namespace {

// Results arrive on the sender thread; the test thread waits for them here.
class Results {
 public:
  SmtpSender::Callback callback() {
    return [this](SendResult result) {
      const std::lock_guard lock(mutex_);
      results_.push_back(std::move(result));
      arrived_.notify_all();
    };
  }

  std::vector<SendResult> wait_for(std::size_t count, std::chrono::milliseconds within = 20s) {
    std::unique_lock lock(mutex_);
    arrived_.wait_for(lock, within, [&] { return results_.size() >= count; });
    return results_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<SendResult> results_;
};

SmtpSettings settings_for(const std::string& url) {
  SmtpSettings settings;
  settings.url = url;
  settings.max_connections = 4;
  settings.connect_timeout = 2s;
  settings.transfer_timeout = 10s;
  return settings;
}

SmtpEnvelope simple_envelope(const std::string& marker) {
  return SmtpEnvelope{"sender@example.com", "user@example.org",
                      "From: sender@example.com\r\nTo: user@example.org\r\nSubject: " + marker +
                          "\r\n\r\nbody of " + marker + "\r\n"};
}

std::string with_lf(std::string text) {
  std::string out;
  for (const char c : text) {
    if (c != '\r') {
      out += c;
    }
  }
  return out;
}

// smtp-sink opens its capture file at MAIL FROM and may leave it behind, holding only its
// own X- headers, when a later command is refused: count the files that hold a message.
std::size_t messages_with_content(const SmtpSink& sink) {
  const auto dumps = sink.messages(0, 0ms);
  return static_cast<std::size_t>(std::count_if(dumps.begin(), dumps.end(), [](const std::string& d) {
    return d.find("\nSubject: ") != std::string::npos;
  }));
}

SendResult send_one(const std::string& url, SmtpEnvelope envelope,
                    std::chrono::milliseconds transfer_timeout = 10s) {
  auto settings = settings_for(url);
  settings.transfer_timeout = transfer_timeout;
  Results results;
  SmtpSender sender(settings);
  sender.send(std::move(envelope), results.callback());
  const auto got = results.wait_for(1);
  REQUIRE(got.size() == 1);
  return got.front();
}

}  // namespace

TEST_CASE("worker smtp delivers a built message and the sink receives its exact bytes") {
  SmtpSink sink;
  notifs::worker::EmailContent content;
  content.from = {"Notifs", "noreply@notifs.example"};
  content.to = {"Zoë Café", "zoe@example.org"};
  content.subject = "Zoë — café ✓";
  // A line starting with a dot checks that dot-stuffing survives the round trip.
  content.text_body = "Hello Zoë,\n.hidden line\nbye\n";
  content.html_body = "<p>Hello Zoë</p>\n";
  content.notification_id = "0d5c6a2e-2f7e-4e0b-9d7c-6c2f5c1a9b10";
  content.date = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  const auto bytes = notifs::worker::build_email_message(content);

  const auto result = send_one(sink.url(), SmtpEnvelope{content.from.address, content.to.address, bytes});
  CHECK(result.outcome == SendOutcome::delivered);
  CHECK(result.detail.starts_with("250"));
  CHECK_FALSE(result.provider_fault);

  const auto received = sink.messages(1);
  REQUIRE(received.size() == 1);
  const auto& dump = received.front();
  CHECK(dump.find("X-Mail-Args: <noreply@notifs.example>") != std::string::npos);
  CHECK(dump.find("X-Rcpt-Args: <zoe@example.org>") != std::string::npos);
  // Everything after smtp-sink's own Received header is our message, byte for byte (the
  // sink writes LF where the wire had CRLF, and ends the file with an empty line).
  const auto start = dump.find("\nFrom: ");
  REQUIRE(start != std::string::npos);
  CHECK(dump.substr(start + 1) == with_lf(bytes) + "\n");
  CHECK(dump.find("\n.hidden line\n") != std::string::npos);
  CHECK(dump.find("Message-ID: <0d5c6a2e-2f7e-4e0b-9d7c-6c2f5c1a9b10@notifs.example>") !=
        std::string::npos);
}

TEST_CASE("worker smtp sends many messages at once over reused connections") {
  SmtpSink sink;
  Results results;
  constexpr std::size_t kMessages = 200;
  {
    SmtpSender sender(settings_for(sink.url()));
    for (std::size_t i = 0; i < kMessages; ++i) {
      sender.send(simple_envelope("marker-" + std::to_string(i) + "-end"), results.callback());
    }
    const auto got = results.wait_for(kMessages, 60s);
    REQUIRE(got.size() == kMessages);
    const auto delivered = std::count_if(got.begin(), got.end(), [](const SendResult& r) {
      return r.outcome == SendOutcome::delivered;
    });
    CHECK(delivered == static_cast<long>(kMessages));
    if (delivered != static_cast<long>(kMessages)) {
      FAIL_CHECK("first failure: " << std::find_if(got.begin(), got.end(), [](const SendResult& r) {
                   return r.outcome != SendOutcome::delivered;
                 })->detail);
    }
  }
  const auto received = sink.messages(kMessages);
  REQUIRE(received.size() == kMessages);
  // The sender is gone, so its connections have ended: 200 messages over at most 4
  // sessions (the sink counts one per connection) means the connections were reused.
  std::size_t sessions = 0;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((sessions = sink.sessions_ended()) == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  CHECK(sessions >= 1);
  CHECK(sessions <= 4);
  std::vector<bool> seen(kMessages, false);
  for (const auto& dump : received) {
    const auto at = dump.find("Subject: marker-");
    REQUIRE(at != std::string::npos);
    const auto index = std::stoul(dump.substr(at + 16));
    REQUIRE(index < kMessages);
    CHECK_FALSE(seen[index]);
    seen[index] = true;
    CHECK(dump.find("body of marker-" + std::to_string(index) + "-end") != std::string::npos);
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
}

TEST_CASE("worker smtp runs several transactions at the same time") {
  // The sink waits 1 s before answering DATA. Eight messages over four connections take
  // about 2 s; one at a time they would take 8 s. The bound is generous on purpose.
  SmtpSink sink({"-w", "1"});
  Results results;
  SmtpSender sender(settings_for(sink.url()));
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    sender.send(simple_envelope("slow-" + std::to_string(i)), results.callback());
  }
  const auto got = results.wait_for(8);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  REQUIRE(got.size() == 8);
  for (const auto& result : got) {
    CHECK(result.outcome == SendOutcome::delivered);
  }
  CHECK(elapsed < 6s);
  CHECK(sink.messages(8).size() == 8);
}

TEST_CASE("worker smtp 550 on RCPT TO is a permanent failure, not a provider fault") {
  SmtpSink sink({"-f", "RCPT", "-B", "550 5.1.1 No such user"});
  const auto result = send_one(sink.url(), simple_envelope("nobody"));
  INFO("detail: " << result.detail);
  CHECK(result.outcome == SendOutcome::permanent);
  CHECK_FALSE(result.provider_fault);
  CHECK(result.detail.find("550 5.1.1 No such user") != std::string::npos);
  CHECK(result.detail.find("RCPT TO") != std::string::npos);
  CHECK(messages_with_content(sink) == 0);
}

TEST_CASE("worker smtp 5xx on MAIL FROM or DATA is permanent and names the command") {
  const auto [command, named] = GENERATE(table<std::string, std::string>(
      {{"MAIL", "MAIL FROM"}, {"DATA", "DATA"}}));
  SmtpSink sink({"-f", command, "-B", "554 5.7.1 Rejected by policy"});
  const auto result = send_one(sink.url(), simple_envelope("policy"));
  CHECK(result.outcome == SendOutcome::permanent);
  CHECK_FALSE(result.provider_fault);
  CHECK(result.detail.find("554 5.7.1 Rejected by policy") != std::string::npos);
  CHECK(result.detail.find(named) != std::string::npos);
  CHECK(messages_with_content(sink) == 0);
}

TEST_CASE("worker smtp 4xx on RCPT TO is transient, not a provider fault") {
  SmtpSink sink({"-r", "RCPT", "-b", "450 4.2.1 Mailbox busy"});
  const auto result = send_one(sink.url(), simple_envelope("busy"));
  CHECK(result.outcome == SendOutcome::transient);
  CHECK_FALSE(result.provider_fault);
  CHECK(result.detail.find("450 4.2.1 Mailbox busy") != std::string::npos);
  CHECK(messages_with_content(sink) == 0);
}

TEST_CASE("worker smtp 421 closing the session is a transient provider fault") {
  SmtpSink sink({"-Q", "MAIL"});
  const auto result = send_one(sink.url(), simple_envelope("closing"));
  CHECK(result.outcome == SendOutcome::transient);
  CHECK(result.provider_fault);
  CHECK(result.detail.find("421") != std::string::npos);
}

TEST_CASE("worker smtp connection refused is a transient provider fault") {
  const auto port = free_loopback_port();  // nothing listens there
  const auto result = send_one("smtp://127.0.0.1:" + std::to_string(port), simple_envelope("refused"));
  CHECK(result.outcome == SendOutcome::transient);
  CHECK(result.provider_fault);
  CHECK_FALSE(result.detail.empty());
}

TEST_CASE("worker smtp server that never answers times out as a transient provider fault") {
  SilentServer silent;
  const auto started = std::chrono::steady_clock::now();
  const auto result = send_one("smtp://127.0.0.1:" + std::to_string(silent.port()),
                               simple_envelope("silent"), 500ms);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(result.outcome == SendOutcome::transient);
  CHECK(result.provider_fault);
  CHECK(elapsed >= 400ms);  // it did wait for the server, not fail on something else
  CHECK(elapsed < 5s);      // and gave up near the configured 500 ms
}

TEST_CASE("worker smtp destruction fails queued sends and reports the started ones") {
  SilentServer silent;
  auto settings = settings_for("smtp://127.0.0.1:" + std::to_string(silent.port()));
  settings.max_connections = 1;
  settings.transfer_timeout = 1s;
  Results results;
  {
    SmtpSender sender(settings);
    sender.send(simple_envelope("started"), results.callback());
    REQUIRE(silent.wait_for_connection(5s));  // the first transaction holds the one slot
    sender.send(simple_envelope("queued-1"), results.callback());
    sender.send(simple_envelope("queued-2"), results.callback());
  }  // waits for the started one to time out; the queued two never start
  const auto got = results.wait_for(3, 0ms);  // the destructor has delivered every callback
  REQUIRE(got.size() == 3);
  const auto stopped = std::count_if(got.begin(), got.end(), [](const SendResult& r) {
    return r.outcome == SendOutcome::transient && !r.provider_fault &&
           r.detail == "smtp sender stopped";
  });
  CHECK(stopped == 2);
  const auto timed_out = std::count_if(got.begin(), got.end(), [](const SendResult& r) {
    return r.outcome == SendOutcome::transient && r.provider_fault;
  });
  CHECK(timed_out == 1);
}

TEST_CASE("worker smtp refuses URLs that are not SMTP") {
  CHECK_THROWS_AS(SmtpSender(settings_for("http://127.0.0.1:25")), std::invalid_argument);
  CHECK_THROWS_AS(SmtpSender(settings_for("not a url")), std::invalid_argument);
  SmtpSender sender(settings_for("smtps://user:secret@mail.example.com"));
  CHECK(sender.name() == "smtps://mail.example.com:465");
}

TEST_CASE("worker smtp says nothing was sent only while the server cannot have taken the message") {
  // Refused before anything was said, or refused at MAIL FROM: safe to send elsewhere.
  const auto refused = send_one("smtp://127.0.0.1:" + std::to_string(free_loopback_port()),
                                simple_envelope("refused"));
  CHECK(refused.provider_fault);
  CHECK(refused.nothing_sent);
  {
    SmtpSink closing({"-Q", "MAIL"});
    const auto result = send_one(closing.url(), simple_envelope("closing"));
    CHECK(result.provider_fault);
    CHECK(result.nothing_sent);
  }
  {
    SilentServer silent;  // never greets: the transaction never started
    const auto result = send_one("smtp://127.0.0.1:" + std::to_string(silent.port()),
                                 simple_envelope("silent"), 300ms);
    CHECK(result.provider_fault);
    CHECK(result.nothing_sent);
  }
  {
    // Cut after the final dot, without a reply: the server may have queued it.
    SmtpSink cut({"-q", "."});
    const auto result = send_one(cut.url(), simple_envelope("cut"));
    INFO("detail: " << result.detail);
    CHECK(result.outcome == SendOutcome::transient);
    CHECK(result.provider_fault);
    CHECK_FALSE(result.nothing_sent);
  }
  {
    SmtpSink sink;
    const auto result = send_one(sink.url(), simple_envelope("fine"));
    CHECK(result.outcome == SendOutcome::delivered);
    CHECK_FALSE(result.nothing_sent);
  }
}

TEST_CASE("worker smtp fails over to the second server while the first refuses connections, and back") {
  using Chain = notifs::worker::ProviderChain<SmtpEnvelope>;
  using notifs::messaging::resilience::BreakerState;
  SmtpSink first_sink;
  SmtpSink second_sink;
  TcpGate first_port(first_sink.port());  // refuses until opened: the first server is down
  SmtpSender first(settings_for("smtp://127.0.0.1:" + std::to_string(first_port.port())));
  SmtpSender second(settings_for(second_sink.url()));

  notifs::messaging::resilience::CircuitBreakerSettings breaker;
  breaker.window_size = 4;
  breaker.minimum_calls = 2;
  breaker.failure_rate_threshold = 0.5;
  breaker.slow_call_threshold = 10s;
  breaker.open_duration = 300ms;
  breaker.half_open_probes = 1;
  const auto via = [](SmtpSender& sender) {
    return [&sender](const SmtpEnvelope& envelope, Chain::Callback callback) {
      sender.send(envelope, std::move(callback));
    };
  };
  Chain chain({{"first", via(first)}, {"second", via(second)}}, breaker);

  // Every message reaches the second server, the ones that tried the first included.
  constexpr std::size_t kMessages = 30;
  Results results;
  for (std::size_t i = 0; i < kMessages; ++i) {
    chain.send(simple_envelope("down-" + std::to_string(i) + "-end"), results.callback());
  }
  const auto got = results.wait_for(kMessages, 60s);
  REQUIRE(got.size() == kMessages);
  for (const auto& result : got) {
    INFO("detail: " << result.detail);
    CHECK(result.outcome == SendOutcome::delivered);
  }
  const auto on_second = second_sink.messages(kMessages);
  CHECK(on_second.size() == kMessages);
  std::vector<bool> seen(kMessages, false);
  for (const auto& dump : on_second) {
    const auto at = dump.find("Subject: down-");
    REQUIRE(at != std::string::npos);
    const auto index = std::stoul(dump.substr(at + 14));
    REQUIRE(index < kMessages);
    CHECK_FALSE(seen[index]);  // and none twice
    seen[index] = true;
  }
  CHECK(first_sink.message_count() == 0);
  CHECK(first_port.connections() == 0);
  CHECK(chain.statuses()[0].state != BreakerState::closed);

  // The first server is back: once its breaker's open time has passed, a message probes it
  // and the traffic returns. One message at a time, so the first connection the gate
  // accepts is the probe's.
  first_port.open();
  std::size_t probes = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (first_port.connections() == 0 && std::chrono::steady_clock::now() < deadline) {
    Results one;
    chain.send(simple_envelope("probe-" + std::to_string(probes++)), one.callback());
    const auto probe = one.wait_for(1, 20s);
    REQUIRE(probe.size() == 1);
    CHECK(probe.front().outcome == SendOutcome::delivered);
    if (first_port.connections() == 0) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(first_port.connections() > 0);
  CHECK(first_sink.messages(1).size() == 1);
  CHECK(chain.statuses()[0].state == BreakerState::closed);

  Results back;
  for (std::size_t i = 0; i < 10; ++i) {
    chain.send(simple_envelope("back-" + std::to_string(i)), back.callback());
  }
  const auto after = back.wait_for(10, 30s);
  REQUIRE(after.size() == 10);
  for (const auto& result : after) {
    CHECK(result.outcome == SendOutcome::delivered);
  }
  // Every message is on exactly one server: the probe and the last ten on the first, the
  // rest on the second.
  CHECK(first_sink.messages(11).size() == 11);
  CHECK(second_sink.messages(kMessages + probes - 1).size() == kMessages + probes - 1);
}
