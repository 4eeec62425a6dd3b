// notification_worker end to end: notifications POSTed to the gateway come out of a real
// SMTP server or the fake push provider, or end in failed.queue with their reason, and the
// gateway's GET follows them (issue 6, "Tests"). Every part is real and on loopback:
// RabbitMQ, PostgreSQL, user_service, template_service, api_gateway, smtp-sink; the worker
// runs in-process (WorkerApp). worker_process_test.cpp runs the real binary.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <amqp.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "integration/notification_worker/tcp_gate.hpp"
#include "integration/notification_worker/worker_fixture.hpp"
#include "notifs/messaging/common/request_id.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using notifs::contract::Status;
using notifs::contract::StatusEvent;
using notifs::fakes::PushReply;
using notifs::gateway_test::GatewayFixture;
using notifs::gateway_test::GatewayOptions;
using notifs::gateway_test::unique_request_id;
using notifs::test_support::SmtpSink;
using notifs::test_support::TcpGate;
using notifs::worker_test::decode_quoted_printable;
using notifs::worker_test::decode_rfc2047;
using notifs::worker_test::emails_for;
using notifs::worker_test::multipart_parts;
using notifs::worker_test::parse_message;
using notifs::worker_test::wait_for_email;
using notifs::worker_test::WorkerFixture;

namespace amqp = notifs::messaging::amqp;

