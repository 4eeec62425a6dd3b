// The gateway's status.queue consumer end to end: events published to the fixture's
// notifications.status exchange move the ledger row that GET /api/v1/notifications/{id}
// reads, never backwards; bodies that are not status events are dead-lettered to
// failed.queue without holding up the queue; events for unknown ids are dropped.

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/api_gateway/gateway_fixture.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/contract/timestamp.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace notifs::gateway_test {
namespace {

using namespace std::chrono_literals;
using contract::Status;
using contract::StatusEvent;

// Generous: a status event crosses the broker, the consumer and a ledger batch.
constexpr auto kEventTimeout = 15s;

void publish_body(GatewayFixture& gateway, const std::string& body) {
  messaging::amqp::OutgoingMessage message;
  message.exchange = gateway.topology().names.status_exchange();
  message.routing_key = std::string(messaging::amqp::TopologyNames::kStatusRoutingKey);
  message.body = body;
  gateway.probe().publish(message);
}

void publish_event(GatewayFixture& gateway, const std::string& id, Status status,
                   std::uint32_t attempt, std::string error = {}) {
  publish_body(gateway, contract::encode_status_event(StatusEvent{
                            id, status, attempt, std::move(error), std::chrono::system_clock::now()}));
}

json fetch(GatewayFixture& gateway, const std::string& id) {
  const auto response = gateway.get("/api/v1/notifications/" + id);
  INFO(response.body);
  REQUIRE(response.status == 200);
  return response.json()["data"];
}

// Polls GET until the notification shows `status` (bounded); returns the last data seen.
json wait_for_status(GatewayFixture& gateway, const std::string& id, std::string_view status) {
  json data;
  const bool reached = amqp_test::wait_until(
      [&] {
        data = fetch(gateway, id);
        return data["status"] == status;
      },
      kEventTimeout, 50ms);
  INFO("last seen: " << data.dump());
  REQUIRE(reached);
  return data;
}

// notifs_gateway_status_events_total{result="<result>"} from GET /metrics: how many events
// the consumer has handled that way. The fixture's registry is its own, so it starts at 0.
double status_events(GatewayFixture& gateway, std::string_view result) {
  const auto response = gateway.get("/metrics");
  REQUIRE(response.status == 200);
  const std::string prefix =
      "notifs_gateway_status_events_total{result=\"" + std::string(result) + "\"} ";
  for (std::size_t at = 0; at < response.body.size();) {
    auto end = response.body.find('\n', at);
    if (end == std::string::npos) {
      end = response.body.size();
    }
    const std::string_view line(response.body.data() + at, end - at);
    if (line.substr(0, prefix.size()) == prefix) {
      return std::stod(std::string(line.substr(prefix.size())));
    }
    at = end + 1;
  }
  return 0;
}

// Waits until the consumer has handled `count` events as `result` in total; proves that
// events which change nothing visible were processed before the test looks again.
void wait_for_events(GatewayFixture& gateway, std::string_view result, double count) {
  double seen = 0;
  const bool reached = amqp_test::wait_until(
      [&] {
        seen = status_events(gateway, result);
        return seen >= count;
      },
      kEventTimeout, 50ms);
  INFO(result << " events seen: " << seen << ", expected " << count);
  REQUIRE(reached);
  CHECK(seen == count);
}

TEST_CASE("gateway status: a delivered event shows in GET with attempts and a newer updated_at",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());

  const auto queued = fetch(gateway, id);
  CHECK(queued["status"] == "queued");
  CHECK(queued["attempts"] == 0);
  CHECK(queued["last_error"].is_null());

  publish_event(gateway, id, Status::delivered, 1);
  const auto delivered = wait_for_status(gateway, id, "delivered");
  CHECK(delivered["attempts"] == 1);
  CHECK(delivered["last_error"].is_null());
  CHECK(delivered["created_at"] == queued["created_at"]);
  // Same format, UTC, milliseconds: the text order is the time order.
  CHECK(delivered["updated_at"].get<std::string>() > queued["updated_at"].get<std::string>());
  wait_for_events(gateway, "applied", 1);
}

TEST_CASE("gateway status: processing, retrying and delivered apply in order and late or "
          "duplicate events change nothing",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());
  const auto queued = fetch(gateway, id);

  publish_event(gateway, id, Status::processing, 1);
  const auto processing = wait_for_status(gateway, id, "processing");
  CHECK(processing["attempts"] == 1);
  CHECK(processing["last_error"].is_null());
  CHECK(processing["updated_at"].get<std::string>() > queued["updated_at"].get<std::string>());

  const std::string smtp_error = "451 4.7.1 greylisted, try again later";
  publish_event(gateway, id, Status::retrying, 1, smtp_error);
  const auto retrying = wait_for_status(gateway, id, "retrying");
  CHECK(retrying["attempts"] == 1);
  CHECK(retrying["last_error"] == smtp_error);
  CHECK(retrying["updated_at"].get<std::string>() > processing["updated_at"].get<std::string>());

  // A duplicate delivery of the same event and a late processing of the same attempt.
  publish_event(gateway, id, Status::retrying, 1, smtp_error);
  publish_event(gateway, id, Status::processing, 1);
  wait_for_events(gateway, "stale", 2);
  CHECK(fetch(gateway, id) == retrying);

  // The next attempt starts; the last error stays visible until a newer one replaces it.
  publish_event(gateway, id, Status::processing, 2);
  const auto second = wait_for_status(gateway, id, "processing");
  CHECK(second["attempts"] == 2);
  CHECK(second["last_error"] == smtp_error);

  publish_event(gateway, id, Status::delivered, 2);
  const auto delivered = wait_for_status(gateway, id, "delivered");
  CHECK(delivered["attempts"] == 2);
  CHECK(delivered["updated_at"].get<std::string>() > second["updated_at"].get<std::string>());

  // Nothing moves a delivered notification: a late processing (even of a later attempt), a
  // retry, a failure, a duplicate delivered.
  publish_event(gateway, id, Status::processing, 2);
  publish_event(gateway, id, Status::processing, 3);
  publish_event(gateway, id, Status::retrying, 3, "late retry");
  publish_event(gateway, id, Status::failed, 3, "late failure");
  publish_event(gateway, id, Status::delivered, 2);
  publish_event(gateway, id, Status::queued, 0);
  wait_for_events(gateway, "stale", 8);
  CHECK(fetch(gateway, id) == delivered);
  CHECK(status_events(gateway, "applied") == 4);
  CHECK(status_events(gateway, "invalid") == 0);
}

