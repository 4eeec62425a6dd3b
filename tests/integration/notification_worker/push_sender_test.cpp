// PushSender against the fake FCM-style provider over real loopback HTTP: the request shape,
// what each answer comes to, the per-notification aggregate, and failover per token.

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "detail/asio.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_push_provider.hpp"
#include "provider_chain.hpp"
#include "push_sender.hpp"

using namespace std::chrono_literals;
using notifs::fakes::FakePushProvider;
using notifs::fakes::PushReply;
using notifs::worker::ProviderChain;
using notifs::worker::PushDelivery;
using notifs::worker::PushMessage;
using notifs::worker::PushResult;
using notifs::worker::PushSender;
using notifs::worker::PushSenderSettings;
using notifs::worker::SendOutcome;
using notifs::worker::TokenOutcome;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr const char* kProviderToken = "push-secret-token";

PushSenderSettings settings_for(const std::string& url, std::uint32_t max_attempts = 3) {
  PushSenderSettings settings;
  settings.name = "fcm-test";
  settings.url = url;
  settings.token = kProviderToken;
  settings.client.connect_timeout = 1000ms;
  settings.client.attempt_timeout = 2000ms;
  settings.client.deadline = 5000ms;
  settings.client.max_attempts = max_attempts;
  settings.client.backoff = {std::chrono::milliseconds(5), std::chrono::milliseconds(20), 2.0};
  settings.client.retry_budget = {1000.0, 0.1};
  // The client's own breaker stays out of these tests; the chain test has its own breakers.
  settings.client.breaker.window_size = 1000;
  settings.client.breaker.minimum_calls = 1000;
  return settings;
}

std::shared_ptr<PushMessage> message_for(std::vector<std::string> tokens) {
  auto message = std::make_shared<PushMessage>();
  message->notification_id = "7d4a1f2e-0000-4000-8000-000000000001";
  message->tokens = std::move(tokens);
  message->title = "Order shipped";
  message->body = "Grüße, Zoë: your parcel is on its way";
  message->data = {{"order_id", "42"}, {"deep_link", "app://orders/42"}};
  return message;
}

PushResult send_all_and_wait(PushSender& sender, std::shared_ptr<const PushMessage> message) {
  std::promise<PushResult> promise;
  auto future = promise.get_future();
  sender.send_all(std::move(message), [&promise](PushResult result) { promise.set_value(std::move(result)); });
  REQUIRE(future.wait_for(30s) == std::future_status::ready);
  return future.get();
}

const TokenOutcome& outcome_of(const PushResult& result, const std::string& token) {
  for (const auto& report : result.tokens) {
    if (report.token == token) return report.outcome;
  }
  FAIL("no outcome for token " << token);
  throw std::logic_error("unreachable");
}

// A port nobody listens on: bound, read back and released.
std::uint16_t closed_port() {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::acceptor acceptor(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acceptor.local_endpoint().port();
  acceptor.close();
  return port;
}

}  // namespace

TEST_CASE("worker push sends the FCM v1 request with the bearer token and reports delivered") {
  FakePushProvider provider("notifs-test");
  PushSender sender(settings_for(provider.url()));
  auto message = message_for({"device-token-1"});
  message->data["notification_id"] = "spoofed";  // ours wins

  const auto result = send_all_and_wait(sender, message);
  CHECK(result.result.outcome == SendOutcome::delivered);
  CHECK(result.result.detail == "delivered to 1 of 1 tokens");
  REQUIRE(result.tokens.size() == 1);
  CHECK(result.tokens[0].outcome.result.detail == "projects/notifs-test/messages/1");
  CHECK_FALSE(result.tokens[0].outcome.unregistered);

  const auto requests = provider.requests();
  REQUIRE(requests.size() == 1);
  const auto& request = requests[0];
  CHECK(request.method == "POST");
  CHECK(request.target == "/v1/projects/notifs-test/messages:send");
  CHECK(request.headers.get("Authorization") == std::string("Bearer ") + kProviderToken);
  REQUIRE(request.headers.get("Content-Type"));
  CHECK(request.headers.get("Content-Type")->find("application/json") == 0);
  CHECK(request.headers.contains("X-Request-ID"));

  const auto body = nlohmann::json::parse(request.body);
  const nlohmann::json expected = {
      {"message",
       {{"token", "device-token-1"},
        {"notification", {{"title", "Order shipped"}, {"body", "Grüße, Zoë: your parcel is on its way"}}},
        {"data",
         {{"deep_link", "app://orders/42"},
          {"notification_id", "7d4a1f2e-0000-4000-8000-000000000001"},
          {"order_id", "42"}}}}}};
  CHECK(body == expected);
}

