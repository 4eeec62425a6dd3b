// POST /api/v1/notifications end to end: real gateway, user_service, template_service,
// RabbitMQ and PostgreSQL.

#include <amqp.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "amqp/message_codec.hpp"
#include "integration/api_gateway/gateway_fixture.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {
namespace {

using namespace std::chrono_literals;
namespace amqp = messaging::amqp;

// Delivery does not expose delivery_mode, so persistence is read here with a basic.get of
// our own on the probe's connection and channel.
struct Fetched {
  amqp::Delivery delivery;
  bool has_delivery_mode = false;
  std::uint8_t delivery_mode = 0;
};

std::optional<Fetched> fetch(amqp_test::BrokerProbe& probe, const std::string& queue) {
  auto& connection = probe.connection();
  amqp_connection_state_t state = connection.state();
  constexpr amqp_channel_t channel = amqp_test::BrokerProbe::kChannel;
  amqp_maybe_release_buffers(state);
  const amqp_rpc_reply_t reply =
      amqp_basic_get(state, channel, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/1);
  connection.check(reply, "basic.get " + queue, channel);
  if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
  REQUIRE(reply.reply.id == AMQP_BASIC_GET_OK_METHOD);
  const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
  std::string exchange = amqp::detail::to_string(ok->exchange);
  std::string routing_key = amqp::detail::to_string(ok->routing_key);
  const bool redelivered = ok->redelivered != 0;
  amqp_message_t message{};
  connection.check(amqp_read_message(state, channel, &message, 0), "read " + queue, channel);
  Fetched out;
  out.has_delivery_mode = (message.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0;
  out.delivery_mode = message.properties.delivery_mode;
  out.delivery = amqp::detail::decode_delivery(message.properties,
                                               amqp::detail::to_string(message.body),
                                               std::move(exchange), std::move(routing_key),
                                               redelivered);
  amqp_destroy_message(&message);
  return out;
}

bool is_valid_traceparent(const std::string& value) {
  static const std::regex pattern("00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}");
  std::smatch match;
  if (!std::regex_match(value, match, pattern)) return false;
  return match[1] != std::string(32, '0') && match[2] != std::string(16, '0');
}

std::string trace_id(const std::string& traceparent) { return traceparent.substr(3, 32); }
std::string span_id(const std::string& traceparent) { return traceparent.substr(36, 16); }

bool is_millisecond_timestamp(const std::string& text) {
  static const std::regex pattern(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  return std::regex_match(text, pattern);
}

// "YYYY-MM-DDTHH:MM:SS" of a time point, UTC.
std::string utc_seconds(std::chrono::system_clock::time_point at) {
  const std::time_t whole = std::chrono::system_clock::to_time_t(at);
  std::tm utc{};
  gmtime_r(&whole, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  return text;
}

std::set<std::string> keys_of(const nlohmann::json& object) {
  std::set<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.insert(key);
  return keys;
}

std::string unique_email() {
  return "intake-" + messaging::common::generate_uuid_v4() + "@example.com";
}

// The checks every message of the contract passes, whatever the channel.
void check_contract_properties(const Fetched& fetched, const std::string& notification_id,
                               const std::string& request_id, int priority,
                               std::chrono::system_clock::time_point before,
                               std::chrono::system_clock::time_point after) {
  const auto& delivery = fetched.delivery;
  CHECK(delivery.content_type == "application/json");
  CHECK(fetched.has_delivery_mode);
  CHECK(int{fetched.delivery_mode} == 2);
  CHECK(delivery.message_id == notification_id);
  CHECK(delivery.correlation_id == request_id);
  REQUIRE(delivery.priority.has_value());
  CHECK(int{*delivery.priority} == priority);
  REQUIRE(delivery.timestamp.has_value());
  // AMQP timestamps have whole seconds.
  CHECK(*delivery.timestamp >= std::chrono::floor<std::chrono::seconds>(before));
  CHECK(*delivery.timestamp <= after);
  const auto* attempt = delivery.headers.find(amqp::kAttemptHeader);
  REQUIRE(attempt != nullptr);
  REQUIRE(std::holds_alternative<std::int64_t>(*attempt));
  CHECK(std::get<std::int64_t>(*attempt) == 1);
  const auto traceparent = delivery.headers.get_string(amqp::kTraceparentHeader);
  REQUIRE(traceparent.has_value());
  CHECK(is_valid_traceparent(*traceparent));
}

TEST_CASE("gateway: an accepted email is confirmed, queued and answered 202",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto response =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto data = response.json()["data"];
  CHECK(data["status"] == "queued");
  CHECK(data["request_id"] == request_id);
  CHECK(data["notification_type"] == "email");

  const auto message = gateway.probe().get(gateway.email_queue());
  REQUIRE(message);
  CHECK(message->message_id == data["notification_id"]);
  CHECK(message->correlation_id == request_id);
  const auto body = nlohmann::json::parse(message->body);
  CHECK(body["user_id"] == user_id);
  CHECK(body["recipient"]["email"].get<std::string>().find("@example.com") != std::string::npos);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
}

TEST_CASE("gateway: an accepted email carries every property and body field of the contract",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto email = unique_email();
  const auto user_id = gateway.create_user({{"name", "Grace Hopper"}, {"email", email}});
  const auto request_id = unique_request_id();
  auto request = GatewayFixture::notification_body(user_id, request_id);
  request["metadata"] = {{"campaign", "onboarding"}, {"wave", 2}};

  const auto before = std::chrono::system_clock::now();
  const auto response = gateway.post_notification(request, {{"X-Request-ID", "intake-http-1"}});
  const auto after = std::chrono::system_clock::now();
  INFO(response.body);
  REQUIRE(response.status == 202);
  CHECK(response.header("X-Request-ID") == "intake-http-1");
  CHECK_FALSE(response.has_header("Idempotent-Replayed"));
  const auto envelope = response.json();
  CHECK(envelope["success"] == true);
  CHECK(envelope["error"].is_null());
  const auto data = envelope["data"];
  CHECK(keys_of(data) ==
        std::set<std::string>{"notification_id", "request_id", "notification_type", "status"});
  CHECK(data["status"] == "queued");
  const auto notification_id = data["notification_id"].get<std::string>();

  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
  const auto fetched = fetch(gateway.probe(), gateway.email_queue());
  REQUIRE(fetched);
  check_contract_properties(*fetched, notification_id, request_id, 5, before, after);
  CHECK(fetched->delivery.routing_key == "email");
  CHECK_FALSE(fetch(gateway.probe(), gateway.email_queue()).has_value());

  const auto body = nlohmann::json::parse(fetched->delivery.body);
  INFO(body.dump());
  CHECK(keys_of(body) == std::set<std::string>{"notification_id", "request_id",
                                               "notification_type", "user_id", "template_code",
                                               "locale", "variables", "recipient", "priority",
                                               "metadata", "created_at"});
  CHECK(body["notification_id"] == notification_id);
  CHECK(body["request_id"] == request_id);
  CHECK(body["notification_type"] == "email");
  CHECK(body["user_id"] == user_id);
  CHECK(body["template_code"] == kEmailTemplate);
  CHECK(body["locale"] == "en");
  CHECK(body["variables"] == request["variables"]);
  CHECK(body["recipient"] == nlohmann::json{{"name", "Grace Hopper"}, {"email", email}});
  CHECK(body["priority"] == 5);
  CHECK(body["metadata"] == request["metadata"]);
  REQUIRE(body["created_at"].is_string());
  const auto created_at = body["created_at"].get<std::string>();
  CHECK(is_millisecond_timestamp(created_at));
  // The property and the body describe the same instant.
  CHECK(created_at.substr(0, 19) == utc_seconds(*fetched->delivery.timestamp));

  const auto status = gateway.get("/api/v1/notifications/" + notification_id);
  INFO(status.body);
  REQUIRE(status.status == 200);
  const auto record = status.json()["data"];
  CHECK(record["notification_id"] == notification_id);
  CHECK(record["request_id"] == request_id);
  CHECK(record["user_id"] == user_id);
  CHECK(record["notification_type"] == "email");
  CHECK(record["template_code"] == kEmailTemplate);
  CHECK(record["status"] == "queued");
}

TEST_CASE("gateway: an accepted push lands in the push queue with tokens, priority and the caller's trace",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const std::vector<std::string> tokens = {"tok-a-" + messaging::common::generate_uuid_v4(),
                                           "tok-b-" + messaging::common::generate_uuid_v4()};
  const auto user_id = gateway.create_user({{"name", "Linus"}, {"push_tokens", tokens}});
  const auto request_id = unique_request_id();
  auto request = GatewayFixture::notification_body(user_id, request_id, "push");
  request["priority"] = 8;
  const std::string caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
  const std::string caller_span = "00f067aa0ba902b7";

  const auto before = std::chrono::system_clock::now();
  const auto response = gateway.post_notification(
      request, {{"traceparent", "00-" + caller_trace + "-" + caller_span + "-01"}});
  const auto after = std::chrono::system_clock::now();
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto data = response.json()["data"];
  CHECK(data["status"] == "queued");
  CHECK(data["notification_type"] == "push");
  CHECK(data["request_id"] == request_id);
  const auto notification_id = data["notification_id"].get<std::string>();

  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
  const auto fetched = fetch(gateway.probe(), gateway.push_queue());
  REQUIRE(fetched);
  check_contract_properties(*fetched, notification_id, request_id, 8, before, after);
  CHECK(fetched->delivery.routing_key == "push");
  const auto traceparent = fetched->delivery.headers.get_string(amqp::kTraceparentHeader);
  REQUIRE(traceparent);
  REQUIRE(is_valid_traceparent(*traceparent));
  CHECK(trace_id(*traceparent) == caller_trace);
  CHECK(span_id(*traceparent) != caller_span);
  CHECK_FALSE(fetch(gateway.probe(), gateway.push_queue()).has_value());

  const auto body = nlohmann::json::parse(fetched->delivery.body);
  INFO(body.dump());
  CHECK(body["notification_id"] == notification_id);
  CHECK(body["request_id"] == request_id);
  CHECK(body["notification_type"] == "push");
  CHECK(body["user_id"] == user_id);
  CHECK(body["template_code"] == kPushTemplate);
  CHECK(body["locale"] == "en");
  CHECK(body["variables"] == request["variables"]);
  CHECK(body["recipient"] == nlohmann::json{{"name", "Linus"}, {"push_tokens", tokens}});
  CHECK(body["priority"] == 8);
  CHECK(body["metadata"] == nlohmann::json::object());
  CHECK(is_millisecond_timestamp(body.value("created_at", "")));
}

TEST_CASE("gateway: the Idempotency-Key header carries the request id instead of the body",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  auto request = GatewayFixture::notification_body(user_id, request_id);
  request.erase("request_id");

  const auto response = gateway.post_notification(request, {{"Idempotency-Key", request_id}});
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto data = response.json()["data"];
  CHECK(data["request_id"] == request_id);
  const auto fetched = fetch(gateway.probe(), gateway.email_queue());
  REQUIRE(fetched);
  CHECK(fetched->delivery.correlation_id == request_id);
  CHECK(nlohmann::json::parse(fetched->delivery.body)["request_id"] == request_id);

  // The same key in the body is the same request: a replay, not a second notification.
  const auto replay =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  INFO(replay.body);
  CHECK(replay.status == 200);
  CHECK(replay.header("Idempotent-Replayed") == "true");
  CHECK(replay.json()["data"] == data);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
}

TEST_CASE("gateway: a replay answers 200 with the first answer, a different body 409",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto request = GatewayFixture::notification_body(user_id, request_id);

  const auto first = gateway.post_notification(request);
  INFO(first.body);
  REQUIRE(first.status == 202);
  const auto data = first.json()["data"];

  const auto replay = gateway.post_notification(request);
  INFO(replay.body);
  CHECK(replay.status == 200);
  CHECK(replay.header("Idempotent-Replayed") == "true");
  CHECK(replay.json()["success"] == true);
  CHECK(replay.json()["data"] == data);

  // Same members, other key order and white space: still the same request.
  const std::string reordered =
      "{\n  \"request_id\" : \"" + request_id + "\",\n  \"variables\": {\"count\": 3, " +
      "\"link\": \"https://example.com/start\",   \"name\": \"Ada\"},\n  \"template_code\":\"" +
      kEmailTemplate + "\",\t\"user_id\": \"" + user_id +
      "\", \"notification_type\": \"email\"\n}\n";
  REQUIRE(nlohmann::json::parse(reordered) == request);
  const auto reordered_replay = gateway.request("POST", "/api/v1/notifications", reordered);
  INFO(reordered_replay.body);
  CHECK(reordered_replay.status == 200);
  CHECK(reordered_replay.header("Idempotent-Replayed") == "true");
  CHECK(reordered_replay.json()["data"] == data);

  auto changed = request;
  changed["variables"]["name"] = "Grace";
  const auto conflict = gateway.post_notification(changed);
  INFO(conflict.body);
  CHECK(conflict.status == 409);
  CHECK(error_code(conflict) == "idempotency_conflict");
  CHECK(conflict.json()["success"] == false);
  CHECK(conflict.json()["data"].is_null());
  CHECK_FALSE(conflict.has_header("Idempotent-Replayed"));

  auto other_priority = request;
  other_priority["priority"] = 6;
  const auto priority_conflict = gateway.post_notification(other_priority);
  CHECK(priority_conflict.status == 409);
  CHECK(error_code(priority_conflict) == "idempotency_conflict");

  // An explicit default priority is the same body as an omitted one.
  auto explicit_default = request;
  explicit_default["priority"] = 5;
  const auto default_replay = gateway.post_notification(explicit_default);
  INFO(default_replay.body);
  CHECK(default_replay.status == 200);

  // The conflicts left the first answer alone.
  const auto again = gateway.post_notification(request);
  CHECK(again.status == 200);
  CHECK(again.json()["data"] == data);

  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
}

TEST_CASE("gateway: the same request_id under another API key is a separate notification",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto request = GatewayFixture::notification_body(user_id, request_id);

  const auto first = gateway.post_notification(request);
  INFO(first.body);
  REQUIRE(first.status == 202);
  const auto other = gateway.post_notification(request, {{"X-API-Key", kOtherApiKey}},
                                               /*authorize=*/false);
  INFO(other.body);
  REQUIRE(other.status == 202);
  CHECK_FALSE(other.has_header("Idempotent-Replayed"));
  CHECK(other.json()["data"]["request_id"] == request_id);
  CHECK(other.json()["data"]["notification_id"] != first.json()["data"]["notification_id"]);

  // And the other key's replay is its own.
  const auto other_replay = gateway.post_notification(request, {{"X-API-Key", kOtherApiKey}},
                                                      /*authorize=*/false);
  INFO("other key's replay: " << other_replay.status << " " << other_replay.body);
  CHECK(other_replay.status == 200);
  CHECK(other_replay.json()["data"] == other.json()["data"]);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 2);
}

TEST_CASE("gateway: 50 concurrent duplicates give exactly one 202 and one message",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto body = GatewayFixture::notification_body(user_id, request_id).dump();
  const auto bytes = tests::make_request(
      "POST", "/api/v1/notifications",
      {{"Content-Type", "application/json"}, {"Authorization", std::string("Bearer ") + kApiKey}},
      body);

  constexpr int kClients = 50;
  std::vector<std::optional<tests::RawResponse>> responses(kClients);
  std::vector<std::string> failures(kClients);
  // Every client connects first, then all send at once.
  std::mutex mutex;
  std::condition_variable ready_cv;
  int connected = 0;
  bool go = false;
  std::vector<std::thread> threads;
  threads.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      try {
        tests::RawClient client(gateway.port(), 15s);
        {
          std::unique_lock lock(mutex);
          ++connected;
          ready_cv.notify_all();
          ready_cv.wait(lock, [&] { return go; });
        }
        if (client.send(bytes)) {
          responses[static_cast<std::size_t>(i)] = client.read();
        }
        if (!responses[static_cast<std::size_t>(i)]) {
          failures[static_cast<std::size_t>(i)] = client.last_error.message();
        }
      } catch (const std::exception& error) {
        failures[static_cast<std::size_t>(i)] = error.what();
        std::unique_lock lock(mutex);
        ++connected;
        ready_cv.notify_all();
      }
    });
  }
  {
    std::unique_lock lock(mutex);
    ready_cv.wait(lock, [&] { return connected >= kClients; });
    go = true;
    ready_cv.notify_all();
  }
  for (auto& thread : threads) thread.join();

