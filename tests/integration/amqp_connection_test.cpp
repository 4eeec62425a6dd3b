// The RAII connection against a real broker and against sockets that misbehave: every
// failure is a typed AmqpError with the broker's reason, and nothing hangs.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <regex>
#include <string>

#include "amqp/connection.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/error.hpp"

using namespace notifs::amqp_test;
using namespace std::chrono_literals;
namespace detail = notifs::messaging::amqp::detail;

namespace {

// A loopback TCP socket bound to a free port; listening (but never accepting or answering)
// when asked, otherwise refusing connections. Closed on scope exit.
class LoopbackSocket {
 public:
  explicit LoopbackSocket(bool listening) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    REQUIRE(fd_ >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    if (listening) REQUIRE(::listen(fd_, 8) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    port_ = ntohs(address.sin_port);
  }
  ~LoopbackSocket() { ::close(fd_); }
  LoopbackSocket(const LoopbackSocket&) = delete;
  LoopbackSocket& operator=(const LoopbackSocket&) = delete;

  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

std::string broker_port() {
  std::smatch match;
  const std::string url = rabbitmq_url();
  REQUIRE(std::regex_search(url, match, std::regex(R"(:(\d+)/)")));
  return match[1];
}

template <typename Duration>
double seconds(Duration duration) {
  return std::chrono::duration<double>(duration).count();
}

}  // namespace

TEST_CASE("amqp connection: opens, names itself and closes politely", "[amqp]") {
  const std::string name = "notifs-test-" + unique_prefix();
  {
    auto connection = detail::Connection::open(connection_settings(name));
    CHECK_FALSE(connection->broken());
    CHECK(connection->socket_fd() >= 0);
    CHECK(amqp_get_heartbeat(connection->state()) == 10);
    connection->open_channel(1);
    connection->confirm_select(1);
    connection->basic_qos(1, 16);
    CHECK_FALSE(connection->has_buffered_frames());
    const std::string listing = rabbitmqctl(
        {"list_connections", "--quiet", "--formatter", "json", "client_properties"});
    CHECK_THAT(listing, Catch::Contains(name));
    CHECK_THAT(listing, Catch::Contains("notifs"));
  }
  // Closed with connection.close: the broker forgets it at once.
  CHECK(wait_until(
      [&] {
        return rabbitmqctl({"list_connections", "--quiet", "--formatter", "json",
                            "client_properties"})
                   .find(name) == std::string::npos;
      },
      5s));
}

TEST_CASE("amqp connection: a channel error carries the broker's code and text",
          "[amqp]") {
  BrokerProbe probe;
  const std::string missing = unique_prefix() + "missing.queue";
  try {
    probe.message_count(missing);
    FAIL("a passive declare of a missing queue succeeded");
  } catch (const amqp::AmqpError& error) {
    CHECK(error.scope() == amqp::AmqpError::Scope::channel);
    CHECK(error.code() == 404);
    CHECK_THAT(error.reply_text(), Catch::Contains("NOT_FOUND") && Catch::Contains(missing));
    CHECK_THAT(error.what(), Catch::Contains("queue.declare passive " + missing));
    CHECK_FALSE(error.is_transient());
  }
  // The channel was answered with close-ok and reopened: the connection is still good.
  CHECK_FALSE(probe.connection().broken());
  CHECK_FALSE(probe.queue_exists(missing));
}

TEST_CASE("amqp connection: a wrong password fails with the broker's reason", "[amqp]") {
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = std::regex_replace(settings.url, std::regex("guest:guest@"),
                                    "guest:not-the-password@");
  REQUIRE(settings.url != rabbitmq_url());
  try {
    detail::Connection::open(settings);
    FAIL("logged in with a wrong password");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::connection);
    CHECK(error.code() == 403);
    CHECK_THAT(error.reply_text(), Catch::Contains("ACCESS_REFUSED"));
    CHECK_THAT(error.what(), Catch::Contains("login"));
    // The password never appears in the error.
    CHECK_THAT(error.what(), !Catch::Contains("not-the-password"));
  }
}

TEST_CASE("amqp connection: an unknown vhost fails with the broker's reason", "[amqp]") {
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = std::regex_replace(settings.url, std::regex("/%2f$"), "/no-such-vhost");
  REQUIRE(settings.url != rabbitmq_url());
  try {
    detail::Connection::open(settings);
    FAIL("opened a connection to a vhost that does not exist");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::connection);
    CHECK(error.code() == 530);
    CHECK_THAT(error.reply_text(), Catch::Contains("no-such-vhost"));
  }
}