namespace {

std::string uuid() { return notifs::messaging::common::generate_uuid_v4(); }

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// "processing#1 retrying#1 ..." for assertions and their messages.
std::string describe(const std::vector<StatusEvent>& events) {
  std::string out;
  for (const auto& event : events) {
    out += (out.empty() ? "" : " ") + std::string(notifs::contract::to_string(event.status)) + "#" +
           std::to_string(event.attempt);
  }
  return out;
}

std::size_t count_status(const std::vector<StatusEvent>& events, Status status) {
  return static_cast<std::size_t>(std::count_if(
      events.begin(), events.end(), [&](const StatusEvent& event) { return event.status == status; }));
}

// The body of a MIME part as text, whichever transfer encoding it uses.
std::string part_text(const notifs::worker_test::ParsedMessage& part) {
  const auto encoding = lower(part.header("Content-Transfer-Encoding"));
  std::string text = encoding == "base64" ? notifs::worker_test::decode_base64(part.body)
                     : encoding == "quoted-printable" ? decode_quoted_printable(part.body)
                                                       : part.body;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// GET /ready of a worker: its HTTP status and each dependency by name.
std::pair<unsigned, std::map<std::string, json>> readiness(std::uint16_t port) {
  const auto response = notifs::tests::round_trip(port, notifs::tests::make_request("GET", "/ready"));
  REQUIRE(response);
  std::map<std::string, json> by_name;
  const auto body = json::parse(response->body, nullptr, false);
  INFO(response->body);
  REQUIRE(body.is_object());
  for (const auto& dependency : body["data"].value("dependencies", json::array())) {
    by_name[dependency.value("name", std::string())] = dependency;
  }
  return {response->status, by_name};
}

// A worker SMTP provider like the fixture's, at another URL.
notifs::worker::SmtpSettings smtp_at(const notifs::worker::WorkerSettings& settings, std::string url) {
  auto provider = settings.email.providers.at(0);
  provider.url = std::move(url);
  return provider;
}

std::string push_notification(WorkerFixture& fixture, const std::string& user_id) {
  return fixture.gateway().accept_notification(user_id, "push");
}

}  // namespace

TEST_CASE("worker e2e: an email is delivered with its headers, parts and encodings, and the gateway says delivered") {
  WorkerFixture fixture;
  fixture.start_worker("email");
  auto& gateway = fixture.gateway();
  const auto address = "zoe-" + uuid() + "@example.com";
  const auto user = gateway.create_user({{"name", "Zoë Ünal"}, {"email", address}});
  auto body = GatewayFixture::notification_body(user, unique_request_id(), "email");
  // Non-ASCII for the encodings; '&' because the HTML part escapes it and the subject and
  // text part must not.
  body["variables"]["name"] = "Zoë & Co";
  const auto id = gateway.accept(body)["notification_id"].get<std::string>();

  const auto data = fixture.wait_for_status(id, "delivered");
  CHECK(data["attempts"] == 1);
  const auto dump = wait_for_email(fixture.smtp(), id);
  CHECK(emails_for(fixture.smtp(), id).size() == 1);
  INFO(dump);

  const auto message = parse_message(dump);
  // The SMTP envelope (smtp-sink records MAIL FROM and RCPT TO).
  CHECK(contains(message.header("X-Mail-Args"), "<noreply@notifs.example>"));
  CHECK(contains(message.header("X-Rcpt-Args"), "<" + address + ">"));

  CHECK(message.header("From") == "Notifs Team <noreply@notifs.example>");
  const auto to = message.header("To");
  CHECK(to.starts_with("=?"));  // a non-ASCII display name travels as encoded-words
  CHECK(decode_rfc2047(to) == "Zoë Ünal <" + address + ">");
  const auto subject = message.header("Subject");
  CHECK(subject.starts_with("=?"));
  CHECK(decode_rfc2047(subject) == "Welcome Zoë & Co");
  // RFC 2047: an encoded-word is at most 75 characters.
  static const std::regex encoded_word(R"(=\?[^?]+\?[BbQq]\?[^?]*\?=)");
  for (auto it = std::sregex_iterator(subject.begin(), subject.end(), encoded_word);
       it != std::sregex_iterator(); ++it) {
    CHECK(it->length() <= 75);
  }
  CHECK(message.header("Message-ID") == "<" + id + "@notifs.example>");
  CHECK(message.count("Message-ID") == 1);
  static const std::regex date(
      R"((Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4})");
  CHECK(std::regex_match(message.header("Date"), date));
  CHECK(message.header("MIME-Version") == "1.0");
  CHECK(lower(message.header("Content-Type")).starts_with("multipart/alternative;"));

  const auto parts = multipart_parts(message);
  REQUIRE(parts.size() == 2);
  CHECK(lower(parts[0].header("Content-Type")).starts_with("text/plain"));
  CHECK(contains(lower(parts[0].header("Content-Type")), "charset=utf-8"));
  CHECK(part_text(parts[0]) == "Hello Zoë & Co, start at https://example.com/start");
  CHECK(lower(parts[1].header("Content-Type")).starts_with("text/html"));
  CHECK(contains(lower(parts[1].header("Content-Type")), "charset=utf-8"));
  CHECK(part_text(parts[1]) ==
        "<p>Hello Zoë &amp; Co, <a href=\"https://example.com/start\">start</a></p>");
  // 7-bit on the wire, lines within SMTP's limit.
  CHECK(std::all_of(dump.begin(), dump.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
  std::size_t longest = 0;
  for (std::size_t at = 0; at < dump.size();) {
    const auto end = std::min(dump.find('\n', at), dump.size());
    longest = std::max(longest, end - at);
    at = end + 1;
  }
  CHECK(longest <= 998);

  const auto events = fixture.status_events(id);
  CHECK(describe(events) == "processing#1 delivered#1");
  CHECK(fixture.recorded_sends("email", id) == 1);
}

TEST_CASE("worker e2e: a push is delivered as an FCM v1 request with the bearer token") {
  WorkerFixture fixture;
  fixture.start_worker("push");
  auto& gateway = fixture.gateway();
  const auto token = "device-" + uuid();
  const auto user = gateway.create_user({{"push_tokens", json::array({token})}});
  auto body = GatewayFixture::notification_body(user, unique_request_id(), "push");
  body["metadata"] = {{"campaign", "onboarding"}};
  const auto id = gateway.accept(body)["notification_id"].get<std::string>();

  const auto data = fixture.wait_for_status(id, "delivered");
  CHECK(data["attempts"] == 1);
  const auto requests = fixture.push_provider().requests();
  REQUIRE(requests.size() == 1);
  const auto& request = requests.front();
  CHECK(request.method == "POST");
  CHECK(request.target == "/v1/projects/fake-project/messages:send");
  CHECK(std::string(request.headers.get("Authorization").value_or("")) ==
        "Bearer push-provider-test-token");
  CHECK(contains(lower(std::string(request.headers.get("Content-Type").value_or(""))), "application/json"));
  const auto sent = json::parse(request.body);
  INFO(sent.dump());
  REQUIRE(sent.size() == 1);
  const auto& fcm = sent.at("message");
  CHECK(fcm.at("token") == token);
  CHECK(fcm.at("notification") == json({{"title", "Hi Ada"}, {"body", "You have 3 new messages"}}));
  CHECK(fcm.at("data").at("notification_id") == id);
  CHECK(fcm.at("data").at("campaign") == "onboarding");
  for (const auto& [key, value] : fcm.at("data").items()) {
    INFO(key);
    CHECK(value.is_string());  // FCM data values are strings
  }
  CHECK(describe(fixture.status_events(id)) == "processing#1 delivered#1");
  CHECK(fixture.recorded_sends("push", id) == 1);
}

TEST_CASE("worker e2e: transient push failures retry through the tiers and then deliver") {
  WorkerFixture fixture;
  // Each worker attempt is one provider call of 2 client attempts (the fixture's client):
  // four failures use up attempts 1 and 2, and attempt 3 (after tiers 1 and 2) delivers.
  fixture.start_worker("push");
  auto& gateway = fixture.gateway();
  const auto token = "device-" + uuid();
  auto& provider = fixture.push_provider();
  provider.script_for_token(token, PushReply::server_error(500));
  provider.script_for_token(token, PushReply::rate_limited("1"));
  provider.script_for_token(token, PushReply::server_error(503));
  provider.script_for_token(token, PushReply::server_error(500));
  const auto user = gateway.create_user({{"push_tokens", json::array({token})}});
  const auto id = push_notification(fixture, user);

  // The gateway shows the notification waiting in the tiers (each tier holds it for at
  // least 200 ms) before it ends delivered.
  std::vector<std::string> seen;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  json data;
  while (std::chrono::steady_clock::now() < deadline) {
    data = fixture.notification(id);
    const auto status = data["status"].get<std::string>();
    if (seen.empty() || seen.back() != status) seen.push_back(status);
    if (status == "delivered" || status == "failed") break;
    std::this_thread::sleep_for(15ms);
  }
  INFO(data.dump());
  REQUIRE(data["status"] == "delivered");
  CHECK(data["attempts"] == 3);
  CHECK(std::find(seen.begin(), seen.end(), "retrying") != seen.end());

  const auto events = fixture.status_events(id);
  CHECK(describe(events) ==
        "processing#1 retrying#1 processing#2 retrying#2 processing#3 delivered#3");
  for (const auto& event : events) {
    if (event.status == Status::retrying) {
      INFO(event.error);
      CHECK((contains(event.error, "HTTP 5") || contains(event.error, "HTTP 429")));
    }
  }
  CHECK(provider.request_count(token) == 5);
  const auto& dead = fixture.failed_messages(0, 0ms);
  CHECK(std::none_of(dead.begin(), dead.end(), [&](const amqp::Delivery& d) { return d.message_id == id; }));
  CHECK(fixture.recorded_sends("push", id) == 1);
}

TEST_CASE("worker e2e: an email waits in the retry tiers while its only SMTP server is down, then is delivered") {
  // Longer tiers than the default test topology (300 ms, 600 ms, 1.2 s, 2.4 s), so the
  // server comes back well before the attempts run out however slow the machine is.
  GatewayOptions options;
  options.topology = notifs::amqp_test::test_topology();
  options.topology->retry_tiers = 4;
  options.topology->retry_base_delay = 300ms;
  WorkerFixture fixture(options);
  TcpGate gate(fixture.smtp().port());  // refuses connections until opened
  auto settings = fixture.worker_settings("email");
  settings.email.providers = {smtp_at(settings, "smtp://127.0.0.1:" + std::to_string(gate.port()))};
  fixture.start_worker(std::move(settings));
  const auto user = fixture.gateway().create_user();
  const auto id = fixture.gateway().accept_notification(user);

  const auto retrying = fixture.wait_for_events(id, Status::retrying);
  const auto reason = std::find_if(retrying.begin(), retrying.end(),
                                   [](const auto& e) { return e.status == Status::retrying; })->error;
  INFO(reason);
  CHECK(!reason.empty());
  CHECK(emails_for(fixture.smtp(), id).empty());
  gate.open();

  const auto data = fixture.wait_for_status(id, "delivered");
  CHECK(data["attempts"].get<int>() > 1);
  CHECK(emails_for(fixture.smtp(), id).size() == 1);
  const auto events = fixture.status_events(id);
  INFO(describe(events));
  CHECK(count_status(events, Status::delivered) == 1);
  CHECK(count_status(events, Status::failed) == 0);
}

TEST_CASE("worker e2e: SMTP 550 on RCPT TO is permanent: failed.queue at once with the reason") {
  WorkerFixture fixture;
  SmtpSink refusing({"-f", "RCPT", "-B", "550 5.1.1 No such user"});
  auto settings = fixture.worker_settings("email");
  settings.email.providers = {smtp_at(settings, refusing.url())};
  fixture.start_worker(std::move(settings));
  const auto user = fixture.gateway().create_user();
  const auto id = fixture.gateway().accept_notification(user);

  const auto data = fixture.wait_for_status(id, "failed");
  INFO(data.dump());
  CHECK(data["attempts"] == 1);
  CHECK(contains(data["last_error"].get<std::string>(), "550"));
  const auto dead = fixture.failed_message(id);
  REQUIRE(dead);
  const auto reason = dead->headers.get_string(amqp::kFailureReasonHeader);
  REQUIRE(reason);
  CHECK(contains(*reason, "550"));
  CHECK(dead->headers.get_int(amqp::kAttemptHeader) == 1);
  CHECK(dead->headers.get_string(amqp::kOriginalQueueHeader) == fixture.gateway().email_queue());
  CHECK(describe(fixture.status_events(id)) == "processing#1 failed#1");
  CHECK(fixture.recorded_sends("email", id) == 0);
  CHECK(emails_for(refusing, id).empty());
}

TEST_CASE("worker e2e: push INVALID_ARGUMENT is permanent: failed.queue at once with the reason") {
  WorkerFixture fixture;
  fixture.start_worker("push");
  const auto token = "device-" + uuid();
  fixture.push_provider().script_for_token(
      token, PushReply::invalid_argument("The registration token is not a valid FCM registration token"));
  const auto user = fixture.gateway().create_user({{"push_tokens", json::array({token})}});
  const auto id = push_notification(fixture, user);

  const auto data = fixture.wait_for_status(id, "failed");
  INFO(data.dump());
  CHECK(data["attempts"] == 1);
  CHECK(contains(data["last_error"].get<std::string>(), "INVALID_ARGUMENT"));
  const auto dead = fixture.failed_message(id);
  REQUIRE(dead);
  const auto reason = dead->headers.get_string(amqp::kFailureReasonHeader);
  REQUIRE(reason);
  CHECK(contains(*reason, "INVALID_ARGUMENT"));
  CHECK(contains(*reason, "not a valid FCM registration token"));
  CHECK(describe(fixture.status_events(id)) == "processing#1 failed#1");
  CHECK(fixture.push_provider().request_count(token) == 1);  // permanent: not even the client retried
}

TEST_CASE("worker e2e: a template that misses a variable is permanent: failed.queue at once with the reason") {
  WorkerFixture fixture;
  fixture.start_worker("email");
  auto& gateway = fixture.gateway();
  const auto user = gateway.create_user();
  auto body = GatewayFixture::notification_body(user, unique_request_id(), "email");
  body["variables"] = {{"name", "Ada"}};  // the template also uses {{link}}
  const auto id = gateway.accept(body)["notification_id"].get<std::string>();

  const auto data = fixture.wait_for_status(id, "failed");
  INFO(data.dump());
  CHECK(data["attempts"] == 1);
  const auto error = data["last_error"].get<std::string>();
  CHECK(contains(error, "missing"));
  CHECK(contains(error, "link"));
  const auto dead = fixture.failed_message(id);
  REQUIRE(dead);
  const auto reason = dead->headers.get_string(amqp::kFailureReasonHeader);
  REQUIRE(reason);
  CHECK(contains(*reason, "link"));
  CHECK(describe(fixture.status_events(id)) == "processing#1 failed#1");
  CHECK(fixture.smtp().message_count() == 0);
}

// Found by tests/faults: while the worker's publisher reconnected, a permanent failure's
// `failed` event was not confirmed, the message was dead-lettered anyway, and the gateway
// showed the notification `queued` for good. Unconfirmed, the failure now takes a retry
// tier, and the next attempt reports it.
TEST_CASE("worker e2e: a permanent failure whose status event is not confirmed retries until it can be reported") {
  WorkerFixture fixture;
  fixture.start_worker("email");
  auto& gateway = fixture.gateway();
  const auto user = gateway.create_user();
  auto& connection = fixture.probe().connection();
  constexpr auto kChannel = notifs::amqp_test::BrokerProbe::kChannel;
  const std::string exchange = fixture.names().status_exchange();
  const std::string key(amqp::TopologyNames::kStatusRoutingKey);
  const std::vector<std::string> bound{fixture.names().status_queue(), exchange + ".tap"};
  // With nothing bound to notifications.status every event comes back unroutable: none is
  // confirmed.
  for (const auto& queue : bound) {
    amqp_queue_unbind(connection.state(), kChannel, amqp_cstring_bytes(queue.c_str()),
                      amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(key.c_str()),
                      amqp_empty_table);
    connection.check_last_reply("queue.unbind " + queue, kChannel);
  }
  auto body = GatewayFixture::notification_body(user, unique_request_id(), "email");
  body["variables"] = {{"name", "Ada"}};  // the template also uses {{link}}
  const auto id = gateway.accept(body)["notification_id"].get<std::string>();

  const auto tier = fixture.names().retry_queue("email", 1);
  REQUIRE(notifs::amqp_test::wait_until([&] { return fixture.probe().message_count(tier) == 1; },
                                        15s));
  CHECK(fixture.probe().message_count(fixture.names().failed_queue()) == 0);
  for (const auto& queue : bound) {
    amqp_queue_bind(connection.state(), kChannel, amqp_cstring_bytes(queue.c_str()),
                    amqp_cstring_bytes(exchange.c_str()), amqp_cstring_bytes(key.c_str()),
                    amqp_empty_table);
    connection.check_last_reply("queue.bind " + queue, kChannel);
  }

  const auto data = fixture.wait_for_status(id, "failed", 30s);
  INFO(data.dump());
  CHECK(data["attempts"] == 2);
  const auto dead = fixture.failed_message(id);
  REQUIRE(dead);
  const auto reason = dead->headers.get_string(amqp::kFailureReasonHeader);
  REQUIRE(reason);
  CHECK(contains(*reason, "link"));
  CHECK(fixture.smtp().message_count() == 0);
}

TEST_CASE("worker e2e: an UNREGISTERED push token is removed from the user in user_service") {
  WorkerFixture fixture;
  fixture.start_worker("push");
  auto& gateway = fixture.gateway();
  const auto live = "device-live-" + uuid();
  const auto dead = "device-dead-" + uuid();
  fixture.push_provider().script_for_token(dead, PushReply::unregistered());
  const auto user = gateway.create_user({{"push_tokens", json::array({live, dead})}});
  const auto tokens_of_user = [&] {
    const auto response = gateway.users().get("/api/v1/users/" + user);
    REQUIRE(response.status == 200);
    return response.json()["data"]["push_tokens"];
  };
  REQUIRE(tokens_of_user().size() == 2);

  const auto id = push_notification(fixture, user);
  // One device got it: the notification is delivered; the dead token is reported.
  fixture.wait_for_status(id, "delivered");
  json tokens;
  const bool removed = notifs::amqp_test::wait_until(
      [&] {
        tokens = tokens_of_user();
        return tokens == json::array({live});
      },
      10s, 50ms);
  INFO(tokens.dump());
  CHECK(removed);
  CHECK(fixture.push_provider().request_count(dead) == 1);
  CHECK(fixture.push_provider().request_count(live) == 1);
  const auto events = fixture.status_events(id);
  CHECK(describe(events) == "processing#1 delivered#1");
}

TEST_CASE("worker e2e: email fails over to the second SMTP server while the first refuses connections, and comes back") {
  WorkerFixture fixture;
  SmtpSink first_server;
  TcpGate first(first_server.port());  // refuses connections until opened
  auto& second = fixture.smtp();
  auto settings = fixture.worker_settings("email");
  const auto first_url = "smtp://127.0.0.1:" + std::to_string(first.port());
  settings.email.providers = {smtp_at(settings, first_url), smtp_at(settings, second.url())};
  // Opens after 2 failures of the last 4 and probes again after 1 s.
  settings.email.breaker = {4, 2, 0.5, 5000ms, 1000ms, 1};
  auto& worker = fixture.start_worker(std::move(settings));
  auto& gateway = fixture.gateway();
  const auto user = gateway.create_user();

  std::vector<std::string> during;
  for (int i = 0; i < 5; ++i) {
    during.push_back(gateway.accept_notification(user));
  }
  for (const auto& id : during) {
    fixture.wait_for_status(id, "delivered");
    CHECK(emails_for(second, id).size() == 1);
  }
  CHECK(first_server.message_count() == 0);
  {
    const auto [status, dependencies] = readiness(worker.port());
    INFO(nlohmann::json(dependencies).dump());
    CHECK(status == 200);  // the second provider carries the traffic
    REQUIRE(dependencies.count(first_url) == 1);
    CHECK(dependencies.at(first_url)["state"] == "open");
    REQUIRE(dependencies.count(second.url()) == 1);
    CHECK(dependencies.at(second.url())["state"] == "closed");
  }

  first.open();
  // Once the breaker's open time is over a probe goes to the first server; when it
  // succeeds, traffic is back there.
  bool back = false;
  for (int i = 0; i < 40 && !back; ++i) {
    const auto id = gateway.accept_notification(user);
    fixture.wait_for_status(id, "delivered");
    back = !emails_for(first_server, id).empty();
    if (!back) std::this_thread::sleep_for(150ms);
  }
  REQUIRE(back);
  for (int i = 0; i < 4; ++i) {
    const auto id = gateway.accept_notification(user);
    fixture.wait_for_status(id, "delivered");
    CHECK(emails_for(first_server, id).size() == 1);
    CHECK(emails_for(second, id).empty());
  }
  const auto [status, dependencies] = readiness(worker.port());
  CHECK(status == 200);
  REQUIRE(dependencies.count(first_url) == 1);
  CHECK(dependencies.at(first_url)["state"] == "closed");
}

TEST_CASE("worker e2e: a redelivered message whose send is recorded is not sent again") {
  WorkerFixture fixture;
  auto& gateway = fixture.gateway();
  const auto user = gateway.create_user();
  const auto id = gateway.accept_notification(user);
  // The gateway's own message, taken off the queue before any worker runs, so the test
  // can deliver it twice (what the broker does after a worker dies before its ack).
  std::optional<amqp::Delivery> original;
  REQUIRE(notifs::amqp_test::wait_until([&] { return (original = fixture.probe().get(gateway.email_queue())).has_value(); },
                                        5s));
  REQUIRE(original->message_id == id);
  amqp::OutgoingMessage copy;
  copy.exchange = fixture.names().direct_exchange();
  copy.routing_key = "email";
  copy.body = original->body;
  copy.content_type = original->content_type;
  copy.message_id = original->message_id;
  copy.correlation_id = original->correlation_id;
  copy.priority = original->priority;
  copy.timestamp = original->timestamp;
  copy.headers = original->headers;

  fixture.probe().publish(copy);
  fixture.start_worker("email");
  fixture.wait_for_status(id, "delivered");
  wait_for_email(fixture.smtp(), id);
  REQUIRE(fixture.recorded_sends("email", id) == 1);

  fixture.probe().publish(copy);
  // The second delivery is acked with another 'delivered' event and nothing sent.
  const auto events = fixture.wait_for_events(id, Status::delivered, 2);
  INFO(describe(events));
  CHECK(count_status(events, Status::processing) == 1);
  CHECK(emails_for(fixture.smtp(), id).size() == 1);
  CHECK(fixture.smtp().message_count() == 1);
  CHECK(fixture.recorded_sends("email", id) == 1);
  CHECK(fixture.notification(id)["status"] == "delivered");
  CHECK(fixture.probe().message_count(gateway.email_queue()) == 0);
}

TEST_CASE("worker e2e: /ready lists the database, the broker, template_service and each provider's breaker") {
  WorkerFixture fixture;
  SmtpSink backup;
  auto email_settings = fixture.worker_settings("email");
  email_settings.email.providers.push_back(smtp_at(email_settings, backup.url()));
  auto& email = fixture.start_worker(std::move(email_settings));
  notifs::fakes::FakePushProvider backup_push;
  auto push_settings = fixture.worker_settings("push");
  auto second_push = push_settings.push.providers.at(0);
  second_push.name = "push-2";
  second_push.url = backup_push.url();
  second_push.client.name = "push-2";
  push_settings.push.providers.push_back(second_push);
  auto& push = fixture.start_worker(std::move(push_settings));

  for (const auto& [worker, providers] :
       {std::pair{&email, std::vector<std::string>{fixture.smtp().url(), backup.url()}},
        std::pair{&push, std::vector<std::string>{"push-1", "push-2"}}}) {
    const auto [status, dependencies] = readiness(worker->port());
    INFO(json(dependencies).dump());
    CHECK(status == 200);
    for (const auto* name : {"postgres", "rabbitmq", "template_service"}) {
      INFO(name);
      REQUIRE(dependencies.count(name) == 1);
      CHECK(dependencies.at(name)["ok"] == true);
    }
    for (const auto& name : providers) {
      INFO(name);
      REQUIRE(dependencies.count(name) == 1);
      CHECK(dependencies.at(name)["ok"] == true);
      CHECK(dependencies.at(name)["state"] == "closed");
    }
    CHECK(dependencies.size() == 3 + providers.size());
  }
}

TEST_CASE("worker e2e: an invalid message body goes to failed.queue and the worker goes on") {
  WorkerFixture fixture;
  fixture.start_worker("email");
  auto& probe = fixture.probe();
  const auto direct = fixture.names().direct_exchange();
  probe.publish_raw(direct, "email", "this is not JSON {");
  amqp::OutgoingMessage incomplete;
  incomplete.exchange = direct;
  incomplete.routing_key = "email";
  incomplete.message_id = uuid();
  incomplete.body = json{{"notification_id", incomplete.message_id}, {"notification_type", "email"}}.dump();
  incomplete.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{1});
  probe.publish(incomplete);

  const auto& dead = fixture.failed_messages(2);
  REQUIRE(dead.size() == 2);
  for (const auto& message : dead) {
    INFO(message.body);
    const auto reason = message.headers.get_string(amqp::kFailureReasonHeader);
    REQUIRE(reason);
    CHECK(!reason->empty());
    CHECK(message.headers.get_string(amqp::kOriginalQueueHeader) == fixture.gateway().email_queue());
  }
  const auto structured = std::find_if(dead.begin(), dead.end(), [&](const amqp::Delivery& d) {
    return d.message_id == incomplete.message_id;
  });
  REQUIRE(structured != dead.end());
  CHECK(contains(*structured->headers.get_string(amqp::kFailureReasonHeader), "invalid message"));
  CHECK(structured->body == incomplete.body);  // dead letters keep the body as it came

  const auto user = fixture.gateway().create_user();
  const auto id = fixture.gateway().accept_notification(user);
  fixture.wait_for_status(id, "delivered");
  CHECK(fixture.smtp().message_count() == 1);
}
