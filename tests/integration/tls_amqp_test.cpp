// amqps:// end to end against the test broker's TLS listener (scripts/test gives RabbitMQ a
// certificate from a CA of its own making: NOTIFS_TEST_RABBITMQ_AMQPS_URL names the broker
// as "localhost", the only name the certificate carries, and NOTIFS_TEST_TLS_CA_FILE is the
// CA). With peer and host name verification on: the connection is TLS on the broker's
// side, publishes are confirmed and consumed; a CA we do not trust and a name the
// certificate does not carry are refused with an error that says so.
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "amqp/connection.hpp"
#include "fakes/test_ca.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/publisher.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
namespace t = notifs::amqp_test;
using namespace std::chrono_literals;

struct TlsBroker {
  std::string url;      // amqps://guest:guest@localhost:PORT/%2f
  std::string ca_file;  // the test CA that signed the broker's certificate
};

// The TLS listener scripts/test started, or nothing (the caller skips) when the run has
// none, e.g. a broker started by hand.
std::optional<TlsBroker> tls_broker() {
  const char* url = std::getenv("NOTIFS_TEST_RABBITMQ_AMQPS_URL");
  const char* ca = std::getenv("NOTIFS_TEST_TLS_CA_FILE");
  if (url == nullptr || *url == '\0' || ca == nullptr || *ca == '\0') return std::nullopt;
  return TlsBroker{url, ca};
}

#define SKIP_WITHOUT_TLS_BROKER(broker)                                                      \
  const auto broker = tls_broker();                                                          \
  if (!broker) {                                                                             \
    WARN("skipped: NOTIFS_TEST_RABBITMQ_AMQPS_URL / NOTIFS_TEST_TLS_CA_FILE are not set "   \
         "(scripts/test sets them)");                                                        \
    return;                                                                                  \
  }

amqp::ConnectionSettings tls_settings(const TlsBroker& broker, const std::string& name) {
  auto settings = t::connection_settings(name);
  settings.url = broker.url;
  settings.tls_ca_file = broker.ca_file;
  settings.tls_verify_peer = true;
  settings.tls_verify_hostname = true;
  settings.connect_timeout = 5000ms;
  return settings;
}

std::string with_host(const std::string& url, const std::string& host) {
  const auto replaced = std::regex_replace(url, std::regex("@localhost:"), "@" + host + ":");
  REQUIRE(replaced != url);
  return replaced;
}