TEST_CASE("worker push waits out Retry-After on 429 then delivers") {
  FakePushProvider provider;
  provider.push(PushReply::rate_limited("1"));
  PushSender sender(settings_for(provider.url()));

  const auto started = SteadyClock::now();
  const auto result = send_all_and_wait(sender, message_for({"device-token-1"}));
  const auto waited = SteadyClock::now() - started;

  CHECK(result.result.outcome == SendOutcome::delivered);
  CHECK(provider.request_count() == 2);
  // The second attempt came after the provider's Retry-After, not after the short backoff.
  CHECK(waited >= 950ms);
  const auto requests = provider.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].body == requests[1].body);
}

TEST_CASE("worker push reports a 429 that outlasts the deadline as transient, not a provider fault") {
  FakePushProvider provider;
  provider.set_default(PushReply::rate_limited("30"));
  PushSender sender(settings_for(provider.url()));

  const auto result = send_all_and_wait(sender, message_for({"device-token-1"}));
  CHECK(result.result.outcome == SendOutcome::transient);
  CHECK_FALSE(result.result.provider_fault);
  CHECK(result.tokens[0].outcome.result.detail.find("HTTP 429 QUOTA_EXCEEDED") == 0);
  CHECK(provider.request_count() == 1);
}

TEST_CASE("worker push reports a persistent 500 as a transient provider fault") {
  FakePushProvider provider;
  provider.set_default(PushReply::server_error(500));
  PushSender sender(settings_for(provider.url(), 3));

  const auto result = send_all_and_wait(sender, message_for({"device-token-1"}));
  CHECK(result.result.outcome == SendOutcome::transient);
  CHECK(result.result.provider_fault);
  CHECK(result.tokens[0].outcome.result.detail.find("HTTP 500 INTERNAL") == 0);
  CHECK(result.pending_tokens() == std::vector<std::string>{"device-token-1"});
  CHECK(result.unregistered_tokens().empty());
  CHECK(provider.request_count() == 3);  // the client's attempts, then it gave up
}

TEST_CASE("worker push reports an unregistered token for removal") {
  FakePushProvider provider;
  provider.push(PushReply::unregistered());
  PushSender sender(settings_for(provider.url()));

  const auto result = send_all_and_wait(sender, message_for({"stale-token"}));
  CHECK(result.result.outcome == SendOutcome::permanent);
  CHECK_FALSE(result.result.provider_fault);
  CHECK(result.result.detail.find("UNREGISTERED") != std::string::npos);
  CHECK(outcome_of(result, "stale-token").unregistered);
  CHECK(result.unregistered_tokens() == std::vector<std::string>{"stale-token"});
  CHECK(result.pending_tokens().empty());
  CHECK(provider.request_count() == 1);  // a 404 is not retried
}

TEST_CASE("worker push treats 400 INVALID_ARGUMENT as permanent") {
  FakePushProvider provider;
  provider.push(PushReply::invalid_argument("Invalid value at 'message.data[0].value'"));
  PushSender sender(settings_for(provider.url()));

  const auto result = send_all_and_wait(sender, message_for({"device-token-1"}));
  CHECK(result.result.outcome == SendOutcome::permanent);
  CHECK_FALSE(result.result.provider_fault);
  CHECK(result.result.detail ==
        "HTTP 400 INVALID_ARGUMENT: Invalid value at 'message.data[0].value'");
  CHECK_FALSE(result.tokens[0].outcome.unregistered);
  CHECK(result.unregistered_tokens().empty());
  CHECK(provider.request_count() == 1);
}