  int accepted = 0;
  int replayed = 0;
  int in_progress = 0;
  std::set<std::string> notification_ids;
  for (int i = 0; i < kClients; ++i) {
    const auto& response = responses[static_cast<std::size_t>(i)];
    INFO("client " << i << ": " << failures[static_cast<std::size_t>(i)]);
    REQUIRE(response.has_value());
    INFO(response->status << " " << response->body);
    if (response->status == 202) {
      ++accepted;
      notification_ids.insert(response->json()["data"]["notification_id"].get<std::string>());
    } else if (response->status == 200) {
      CHECK(response->header("Idempotent-Replayed") == "true");
      ++replayed;
      notification_ids.insert(response->json()["data"]["notification_id"].get<std::string>());
    } else if (response->status == 409) {
      CHECK(error_code(*response) == "idempotency_in_progress");
      CHECK(response->header("Retry-After") == "1");
      ++in_progress;
    } else {
      FAIL("unexpected status " << response->status << ": " << response->body);
    }
  }
  INFO("accepted " << accepted << ", replayed " << replayed << ", in progress " << in_progress);
  CHECK(accepted == 1);
  CHECK(accepted + replayed + in_progress == kClients);
  // Every replay names the one notification.
  CHECK(notification_ids.size() == 1);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);

  // Once settled, the duplicate is a replay of that notification.
  const auto settled = gateway.post_notification(nlohmann::json::parse(body));
  INFO(settled.body);
  REQUIRE(settled.status == 200);
  CHECK(notification_ids.count(settled.json()["data"]["notification_id"].get<std::string>()) ==
        1);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);
}