// The broker's view of the connection named `name`: its `ssl` flag and protocol.
std::optional<nlohmann::json> broker_connection(const std::string& name) {
  const auto listing = nlohmann::json::parse(t::rabbitmqctl(
      {"list_connections", "--quiet", "--formatter", "json", "client_properties", "ssl",
       "ssl_protocol"}));
  for (const auto& entry : listing) {
    if (entry.dump().find(name) != std::string::npos) return entry;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("tls amqp: amqps with peer and host name verification connects, and the broker "
          "sees TLS",
          "[amqp][tls]") {
  SKIP_WITHOUT_TLS_BROKER(broker);
  const std::string name = "tls-test-" + t::unique_prefix();
  auto connection = detail::Connection::open(tls_settings(*broker, name));
  connection->open_channel(1);
  connection->confirm_select(1);
  std::optional<nlohmann::json> seen;
  REQUIRE(t::wait_until([&] { return (seen = broker_connection(name)).has_value(); }, 5s));
  CAPTURE(seen->dump());
  CHECK((*seen)["ssl"] == true);
  CHECK_THAT((*seen)["ssl_protocol"].get<std::string>(), Catch::StartsWith("tlsv1."));
}

TEST_CASE("tls amqp: publish with confirm and consume over amqps", "[amqp][tls]") {
  SKIP_WITHOUT_TLS_BROKER(broker);
  const auto topology = t::test_topology();
  t::TopologyCleanup cleanup(topology);

  amqp::PublisherSettings publisher_settings;
  publisher_settings.connection = tls_settings(*broker, "tls-test-publisher");
  publisher_settings.connections = 1;
  publisher_settings.topology = topology;
  amqp::AmqpPublisher publisher(publisher_settings);

  std::mutex mutex;
  std::vector<amqp::Delivery> received;
  amqp::ConsumerSettings consumer_settings;
  consumer_settings.connection = tls_settings(*broker, "tls-test-consumer");
  consumer_settings.topology = topology;
  consumer_settings.channel = "email";
  consumer_settings.stop_timeout = 5s;
  amqp::Consumer consumer(consumer_settings, publisher,
                          [&](amqp::Delivery delivery, amqp::Completion done) {
                            {
                              const std::lock_guard lock(mutex);
                              received.push_back(std::move(delivery));
                            }
                            done(amqp::Outcome::ack());
                          });
  consumer.start();
  REQUIRE(consumer.connected());

  constexpr int kMessages = 20;
  for (int i = 0; i < kMessages; ++i) {
    amqp::OutgoingMessage message;
    message.exchange = topology.names.direct_exchange();
    message.routing_key = "email";
    message.message_id = "tls-" + std::to_string(i);
    // Bigger than one TLS record (16 KiB), so frames span records in both directions.
    message.body = R"({"notification_id":")" + message.message_id + R"(","pad":")" +
                   std::string(40000, 'x') + R"("})";
    // Confirmed by the broker, or publish() throws: the future carries the error.
    REQUIRE_NOTHROW(publisher.publish(std::move(message)).get());
  }
  REQUIRE(t::wait_until(
      [&] {
        const std::lock_guard lock(mutex);
        return received.size() >= kMessages;
      },
      20s));
  consumer.stop();
  const std::lock_guard lock(mutex);
  REQUIRE(received.size() == kMessages);
  for (int i = 0; i < kMessages; ++i) {
    CHECK(received[static_cast<std::size_t>(i)].message_id == "tls-" + std::to_string(i));
    CHECK(received[static_cast<std::size_t>(i)].body.size() > 40000);
  }
}

TEST_CASE("tls amqp: a broker certificate from a CA we do not trust is refused", "[amqp][tls]") {
  SKIP_WITHOUT_TLS_BROKER(broker);
  const notifs::fakes::TestCa other("a CA the broker's certificate does not come from");
  auto settings = tls_settings(*broker, "tls-test-untrusted");
  settings.tls_ca_file = other.ca_file();
  try {
    detail::Connection::open(settings);
    FAIL("connected to a broker whose certificate no trusted CA signed");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    // rabbitmq-c reports it as the failed handshake (OpenSSL verifies during it) or as a
    // failed peer verification, depending on the version; either names SSL.
    CHECK((error.code() == AMQP_STATUS_SSL_CONNECTION_FAILED ||
           error.code() == AMQP_STATUS_SSL_PEER_VERIFY_FAILED));
    CHECK_THAT(error.what(), Catch::Contains("SSL"));
    CHECK_THAT(error.what(), Catch::Contains("amqps://localhost:"));
    CHECK_THAT(error.what(), !Catch::Contains("guest:guest"));
  }
  // Verification off, the same CA file is no obstacle: the refusal above was verification.
  settings.tls_verify_peer = false;
  settings.tls_verify_hostname = false;
  CHECK_NOTHROW(detail::Connection::open(settings));
}

TEST_CASE("tls amqp: a host name the certificate does not carry is refused with "
          "verify_hostname on",
          "[amqp][tls]") {
  SKIP_WITHOUT_TLS_BROKER(broker);
  auto settings = tls_settings(*broker, "tls-test-wrong-name");
  // The same listener by address: the certificate names localhost only.
  settings.url = with_host(broker->url, "127.0.0.1");
  try {
    detail::Connection::open(settings);
    FAIL("connected although the certificate does not name 127.0.0.1");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    CHECK((error.code() == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED ||
           error.code() == AMQP_STATUS_SSL_CONNECTION_FAILED));
    CHECK_THAT(error.what(), Catch::Contains("SSL"));
  }
  // The chain is still verified; only the name check is off.
  settings.tls_verify_hostname = false;
  CHECK_NOTHROW(detail::Connection::open(settings));
}
