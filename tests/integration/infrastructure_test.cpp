// Proves that scripts/test hands the suite real servers: a RabbitMQ node that routes,
// stores and returns a message, and a PostgreSQL database that runs SQL and enforces
// constraints. A missing URL fails the test: a harness that starts nothing must not pass.

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <pqxx/pqxx>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "integration/test_process.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

using notifs::test_support::require_env;

std::string unique_suffix() {
  std::random_device device;
  std::uniform_int_distribution<std::uint32_t> dist;
  return std::to_string(::getpid()) + "." + std::to_string(dist(device));
}

std::string bytes_to_string(amqp_bytes_t bytes) {
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

// The AMQP reply of the last synchronous call, as text a failed REQUIRE can show.
std::string describe(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "missing reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return std::string("library error: ") + amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
        return "connection closed by broker: " + std::to_string(close->reply_code) + " " +
               bytes_to_string(close->reply_text);
      }
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
        return "channel closed by broker: " + std::to_string(close->reply_code) + " " +
               bytes_to_string(close->reply_text);
      }
      return "unexpected broker method " + std::to_string(reply.reply.id);
  }
  return "unknown reply type";
}

// One rabbitmq-c connection with channel 1 open; closed politely, then freed, on scope
// exit. The real AMQP layer of libs/messaging replaces this; the test only needs a broker.
class AmqpConnection {
 public:
  static constexpr amqp_channel_t kChannel = 1;

  explicit AmqpConnection(const std::string& url) : conn_(amqp_new_connection()) {
    REQUIRE(conn_ != nullptr);
    // amqp_parse_url points into the buffer it parses, so the buffer outlives `info`.
    std::vector<char> buffer(url.begin(), url.end());
    buffer.push_back('\0');
    amqp_connection_info info{};
    amqp_default_connection_info(&info);
    INFO("NOTIFS_TEST_RABBITMQ_URL=" << url);
    REQUIRE(amqp_parse_url(buffer.data(), &info) == AMQP_STATUS_OK);

    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);  // owned by conn_
    REQUIRE(socket != nullptr);
    timeval timeout{5, 0};
    const int opened = amqp_socket_open_noblock(socket, info.host, info.port, &timeout);
    INFO("connecting to " << info.host << ":" << info.port << ": "
                          << amqp_error_string2(opened));
    REQUIRE(opened == AMQP_STATUS_OK);

    const amqp_rpc_reply_t login = amqp_login(conn_, info.vhost, 0, 131072, 0,
                                              AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    INFO("login: " << describe(login));
    REQUIRE(login.reply_type == AMQP_RESPONSE_NORMAL);
    logged_in_ = true;

    amqp_channel_open(conn_, kChannel);
    check("channel.open");
    channel_open_ = true;
  }

  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;

  ~AmqpConnection() {
    if (channel_open_) {
      amqp_channel_close(conn_, kChannel, AMQP_REPLY_SUCCESS);
    }
    if (logged_in_) {
      amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(conn_);
  }

  amqp_connection_state_t get() const { return conn_; }

  // Fails the test with the broker's reply text when the last call was refused.
  void check(const char* what) const {
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn_);
    INFO(what << ": " << describe(reply));
    REQUIRE(reply.reply_type == AMQP_RESPONSE_NORMAL);
  }

  // The broker closed the channel (e.g. 404 on a passive declare): acknowledge it, as
  // the protocol requires before the channel number may be used again.
  void acknowledge_channel_close() {
    amqp_channel_close_ok_t close_ok{};
    REQUIRE(amqp_send_method(conn_, kChannel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) ==
            AMQP_STATUS_OK);
    channel_open_ = false;
  }

 private:
  amqp_connection_state_t conn_;
  bool logged_in_ = false;
  bool channel_open_ = false;
};

// A message read with basic.get; frees rabbitmq-c's copy on scope exit.
class GotMessage {
 public:
  GotMessage() = default;
  GotMessage(const GotMessage&) = delete;
  GotMessage& operator=(const GotMessage&) = delete;
  ~GotMessage() {
    if (read_) amqp_destroy_message(&message_);
  }
  amqp_message_t* reset() {
    if (read_) amqp_destroy_message(&message_);
    read_ = true;
    return &message_;
  }
  const amqp_message_t& get() const { return message_; }

 private:
  amqp_message_t message_{};
  bool read_ = false;
};