void check_unauthorized(const tests::RawResponse& response) {
  INFO(response.status << " " << response.body);
  CHECK(response.status == 401);
  CHECK(response.header("WWW-Authenticate").find("Bearer") == 0);
  CHECK(response.has_header("X-Request-ID"));
  const auto envelope = response.json();
  CHECK(envelope["success"] == false);
  CHECK(envelope["data"].is_null());
  CHECK(envelope["error"]["code"] == "unauthorized");
  CHECK(envelope["message"].is_string());
}

TEST_CASE("gateway: a request without a valid API key gets 401 with the envelope",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto request = GatewayFixture::notification_body(user_id, request_id);

  SECTION("no credentials") { check_unauthorized(gateway.post_notification(request, {}, false)); }
  SECTION("a wrong Bearer key") {
    check_unauthorized(
        gateway.post_notification(request, {{"Authorization", "Bearer not-a-key"}}, false));
  }
  SECTION("a key that is a prefix of a valid one") {
    check_unauthorized(gateway.post_notification(
        request, {{"Authorization", "Bearer gateway-test-key-"}}, false));
  }
  SECTION("a malformed Authorization") {
    check_unauthorized(gateway.post_notification(
        request, {{"Authorization", std::string("Basic ") + kApiKey}}, false));
    check_unauthorized(
        gateway.post_notification(request, {{"Authorization", kApiKey}}, false));
  }
  SECTION("Bearer with an empty token") {
    check_unauthorized(gateway.post_notification(request, {{"Authorization", "Bearer"}}, false));
    check_unauthorized(gateway.post_notification(request, {{"Authorization", "Bearer "}}, false));
  }
  SECTION("a wrong X-API-Key") {
    check_unauthorized(
        gateway.post_notification(request, {{"X-API-Key", "not-a-key"}}, false));
    check_unauthorized(gateway.post_notification(request, {{"X-API-Key", ""}}, false));
  }
  SECTION("a malformed Authorization is not rescued by a valid X-API-Key") {
    check_unauthorized(gateway.post_notification(
        request, {{"Authorization", "Bearer not-a-key"}, {"X-API-Key", kApiKey}}, false));
  }
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);

  // None of them claimed the request id: the real client's request goes through.
  const auto accepted = gateway.post_notification(request);
  INFO(accepted.body);
  CHECK(accepted.status == 202);
}

