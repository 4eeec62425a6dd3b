// A list of broker addresses (a cluster's nodes) against the real test broker and a port
// nobody listens on: the refused address is passed over, by a one-shot connection, by the
// publisher and by the consumer, and the logs and errors name the address.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <prometheus/registry.h>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "amqp/connection.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/publisher.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
namespace t = notifs::amqp_test;
using namespace std::chrono_literals;

// A loopback port that refuses connections: bound to get a free number, then closed. Another
// process could take it meanwhile; on loopback in a test run that is rare enough, and it
// would fail the test loudly rather than pass it wrongly.
int refused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string refused_url(int port) {
  return "amqp://guest:guest@127.0.0.1:" + std::to_string(port) + "/%2f";
}

std::string broker_port() {
  std::smatch match;
  const std::string url = t::rabbitmq_url();
  REQUIRE(std::regex_search(url, match, std::regex(R"(:(\d+)/)")));
  return match[1];
}

// The refused address first, the real broker second.
amqp::ConnectionSettings refused_then_broker(int port, std::string name) {
  amqp::ConnectionSettings settings = t::connection_settings(std::move(name));
  settings.url = refused_url(port) + "," + t::rabbitmq_url();
  return settings;
}

double counter_total(prometheus::Registry& registry, const std::string& name) {
  double total = 0;
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& series : family.metric) total += series.counter.value;
  }
  return total;
}

}  // namespace

TEST_CASE("amqp address list: a one-shot connection passes over a refused address",
          "[amqp][failover]") {
  const int port = refused_port();
  const auto settings = refused_then_broker(port, "failover-test-oneshot");
  auto connection = detail::Connection::open(settings);
  CHECK_FALSE(connection->broken());
  CHECK_THAT(connection->address(), Catch::Contains(":" + broker_port() + "/"));
  CHECK_THAT(connection->address(), !Catch::Contains("guest:guest"));
}

TEST_CASE("amqp address list: each attempt takes the next address, round the list",
          "[amqp][failover]") {
  const int port = refused_port();
  const auto settings = refused_then_broker(port, "failover-test-attempts");
  CHECK(detail::Connection::address_of(settings, 0) == amqp::mask_url(refused_url(port)));
  CHECK(detail::Connection::address_of(settings, 3) == amqp::mask_url(t::rabbitmq_url()));
  for (const std::size_t attempt : {std::size_t{0}, std::size_t{2}}) {
    CAPTURE(attempt);
    try {
      detail::Connection::open(settings, attempt);
      FAIL("connected to the refused address");
    } catch (const amqp::AmqpError& error) {
      CHECK(error.is_transient());
      CHECK_THAT(error.what(), Catch::Contains("127.0.0.1:" + std::to_string(port)));
    }
  }
  for (const std::size_t attempt : {std::size_t{1}, std::size_t{3}}) {
    CAPTURE(attempt);
    auto connection = detail::Connection::open(settings, attempt);
    CHECK_THAT(connection->address(), Catch::Contains(":" + broker_port() + "/"));
  }
}

TEST_CASE("amqp address list: when every address fails, the error names each of them",
          "[amqp][failover]") {
  const int first = refused_port();
  const int second = refused_port();
  amqp::ConnectionSettings settings = t::connection_settings("failover-test-none");
  settings.url = refused_url(first) + "," + refused_url(second);
  try {
    detail::Connection::open(settings);
    FAIL("connected with no broker listening");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.is_transient());
    CHECK_THAT(error.what(), Catch::Contains("2 addresses"));
    CHECK_THAT(error.what(), Catch::Contains("127.0.0.1:" + std::to_string(first)));
    CHECK_THAT(error.what(), Catch::Contains("127.0.0.1:" + std::to_string(second)));
  }
}

TEST_CASE("amqp address list: a bad address anywhere in the list fails before any I/O",
          "[amqp][failover]") {
  amqp::ConnectionSettings settings = t::connection_settings("failover-test-bad");
  settings.url = t::rabbitmq_url() + ",amqp://u:secretpw@host:0/%2f";
  CHECK_THROWS_AS(detail::Connection::open(settings), std::invalid_argument);
  CHECK_THROWS_AS(detail::Connection::open(settings, 0), std::invalid_argument);
  CHECK_THROWS_WITH(detail::Connection::open(settings),
                    Catch::Contains("address 2 of 2") && !Catch::Contains("secretpw"));
}