TEST_CASE("gateway status: a failed event with an error ends the notification failed",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user(), "push");

  publish_event(gateway, id, Status::processing, 1);
  wait_for_status(gateway, id, "processing");
  const std::string provider_error = "UNREGISTERED: the registration token is not valid";
  publish_event(gateway, id, Status::failed, 1, provider_error);
  const auto failed = wait_for_status(gateway, id, "failed");
  CHECK(failed["attempts"] == 1);
  CHECK(failed["last_error"] == provider_error);
  CHECK(failed["notification_type"] == "push");

  // The first terminal event wins: a later delivered does not resurrect it.
  publish_event(gateway, id, Status::delivered, 2);
  wait_for_events(gateway, "stale", 1);
  CHECK(fetch(gateway, id) == failed);
}

TEST_CASE("gateway status: a burst of out-of-order events ends at the latest state",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto user_id = gateway.create_user();
  const auto first = gateway.accept_notification(user_id);
  const auto second = gateway.accept_notification(user_id);

  // Published back to back, so the consumer is likely to hand several to one ledger batch,
  // where they are folded before the UPDATE.
  publish_event(gateway, first, Status::delivered, 2);
  publish_event(gateway, second, Status::processing, 1);
  publish_event(gateway, first, Status::retrying, 1, "timeout");
  publish_event(gateway, second, Status::retrying, 1, "connection reset");
  publish_event(gateway, first, Status::processing, 1);
  publish_event(gateway, second, Status::processing, 2);
  publish_event(gateway, first, Status::processing, 2);
  publish_event(gateway, second, Status::retrying, 1, "older error");

  const bool all_handled = amqp_test::wait_until(
      [&] { return status_events(gateway, "applied") + status_events(gateway, "stale") >= 8; },
      kEventTimeout, 50ms);
  REQUIRE(all_handled);
  const auto a = fetch(gateway, first);
  CHECK(a["status"] == "delivered");
  CHECK(a["attempts"] == 2);
  const auto b = fetch(gateway, second);
  CHECK(b["status"] == "processing");
  CHECK(b["attempts"] == 2);
  CHECK(b["last_error"] != "older error");
}