TEST_CASE("gateway: a valid X-API-Key authenticates", "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto request_id = unique_request_id();
  const auto response =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id),
                                {{"X-API-Key", kApiKey}}, /*authorize=*/false);
  INFO(response.body);
  REQUIRE(response.status == 202);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);
  // The same key by Bearer is the same client: a replay.
  const auto replay =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  CHECK(replay.status == 200);
  CHECK(replay.json()["data"] == response.json()["data"]);
}

TEST_CASE("gateway: an unknown user gets 404 user_not_found and leaves the request_id usable",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto request_id = unique_request_id();
  const auto unknown = messaging::common::generate_uuid_v4();
  const auto missing =
      gateway.post_notification(GatewayFixture::notification_body(unknown, request_id));
  INFO(missing.body);
  REQUIRE(missing.status == 404);
  CHECK(error_code(missing) == "user_not_found");
  CHECK(missing.json()["success"] == false);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);

  // The same request again is answered again (a 404, not a replay of nothing).
  const auto again =
      gateway.post_notification(GatewayFixture::notification_body(unknown, request_id));
  CHECK(again.status == 404);
  CHECK(error_code(again) == "user_not_found");

  // The client fixes the user id and retries with the same request_id: accepted, not a
  // conflict with the refused body.
  const auto user_id = gateway.create_user();
  const auto fixed =
      gateway.post_notification(GatewayFixture::notification_body(user_id, request_id));
  INFO(fixed.body);
  CHECK(fixed.status == 202);
  CHECK(fixed.json()["data"]["status"] == "queued");
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 1);
}

