#include "broker_probe.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <memory>
#include <stdexcept>
#include <string_view>

namespace notifs::faults {

namespace {

constexpr amqp_channel_t kChannel = 1;

std::string text_of(amqp_bytes_t bytes) {
  return std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

std::string describe(const amqp_rpc_reply_t& reply) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return "ok";
    case AMQP_RESPONSE_NONE:
      return "no reply (missing RPC reply type)";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      return amqp_error_string2(reply.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
        return "connection closed: " + std::to_string(close->reply_code) + " " +
               text_of(close->reply_text);
      }
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
        return "channel closed: " + std::to_string(close->reply_code) + " " +
               text_of(close->reply_text);
      }
      return "server exception, method " + std::to_string(reply.reply.id);
  }
  return "unknown reply type";
}

void check(const amqp_rpc_reply_t& reply, std::string_view what) {
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
    throw std::runtime_error(std::string(what) + ": " + describe(reply));
  }
}

// A connection with channel 1 open; closed (channel first) when it goes.
class Session {
 public:
  explicit Session(const std::string& url) : state_(amqp_new_connection()) {
    if (state_ == nullptr) throw std::runtime_error("amqp_new_connection failed");
    std::string buffer = url;  // amqp_parse_url cuts its argument into pieces in place
    amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
      amqp_destroy_connection(state_);
      throw std::runtime_error("RABBITMQ_URL cannot be parsed");
    }
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    timeval timeout{5, 0};
    if (socket == nullptr) {
      amqp_destroy_connection(state_);
      throw std::runtime_error("amqp_tcp_socket_new failed");
    }
    if (const int status = amqp_socket_open_noblock(socket, info.host, info.port, &timeout);
        status != AMQP_STATUS_OK) {
      amqp_destroy_connection(state_);
      throw std::runtime_error(std::string("connect to RabbitMQ: ") + amqp_error_string2(status));
    }
    amqp_set_rpc_timeout(state_, &timeout);
    const auto login = amqp_login(state_, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
                                  info.user, info.password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
      amqp_destroy_connection(state_);
      throw std::runtime_error("RabbitMQ login: " + describe(login));
    }
    amqp_channel_open(state_, kChannel);
    if (const auto reply = amqp_get_rpc_reply(state_); reply.reply_type != AMQP_RESPONSE_NORMAL) {
      amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
      amqp_destroy_connection(state_);
      throw std::runtime_error("open a channel: " + describe(reply));
    }
  }
  ~Session() {
    // Closing the channel returns every unacknowledged basic.get message to its queue.
    amqp_channel_close(state_, kChannel, AMQP_REPLY_SUCCESS);
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  amqp_connection_state_t get() const { return state_; }

 private:
  amqp_connection_state_t state_;
};

std::string header_text(const amqp_table_t& headers, std::string_view key) {
  for (int i = 0; i < headers.num_entries; ++i) {
    const amqp_table_entry_t& entry = headers.entries[i];
    if (text_of(entry.key) != key) continue;
    if (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES) {
      return text_of(entry.value.value.bytes);
    }
  }
  return {};
}

}  // namespace

std::vector<std::uint32_t> ready_counts(const std::string& amqp_url,
                                        const std::vector<std::string>& queues) {
  Session session(amqp_url);
  std::vector<std::uint32_t> counts;
  for (const auto& queue : queues) {
    const auto* ok = amqp_queue_declare(session.get(), kChannel, amqp_cstring_bytes(queue.c_str()),
                                        /*passive=*/1, 0, 0, 0, amqp_empty_table);
    check(amqp_get_rpc_reply(session.get()), "passive declare of " + queue);
    counts.push_back(ok->message_count);
  }
  return counts;
}

std::vector<DeadLetter> peek_all(const std::string& amqp_url, const std::string& queue) {
  Session session(amqp_url);
  std::vector<DeadLetter> found;
  for (;;) {
    const auto reply =
        amqp_basic_get(session.get(), kChannel, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/0);
    check(reply, "basic.get from " + queue);
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) break;
    {
      amqp_message_t message;
      check(amqp_read_message(session.get(), kChannel, &message, 0), "read a message of " + queue);
      // Freed however the copy below ends.
      std::unique_ptr<amqp_message_t, void (*)(amqp_message_t*)> owned(&message,
                                                                        amqp_destroy_message);
      DeadLetter letter;
      const auto& properties = message.properties;
      if ((properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
        letter.message_id = text_of(properties.message_id);
      }
      if ((properties._flags & AMQP_BASIC_HEADERS_FLAG) != 0) {
        letter.reason = header_text(properties.headers, "x-failure-reason");
      }
      found.push_back(std::move(letter));
    }
    // The basic.get-ok frame lives in the connection's buffers until they are released.
    amqp_maybe_release_buffers(session.get());
  }
  return found;
}

}  // namespace notifs::faults