TEST_CASE("gateway status: an event with an upper-case id and a zone offset applies",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());
  std::string upper = id;
  for (auto& c : upper) {
    if (c >= 'a' && c <= 'f') {
      c = static_cast<char>(c - 'a' + 'A');
    }
  }
  publish_body(gateway, json{{"notification_id", upper},
                             {"status", "delivered"},
                             {"attempt", 1},
                             {"error", nullptr},
                             {"timestamp", "2030-01-02T03:04:05.678+02:00"},
                             {"worker", "email-7"}}
                            .dump());
  const auto data = wait_for_status(gateway, id, "delivered");
  CHECK(data["notification_id"] == id);
  CHECK(data["attempts"] == 1);
}

TEST_CASE("gateway status: undecodable events go to failed.queue and do not block the queue",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto id = gateway.accept_notification(gateway.create_user());
  const auto now = contract::format_rfc3339_ms(std::chrono::system_clock::now());

  const std::vector<std::string> poison = {
      "this is not JSON {",
      "",
      "[1, 2, 3]",
      json{{"notification_id", id}}.dump(),  // status, attempt and timestamp missing
      json{{"notification_id", id}, {"status", "delivered"}, {"timestamp", now}}.dump(),
      json{{"notification_id", "not-a-uuid"}, {"status", "delivered"}, {"attempt", 1},
           {"timestamp", now}}
          .dump(),
      json{{"notification_id", id}, {"status", "sent"}, {"attempt", 1}, {"timestamp", now}}
          .dump(),
      json{{"notification_id", id}, {"status", "delivered"}, {"attempt", -1}, {"timestamp", now}}
          .dump(),
      json{{"notification_id", id}, {"status", "delivered"}, {"attempt", 1},
           {"timestamp", "yesterday"}}
          .dump(),
  };
  for (const auto& body : poison) {
    publish_body(gateway, body);
  }
  // One with no properties at all, as a foreign producer might send.
  const std::string raw = "\x01\x02 not a status event";
  gateway.probe().publish_raw(gateway.topology().names.status_exchange(),
                              std::string(messaging::amqp::TopologyNames::kStatusRoutingKey), raw);
  // A good event behind all of them still applies.
  publish_event(gateway, id, Status::delivered, 1);

  const auto delivered = wait_for_status(gateway, id, "delivered");
  CHECK(delivered["attempts"] == 1);
  wait_for_events(gateway, "invalid", static_cast<double>(poison.size() + 1));

  std::multiset<std::string> expected(poison.begin(), poison.end());
  expected.insert(raw);
  std::multiset<std::string> dead;
  const auto failed_queue = gateway.topology().names.failed_queue();
  const bool all_dead = amqp_test::wait_until(
      [&] {
        while (auto message = gateway.probe().get(failed_queue)) {
          CHECK(message->headers.get_string(messaging::amqp::kFailureReasonHeader)
                    .value_or("")
                    .find("not a status event") != std::string::npos);
          dead.insert(message->body);
        }
        return dead.size() >= expected.size();
      },
      kEventTimeout, 50ms);
  CHECK(all_dead);
  CHECK(dead == expected);

  // Everything was settled: nothing waits in status.queue, not even unacked (stopping the
  // consumer would have returned those to the queue).
  gateway.stop_gateway();
  CHECK(gateway.probe().message_count(gateway.topology().names.status_queue()) == 0);
  CHECK(gateway.probe().message_count(failed_queue) == 0);
}

TEST_CASE("gateway status: an event for an unknown notification is acked and dropped",
          "[api_gateway][integration]") {
  GatewayFixture gateway;
  const auto unknown = messaging::common::generate_uuid_v4();
  publish_event(gateway, unknown, Status::delivered, 1);
  publish_event(gateway, unknown, Status::processing, 1);
  wait_for_events(gateway, "stale", 2);
  CHECK(status_events(gateway, "applied") == 0);
  CHECK(status_events(gateway, "failed") == 0);

  // No row appears for it.
  CHECK(gateway.get("/api/v1/notifications/" + unknown).status == 404);

  // The queue drains, the messages were acked (a stopped consumer returns unacked ones),
  // and nothing was dead-lettered.
  const auto status_queue = gateway.topology().names.status_queue();
  CHECK(amqp_test::wait_until([&] { return gateway.probe().message_count(status_queue) == 0; },
                              kEventTimeout));
  gateway.stop_gateway();
  CHECK(gateway.probe().message_count(status_queue) == 0);
  CHECK(gateway.probe().message_count(gateway.topology().names.failed_queue()) == 0);
}

}  // namespace
}  // namespace notifs::gateway_test