TEST_CASE("gateway: an unknown template or one of the other channel gets 404 template_not_found",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();

  SECTION("a push template for an email") {
    auto request = GatewayFixture::notification_body(user_id, unique_request_id());
    request["template_code"] = kPushTemplate;
    const auto response = gateway.post_notification(request);
    INFO(response.body);
    CHECK(response.status == 404);
    CHECK(error_code(response) == "template_not_found");
  }
  SECTION("an email template for a push") {
    auto request = GatewayFixture::notification_body(user_id, unique_request_id(), "push");
    request["template_code"] = kEmailTemplate;
    const auto response = gateway.post_notification(request);
    INFO(response.body);
    CHECK(response.status == 404);
    CHECK(error_code(response) == "template_not_found");
  }
  SECTION("an unknown code, then the template is created and the same request is accepted") {
    const auto request_id = unique_request_id();
    auto request = GatewayFixture::notification_body(user_id, request_id);
    request["template_code"] = "created_later";
    const auto response = gateway.post_notification(request);
    INFO(response.body);
    REQUIRE(response.status == 404);
    CHECK(error_code(response) == "template_not_found");

    gateway.templates().create(template_service_test::email_template("created_later"));
    // The gateway may remember the 404 for a few seconds (a negative cache entry); until
    // then the retry is 404 again, never a 409 or a replay: nothing in the ledger blocks it.
    std::optional<tests::RawResponse> last;
    std::vector<unsigned> statuses;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
      last = gateway.post_notification(request);
      statuses.push_back(last->status);
      if (last->status != 404) break;
      CHECK(error_code(*last) == "template_not_found");
      std::this_thread::sleep_for(250ms);
    }
    REQUIRE(last);
    INFO(last->body);
    CHECK(last->status == 202);
    CHECK(last->json()["data"]["request_id"] == request_id);
    CHECK(std::all_of(statuses.begin(), statuses.end() - 1, [](unsigned s) { return s == 404; }));
    const auto fetched = fetch(gateway.probe(), gateway.email_queue());
    REQUIRE(fetched);
    CHECK(nlohmann::json::parse(fetched->delivery.body)["template_code"] == "created_later");
  }
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
}