TEST_CASE("amqp connection: TLS to a plain AMQP port fails as a library error, not a hang",
          "[amqp]") {
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = "amqps://guest:guest@127.0.0.1:" + broker_port() + "/%2f";
  settings.tls_verify_peer = false;
  settings.tls_verify_hostname = false;
  settings.connect_timeout = 2000ms;
  const auto started = std::chrono::steady_clock::now();
  try {
    detail::Connection::open(settings);
    FAIL("a TLS handshake with a plain AMQP listener succeeded");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    CHECK(error.code() < 0);
    CHECK(error.is_transient());
  }
  // Generous: the broker answers garbage at once; only a hang would take this long.
  CHECK(seconds(std::chrono::steady_clock::now() - started) < 10.0);
}

TEST_CASE("amqp connection: TLS with a CA file that does not exist is refused", "[amqp]") {
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = "amqps://guest:guest@127.0.0.1:" + broker_port() + "/%2f";
  settings.tls_ca_file = "/nonexistent/ca.pem";
  try {
    detail::Connection::open(settings);
    FAIL("accepted a missing CA file");
  } catch (const amqp::AmqpError& error) {
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    CHECK_THAT(error.what(), Catch::Contains("/nonexistent/ca.pem"));
  }
}

TEST_CASE("amqp connection: a closed port fails fast", "[amqp]") {
  const LoopbackSocket closed(/*listening=*/false);
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(closed.port()) + "/%2f";
  settings.connect_timeout = 3000ms;
  const auto started = std::chrono::steady_clock::now();
  try {
    detail::Connection::open(settings);
    FAIL("connected to a port nobody listens on");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    CHECK_THAT(error.what(), Catch::Contains("127.0.0.1:" + std::to_string(closed.port())));
  }
  CHECK(seconds(std::chrono::steady_clock::now() - started) < 3.0);
}

TEST_CASE("amqp connection: a peer that never answers fails after connect_timeout",
          "[amqp]") {
  // The kernel completes the TCP handshake into the backlog; nobody ever speaks AMQP.
  const LoopbackSocket silent(/*listening=*/true);
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = "amqp://guest:guest@127.0.0.1:" + std::to_string(silent.port()) + "/%2f";
  settings.connect_timeout = 500ms;
  const auto started = std::chrono::steady_clock::now();
  try {
    detail::Connection::open(settings);
    FAIL("logged in to a socket that never answered");
  } catch (const amqp::AmqpError& error) {
    CAPTURE(error.what());
    CHECK(error.scope() == amqp::AmqpError::Scope::library);
    CHECK(error.code() == AMQP_STATUS_TIMEOUT);
  }
  const double elapsed = seconds(std::chrono::steady_clock::now() - started);
  CHECK(elapsed >= 0.45);  // the timeout, not something else, ended it
  CHECK(elapsed < 5.0);
}

TEST_CASE("amqp connection: a malformed URL is refused before any I/O", "[amqp]") {
  amqp::ConnectionSettings settings = connection_settings();
  settings.url = "amqp://guest:secret@host:notaport/%2f";
  CHECK_THROWS_AS(detail::Connection::open(settings), std::invalid_argument);
  CHECK_THROWS_WITH(detail::Connection::open(settings), !Catch::Contains("secret"));
}