TEST_CASE("worker push aggregates several tokens with mixed answers and retries only the pending ones") {
  FakePushProvider provider;
  provider.script_for_token("tok-ok", PushReply::ok());
  provider.script_for_token("tok-gone", PushReply::unregistered());
  provider.script_for_token("tok-bad", PushReply::invalid_argument("The registration token is not valid"));
  for (int i = 0; i < 3; ++i) provider.script_for_token("tok-down", PushReply::server_error(503));
  PushSender sender(settings_for(provider.url(), 3));

  // Rule: any token still transient -> the notification is transient, to be sent again to
  // those tokens only.
  const auto first = send_all_and_wait(sender, message_for({"tok-ok", "tok-gone", "tok-bad", "tok-down"}));
  CHECK(first.result.outcome == SendOutcome::transient);
  CHECK(first.result.provider_fault);
  CHECK(first.result.detail.find("1 of 4 tokens pending (1 unregistered)") == 0);
  REQUIRE(first.tokens.size() == 4);
  CHECK(first.tokens[0].token == "tok-ok");  // reports keep the message's order
  CHECK(outcome_of(first, "tok-ok").result.outcome == SendOutcome::delivered);
  CHECK(outcome_of(first, "tok-bad").result.outcome == SendOutcome::permanent);
  CHECK(first.pending_tokens() == std::vector<std::string>{"tok-down"});
  CHECK(first.unregistered_tokens() == std::vector<std::string>{"tok-gone"});

  // The retry carries the pending token only: the devices that got it do not get it twice.
  auto retry = message_for(first.pending_tokens());
  const auto second = send_all_and_wait(sender, retry);
  CHECK(second.result.outcome == SendOutcome::delivered);
  CHECK(provider.request_count("tok-ok") == 1);
  CHECK(provider.request_count("tok-down") == 4);

  // Rule: nothing pending and at least one delivered -> delivered, the rest in the detail.
  provider.script_for_token("tok-gone", PushReply::unregistered());
  provider.script_for_token("tok-bad", PushReply::invalid_argument("The registration token is not valid"));
  const auto third = send_all_and_wait(sender, message_for({"tok-bad", "tok-ok", "tok-gone"}));
  CHECK(third.result.outcome == SendOutcome::delivered);
  CHECK(third.result.detail == "delivered to 1 of 3 tokens (1 unregistered)");
  CHECK(third.unregistered_tokens() == std::vector<std::string>{"tok-gone"});

  // Rule: every token permanent -> permanent with the first token's reason.
  provider.script_for_token("tok-gone", PushReply::unregistered());
  provider.script_for_token("tok-bad", PushReply::invalid_argument("The registration token is not valid"));
  const auto fourth = send_all_and_wait(sender, message_for({"tok-bad", "tok-gone"}));
  CHECK(fourth.result.outcome == SendOutcome::permanent);
  CHECK(fourth.result.detail ==
        "all 2 tokens failed (1 unregistered), first: HTTP 400 INVALID_ARGUMENT: The registration "
        "token is not valid");
}

TEST_CASE("worker push sends a token listed twice once") {
  FakePushProvider provider;
  PushSender sender(settings_for(provider.url()));
  const auto result = send_all_and_wait(sender, message_for({"tok-a", "tok-b", "tok-a"}));
  CHECK(result.result.outcome == SendOutcome::delivered);
  CHECK(result.tokens.size() == 2);
  CHECK(provider.request_count("tok-a") == 1);
  CHECK(provider.request_count() == 2);
}

TEST_CASE("worker push does not unregister tokens on a 404 that is not an FCM error") {
  FakePushProvider provider("notifs-test");
  // A misconfigured PUSH_PROVIDER_URL: the server answers 404 for the path, not for the
  // token. Removing every user's token on that would be a disaster.
  const std::string base = "http://127.0.0.1:" + std::to_string(provider.port());
  PushSender sender(settings_for(base + "/v1/projects/notifs-test/wrong:send"));

  const auto result = send_all_and_wait(sender, message_for({"tok-a"}));
  CHECK(result.result.outcome == SendOutcome::transient);
  CHECK(result.result.provider_fault);
  CHECK(result.unregistered_tokens().empty());
  CHECK(result.tokens[0].outcome.result.detail.find("HTTP 404") == 0);
  CHECK(provider.request_count() == 0);  // the route never matched
}