// Posts a request that must be skipped for `reason`, then checks the ledger, the queues
// and the replay.
void check_skipped(GatewayFixture& gateway, const nlohmann::json& request,
                   const std::string& reason) {
  const auto response = gateway.post_notification(request);
  INFO(response.body);
  REQUIRE(response.status == 202);
  const auto data = response.json()["data"];
  CHECK(data["status"] == "skipped");
  CHECK(data["reason"] == reason);
  CHECK(data["request_id"] == request["request_id"]);
  CHECK(data["notification_type"] == request["notification_type"]);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);

  const auto id = data["notification_id"].get<std::string>();
  const auto status = gateway.get("/api/v1/notifications/" + id);
  INFO(status.body);
  REQUIRE(status.status == 200);
  CHECK(status.json()["data"]["status"] == "skipped");
  CHECK(status.json()["data"]["notification_id"] == id);

  const auto replay = gateway.post_notification(request);
  INFO(replay.body);
  CHECK(replay.status == 200);
  CHECK(replay.header("Idempotent-Replayed") == "true");
  CHECK(replay.json()["data"] == data);
  CHECK(gateway.probe().message_count(gateway.email_queue()) == 0);
  CHECK(gateway.probe().message_count(gateway.push_queue()) == 0);
}

TEST_CASE("gateway: a channel that is off or has no address is skipped, recorded and replayed",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  SECTION("email off") {
    const auto user_id =
        gateway.create_user({{"preferences", {{"email", false}, {"push", true}}}});
    check_skipped(gateway, GatewayFixture::notification_body(user_id, unique_request_id()),
                  "email_disabled");
  }
  SECTION("push with no tokens") {
    const auto user_id = gateway.create_user({{"push_tokens", nlohmann::json::array()}});
    check_skipped(gateway,
                  GatewayFixture::notification_body(user_id, unique_request_id(), "push"),
                  "no_push_tokens");
  }
  SECTION("push off") {
    const auto user_id =
        gateway.create_user({{"preferences", {{"email", true}, {"push", false}}}});
    check_skipped(gateway,
                  GatewayFixture::notification_body(user_id, unique_request_id(), "push"),
                  "push_disabled");
  }
  SECTION("email off does not skip push") {
    const auto user_id =
        gateway.create_user({{"preferences", {{"email", false}, {"push", true}}}});
    const auto response = gateway.post_notification(
        GatewayFixture::notification_body(user_id, unique_request_id(), "push"));
    INFO(response.body);
    CHECK(response.status == 202);
    CHECK(response.json()["data"]["status"] == "queued");
    CHECK(gateway.probe().message_count(gateway.push_queue()) == 1);
  }
}

}  // namespace
}  // namespace notifs::gateway_test
