#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "amqp/topology_declarer.hpp"
#include "notifs/messaging/amqp/topology.hpp"

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
using std::chrono::milliseconds;

TEST_CASE("amqp parse_queue_type knows quorum and classic", "[amqp][topology]") {
  CHECK(amqp::parse_queue_type("quorum") == amqp::QueueType::quorum);
  CHECK(amqp::parse_queue_type("classic") == amqp::QueueType::classic);
  CHECK(amqp::parse_queue_type("Quorum") == amqp::QueueType::quorum);
  CHECK_FALSE(amqp::parse_queue_type("stream"));
  CHECK_FALSE(amqp::parse_queue_type(""));
  CHECK_FALSE(amqp::parse_queue_type("quorum "));
  CHECK(amqp::to_string(amqp::QueueType::quorum) == "quorum");
  CHECK(amqp::to_string(amqp::QueueType::classic) == "classic");
  for (auto type : {amqp::QueueType::quorum, amqp::QueueType::classic}) {
    CHECK(amqp::parse_queue_type(amqp::to_string(type)) == type);
  }
}

TEST_CASE("amqp retry_delay grows exponentially from the base", "[amqp][topology]") {
  amqp::TopologySettings settings;
  settings.retry_base_delay = milliseconds{5000};
  settings.retry_factor = 4.0;
  CHECK(amqp::retry_delay(settings, 1) == milliseconds{5000});
  CHECK(amqp::retry_delay(settings, 2) == milliseconds{20000});
  CHECK(amqp::retry_delay(settings, 3) == milliseconds{80000});
  settings.retry_base_delay = milliseconds{200};
  settings.retry_factor = 1.5;
  CHECK(amqp::retry_delay(settings, 3) == milliseconds{450});
  settings.retry_factor = 1.0;
  CHECK(amqp::retry_delay(settings, 7) == milliseconds{200});
}

TEST_CASE("amqp retry_delay clamps instead of overflowing", "[amqp][topology]") {
  // The broker's own limit for x-message-ttl: ten years.
  const milliseconds max{315'360'000'000LL};
  amqp::TopologySettings settings;
  settings.retry_base_delay = milliseconds{1000};
  settings.retry_factor = 10.0;
  CHECK(amqp::retry_delay(settings, 40) == max);
  CHECK(amqp::retry_delay(settings, std::numeric_limits<std::uint32_t>::max()) == max);
  settings.retry_base_delay = milliseconds{std::numeric_limits<std::int64_t>::max()};
  settings.retry_factor = 2.0;
  CHECK(amqp::retry_delay(settings, 1) == max);
  settings.retry_factor = std::numeric_limits<double>::infinity();
  settings.retry_base_delay = milliseconds{1000};
  CHECK(amqp::retry_delay(settings, 2) >= milliseconds{1000});
  CHECK(amqp::retry_delay(settings, 2) <= max);
  settings.retry_factor = std::nan("");
  CHECK(amqp::retry_delay(settings, 3) == milliseconds{1000});
}

TEST_CASE("amqp retry_delay of nonsense inputs stays sane", "[amqp][topology]") {
  amqp::TopologySettings settings;
  settings.retry_base_delay = milliseconds{-5};
  CHECK(amqp::retry_delay(settings, 2) == milliseconds{0});
  settings.retry_base_delay = milliseconds{100};
  settings.retry_factor = 0.5;  // a shrinking delay is not a backoff: treated as 1
  CHECK(amqp::retry_delay(settings, 3) == milliseconds{100});
  settings.retry_factor = 2.0;
  CHECK(amqp::retry_delay(settings, 0) == milliseconds{100});  // tiers are 1-based
}

TEST_CASE("amqp validate_topology names the setting that cannot work", "[amqp][topology]") {
  const auto message_of = [](const amqp::TopologySettings& settings) {
    try {
      detail::validate_topology(settings);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  amqp::TopologySettings settings;
  CHECK(message_of(settings) == "accepted");
  settings.retry_tiers = 0;
  CHECK(message_of(settings) == "accepted");

  amqp::TopologySettings bad = settings;
  bad.channels.clear();
  CHECK_THAT(message_of(bad), Catch::Contains("no channels"));
  bad = settings;
  bad.channels.push_back("");
  CHECK_THAT(message_of(bad), Catch::Contains("empty channel"));
  bad = settings;
  bad.retry_factor = 0.9;
  CHECK_THAT(message_of(bad), Catch::Contains("factor"));
  bad.retry_factor = std::numeric_limits<double>::infinity();
  CHECK_THAT(message_of(bad), Catch::Contains("factor"));
  bad = settings;
  bad.retry_base_delay = milliseconds{-1};
  CHECK_THAT(message_of(bad), Catch::Contains("delay"));
  bad = settings;
  bad.retry_tiers = 33;
  CHECK_THAT(message_of(bad), Catch::Contains("tiers"));
  bad = settings;
  bad.delivery_limit = 0;
  CHECK_THAT(message_of(bad), Catch::Contains("delivery limit"));
  bad.queue_type = amqp::QueueType::classic;  // classic queues have no delivery limit
  CHECK(message_of(bad) == "accepted");
}

TEST_CASE("amqp parse_inequivalent_arg reads the broker's 406 text", "[amqp][topology]") {
  const auto parsed = detail::parse_inequivalent_arg(
      "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-strategy' for queue "
      "'t-1.email.queue' in vhost '/': received the value 'at-least-once' of type 'longstr' "
      "but current is none");
  REQUIRE(parsed);
  CHECK(parsed->argument == "x-dead-letter-strategy");
  CHECK(parsed->entity == "t-1.email.queue");

  const auto exchange = detail::parse_inequivalent_arg(
      "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'notifications.direct' in "
      "vhost 'prod': received 'direct' but current is 'topic'");
  REQUIRE(exchange);
  CHECK(exchange->argument == "type");
  CHECK(exchange->entity == "notifications.direct");

  const auto quoted = detail::parse_inequivalent_arg(
      "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'it's.queue' in vhost '/': "
      "received 'true' but current is 'false'");
  REQUIRE(quoted);
  CHECK(quoted->entity == "it's.queue");

  CHECK_FALSE(detail::parse_inequivalent_arg(""));
  CHECK_FALSE(detail::parse_inequivalent_arg("PRECONDITION_FAILED - unknown delivery tag 1"));
  CHECK_FALSE(detail::parse_inequivalent_arg("inequivalent arg 'x"));
  CHECK_FALSE(detail::parse_inequivalent_arg("inequivalent arg 'x' for queue 'q"));
}