TEST_CASE(
    "amqp address list: publisher and consumer reach the broker behind a refused "
    "address",
    "[amqp][failover]") {
  const int port = refused_port();
  const auto topology = t::test_topology();
  const t::TopologyCleanup cleanup(topology);

  amqp::PublisherSettings publisher_settings;
  publisher_settings.connection = refused_then_broker(port, "failover-test-publisher");
  // One connection, so its first attempt is surely the refused address.
  publisher_settings.connections = 1;
  publisher_settings.topology = topology;
  publisher_settings.connect_wait = 15s;
  amqp::AmqpPublisher publisher(publisher_settings);

  std::mutex mutex;
  std::set<std::string> received;
  amqp::ConsumerSettings consumer_settings;
  consumer_settings.connection = refused_then_broker(port, "failover-test-consumer");
  consumer_settings.topology = topology;
  consumer_settings.channel = "email";
  consumer_settings.stop_timeout = 5s;
  amqp::Consumer consumer(consumer_settings, publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            {
                              const std::lock_guard lock(mutex);
                              received.insert(delivery.message_id);
                            }
                            done(amqp::Outcome::ack());
                          });
  // The first attempt was refused, which is transient: start() returns and the consumer
  // goes on to the next address by itself.
  consumer.start();

  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) {
    amqp::OutgoingMessage message;
    message.exchange = topology.names.direct_exchange();
    message.routing_key = "email";
    message.message_id = "failover-" + std::to_string(i);
    message.body = R"({"i":)" + std::to_string(i) + "}";
    auto confirmed = publisher.publish(std::move(message));
    REQUIRE(confirmed.wait_for(20s) == std::future_status::ready);
    CHECK_NOTHROW(confirmed.get());
  }
  CHECK(publisher.connected() == 1);
  CHECK(t::wait_until([&] { return consumer.connected(); }, 15s));
  CHECK(t::wait_until(
      [&] {
        const std::lock_guard lock(mutex);
        return received.size() == static_cast<std::size_t>(kMessages);
      },
      20s));
  consumer.stop();
}

// Regression (found by tests/cluster/run): after a quorum queue's leader was killed, a channel
// opened during the election went on nacking every publish while a fresh channel was fine.
// A publisher connection whose confirms are all nacks for seconds is rebuilt. Here a queue
// that refuses everything (max length 0, reject-publish) stands in for the stuck channel.
TEST_CASE("amqp publisher rebuilds a connection that gets nothing but nacks",
          "[amqp][failover]") {
  const std::string queue = t::unique_prefix() + "reject-all";
  t::BrokerProbe probe;
  probe.declare_queue(queue, {{"x-max-length", 0}, {"x-overflow", "reject-publish"}});

  auto registry = std::make_shared<prometheus::Registry>();
  amqp::PublisherSettings settings;
  settings.connection = t::connection_settings("failover-test-nacks");
  settings.connections = 1;
  amqp::AmqpPublisher publisher(settings, registry);

  std::atomic<int> nacked{0};
  std::atomic<int> confirmed{0};
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (std::chrono::steady_clock::now() < deadline &&
         counter_total(*registry, "amqp_reconnects_total") < 1) {
    amqp::OutgoingMessage message;
    message.routing_key = queue;
    message.message_id = "refused";
    message.body = "{}";
    publisher.async_publish(std::move(message), [&](std::error_code error, const std::string&) {
      if (!error) ++confirmed;
      if (error == amqp::AmqpErrc::nacked) ++nacked;
    });
    std::this_thread::sleep_for(20ms);
  }
  CHECK(counter_total(*registry, "amqp_reconnects_total") >= 1);
  CHECK(nacked.load() >= 64);
  CHECK(confirmed.load() == 0);
  // And it connects again (to the same broker: there is only one address).
  CHECK(t::wait_until([&] { return publisher.connected() == 1; }, 10s));
  probe.delete_queue(queue);
}