TEST_CASE("worker push reports a provider that refuses connections as a transient provider fault") {
  const auto url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1/projects/p/messages:send";
  PushSender sender(settings_for(url, 2));
  const auto result = send_all_and_wait(sender, message_for({"tok-a"}));
  CHECK(result.result.outcome == SendOutcome::transient);
  CHECK(result.result.provider_fault);
  CHECK(result.result.detail.find("push provider unreachable") != std::string::npos);
}

TEST_CASE("worker push refuses a provider URL without an endpoint path") {
  CHECK_THROWS_AS(PushSender(settings_for("http://127.0.0.1:9")), std::invalid_argument);
  CHECK_THROWS_AS(PushSender(settings_for("ftp://127.0.0.1:9/v1/send")), std::invalid_argument);
  CHECK_THROWS_AS(PushSender(settings_for("127.0.0.1:9/v1/send")), std::invalid_argument);
}

TEST_CASE("worker push fails over token by token through a provider chain and comes back") {
  FakePushProvider primary("primary");
  FakePushProvider secondary("secondary");
  primary.set_default(PushReply::server_error(503));
  PushSender first(settings_for(primary.url(), 1));
  PushSender second(settings_for(secondary.url(), 1));

  // The breakers run on a FakeClock: the test moves past open_duration without sleeping.
  notifs::fakes::FakeClock clock;
  notifs::messaging::resilience::CircuitBreakerSettings breaker;
  breaker.window_size = 4;
  breaker.minimum_calls = 2;
  breaker.failure_rate_threshold = 0.5;
  breaker.open_duration = 30s;
  breaker.half_open_probes = 1;
  using Chain = ProviderChain<PushDelivery, TokenOutcome>;
  Chain chain({{"primary", [&first](const PushDelivery& d, Chain::Callback cb) { first.send(d, std::move(cb)); }},
               {"secondary", [&second](const PushDelivery& d, Chain::Callback cb) { second.send(d, std::move(cb)); }}},
              breaker, clock);
  const auto send_through_chain = [&chain](std::shared_ptr<const PushMessage> message) {
    std::promise<PushResult> promise;
    auto future = promise.get_future();
    notifs::worker::send_to_each_token(
        std::move(message),
        [&chain](const PushDelivery& delivery, PushSender::Callback callback) {
          chain.send(delivery, std::move(callback));
        },
        [&promise](PushResult result) { promise.set_value(std::move(result)); });
    REQUIRE(future.wait_for(30s) == std::future_status::ready);
    return future.get();
  };

  // Two faults on the primary open its breaker.
  const auto failed = send_through_chain(message_for({"tok-1", "tok-2"}));
  CHECK(failed.result.outcome == SendOutcome::transient);
  CHECK(chain.statuses()[0].state == notifs::messaging::resilience::BreakerState::open);
  CHECK(chain.readiness(0).ok);  // the secondary still delivers

  // The retry of the pending tokens goes to the secondary.
  const auto retried = send_through_chain(message_for(failed.pending_tokens()));
  CHECK(retried.result.outcome == SendOutcome::delivered);
  CHECK(secondary.request_count() == 2);
  CHECK(primary.request_count() == 2);

  // The primary recovers; after open_duration its probe succeeds and traffic is back.
  primary.set_default(PushReply::ok());
  clock.advance(30s);
  const auto back = send_through_chain(message_for({"tok-3"}));
  CHECK(back.result.outcome == SendOutcome::delivered);
  CHECK(primary.request_count("tok-3") == 1);
  CHECK(secondary.request_count("tok-3") == 0);
  CHECK(chain.statuses()[0].state == notifs::messaging::resilience::BreakerState::closed);
}