// Polls basic.get until a message arrives or `deadline` passes. A publish and a get on
// the same channel are ordered by the broker, so the first get normally answers.
bool basic_get(AmqpConnection& conn, const std::string& queue, GotMessage& out,
               std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const amqp_rpc_reply_t reply =
        amqp_basic_get(conn.get(), AmqpConnection::kChannel, amqp_cstring_bytes(queue.c_str()),
                       /*no_ack=*/1);
    INFO("basic.get: " << describe(reply));
    REQUIRE(reply.reply_type == AMQP_RESPONSE_NORMAL);
    if (reply.reply.id == AMQP_BASIC_GET_OK_METHOD) {
      const amqp_rpc_reply_t read =
          amqp_read_message(conn.get(), AmqpConnection::kChannel, out.reset(), 0);
      INFO("reading the message: " << describe(read));
      REQUIRE(read.reply_type == AMQP_RESPONSE_NORMAL);
      return true;
    }
    REQUIRE(reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD);
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

TEST_CASE("the test RabbitMQ routes a message to a queue and returns it",
          "[integration][rabbitmq]") {
  const std::string url = require_env("NOTIFS_TEST_RABBITMQ_URL");
  AmqpConnection conn(url);

  // Exclusive and auto-delete: the broker removes it with the connection, so parallel
  // runs and crashed tests leave nothing behind.
  const std::string queue = "notifs.test.infrastructure." + unique_suffix();
  const amqp_queue_declare_ok_t* declared =
      amqp_queue_declare(conn.get(), AmqpConnection::kChannel, amqp_cstring_bytes(queue.c_str()),
                         /*passive=*/0, /*durable=*/0, /*exclusive=*/1, /*auto_delete=*/1,
                         amqp_empty_table);
  conn.check("queue.declare");
  REQUIRE(declared != nullptr);
  CHECK(bytes_to_string(declared->queue) == queue);
  CHECK(declared->message_count == 0);

  const std::string body = R"({"probe":")" + unique_suffix() + R"("})";
  const std::string message_id = "infra-" + unique_suffix();
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.message_id = amqp_cstring_bytes(message_id.c_str());
  // The default exchange routes by queue name.
  const int published = amqp_basic_publish(
      conn.get(), AmqpConnection::kChannel, amqp_empty_bytes, amqp_cstring_bytes(queue.c_str()),
      /*mandatory=*/0, /*immediate=*/0, &props, amqp_cstring_bytes(body.c_str()));
  INFO("basic.publish: " << amqp_error_string2(published));
  REQUIRE(published == AMQP_STATUS_OK);

  GotMessage got;
  REQUIRE(basic_get(conn, queue, got, std::chrono::steady_clock::now() + std::chrono::seconds(5)));
  CHECK(bytes_to_string(got.get().body) == body);
  const amqp_basic_properties_t& got_props = got.get().properties;
  REQUIRE((got_props._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0);
  CHECK(bytes_to_string(got_props.message_id) == message_id);
  REQUIRE((got_props._flags & AMQP_BASIC_CONTENT_TYPE_FLAG) != 0);
  CHECK(bytes_to_string(got_props.content_type) == "application/json");

  // Taken with no_ack, so the queue is empty again.
  GotMessage none;
  CHECK_FALSE(basic_get(conn, queue, none, std::chrono::steady_clock::now()));
}

TEST_CASE("the test RabbitMQ refuses a passive declare of a missing queue with 404",
          "[integration][rabbitmq]") {
  const std::string url = require_env("NOTIFS_TEST_RABBITMQ_URL");
  AmqpConnection conn(url);

  const std::string queue = "notifs.test.missing." + unique_suffix();
  amqp_queue_declare(conn.get(), AmqpConnection::kChannel, amqp_cstring_bytes(queue.c_str()),
                     /*passive=*/1, 0, 0, 0, amqp_empty_table);
  const amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn.get());
  INFO("queue.declare passive: " << describe(reply));
  REQUIRE(reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION);
  REQUIRE(reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD);
  const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
  CHECK(close->reply_code == AMQP_NOT_FOUND);
  conn.acknowledge_channel_close();
}

TEST_CASE("the test PostgreSQL runs SQL in the notifs_test database", "[integration][postgres]") {
  const std::string url = require_env("NOTIFS_TEST_DATABASE_URL");
  pqxx::connection conn(url);
  REQUIRE(conn.is_open());
  CHECK(std::string(conn.dbname()) == "notifs_test");
  CHECK(conn.server_version() >= 150000);

  pqxx::work tx(conn);
  // A temporary table lives in this session only: parallel tests cannot collide.
  tx.exec0(
      "CREATE TEMPORARY TABLE infra_probe ("
      "  id integer PRIMARY KEY,"
      "  body text NOT NULL,"
      "  created_at timestamptz NOT NULL DEFAULT now())");
  const std::string body = "probe " + unique_suffix();
  tx.exec_params0("INSERT INTO infra_probe (id, body) VALUES ($1, $2)", 1, body);
  tx.exec_params0("INSERT INTO infra_probe (id, body) VALUES ($1, $2)", 2, std::string("other"));

  const pqxx::result rows = tx.exec_params("SELECT body FROM infra_probe WHERE id = $1", 1);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0][0].as<std::string>() == body);
  CHECK(tx.exec1("SELECT count(*) FROM infra_probe")[0].as<int>() == 2);

  SECTION("a duplicate primary key is refused") {
    pqxx::subtransaction savepoint(tx, "duplicate");
    CHECK_THROWS_AS(
        savepoint.exec_params0("INSERT INTO infra_probe (id, body) VALUES ($1, $2)", 1, body),
        pqxx::unique_violation);
  }
}
