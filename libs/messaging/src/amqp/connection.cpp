#include "amqp/connection.hpp"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::messaging::amqp::detail {

namespace {

// AMQP's frame_max default; 128 KiB keeps a 512-byte message in one frame with headers.
constexpr int kFrameMax = 131072;
// 0 lets the broker choose (RabbitMQ offers 2047).
constexpr int kChannelMax = 0;

std::string to_string(amqp_bytes_t bytes) {
  if (bytes.len == 0 || bytes.bytes == nullptr) return {};
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

timeval to_timeval(std::chrono::milliseconds duration) {
  if (duration.count() < 0) duration = std::chrono::milliseconds{0};
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(duration.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((duration.count() % 1000) * 1000);
  return tv;
}

amqp_table_entry_t utf8_entry(const char* key, const char* value) {
  amqp_table_entry_t entry{};
  entry.key = amqp_cstring_bytes(key);
  entry.value.kind = AMQP_FIELD_KIND_UTF8;
  entry.value.value.bytes = amqp_cstring_bytes(value);
  return entry;
}

amqp_table_entry_t bool_entry(const char* key, bool value) {
  amqp_table_entry_t entry{};
  entry.key = amqp_cstring_bytes(key);
  entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
  entry.value.value.boolean = value ? 1 : 0;
  return entry;
}

}  // namespace

void check_status(int status, std::string_view context) {
  if (status >= 0) return;
  throw AmqpError(AmqpError::Scope::library, status, std::string(context),
                  amqp_error_string2(status));
}

void check_reply(const amqp_rpc_reply_t& reply, std::string_view context) {
  switch (reply.reply_type) {
    case AMQP_RESPONSE_NORMAL:
      return;
    case AMQP_RESPONSE_NONE:
      throw AmqpError(AmqpError::Scope::library, AMQP_STATUS_UNEXPECTED_STATE,
                      std::string(context), "no reply from rabbitmq-c (missing RPC reply)");
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
      throw AmqpError(AmqpError::Scope::library, reply.library_error, std::string(context),
                      amqp_error_string2(reply.library_error));
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD && reply.reply.decoded != nullptr) {
        const auto* close = static_cast<const amqp_connection_close_t*>(reply.reply.decoded);
        throw AmqpError(AmqpError::Scope::connection, close->reply_code, std::string(context),
                        to_string(close->reply_text));
      }
      if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD && reply.reply.decoded != nullptr) {
        const auto* close = static_cast<const amqp_channel_close_t*>(reply.reply.decoded);
        throw AmqpError(AmqpError::Scope::channel, close->reply_code, std::string(context),
                        to_string(close->reply_text));
      }
      // Any other method in place of the reply means the two sides disagree about the
      // protocol state: nothing on this connection can be trusted any more.
      throw AmqpError(AmqpError::Scope::connection, AMQP_STATUS_WRONG_METHOD,
                      std::string(context),
                      "unexpected method " + std::to_string(reply.reply.id) + " from the broker");
  }
  throw AmqpError(AmqpError::Scope::library, AMQP_STATUS_UNEXPECTED_STATE, std::string(context),
                  "unknown rabbitmq-c reply type");
}

std::string Connection::address_of(const ConnectionSettings& settings, std::size_t attempt) {
  const std::vector<std::string> urls = split_urls(settings.url);
  return mask_url(urls[attempt % urls.size()]);
}

std::unique_ptr<Connection> Connection::open(const ConnectionSettings& settings,
                                             std::size_t attempt) {
  // The whole list is checked every time, so a bad address fails before any I/O even
  // when its turn has not come.
  validate_url(settings.url);
  const std::vector<std::string> urls = split_urls(settings.url);
  return open_address(settings, urls[attempt % urls.size()]);
}

std::unique_ptr<Connection> Connection::open(const ConnectionSettings& settings) {
  validate_url(settings.url);
  const std::vector<std::string> urls = split_urls(settings.url);
  if (urls.size() == 1) return open_address(settings, urls.front());
  std::string failures;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    try {
      return open_address(settings, urls[i]);
    } catch (const AmqpError& error) {
      failures += (failures.empty() ? "" : "; ") + std::string(error.what());
      if (i + 1 == urls.size()) {
        throw AmqpError(error.scope(), error.code(),
                        "connect to any of " + std::to_string(urls.size()) + " addresses",
                        failures);
      }
    }
  }
  throw std::logic_error("unreachable: an empty AMQP address list passed validation");
}

std::unique_ptr<Connection> Connection::open_address(const ConnectionSettings& settings,
                                                     const std::string& address) {
  // amqp_parse_url decodes percent-escapes in place and leaves `info` pointing into the
  // buffer, so the buffer lives until login is done.
  std::vector<char> url(address.begin(), address.end());
  url.push_back('\0');
  amqp_connection_info info{};
  amqp_default_connection_info(&info);
  if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
    throw std::invalid_argument("not a valid AMQP URL: " + mask_url(address));
  }
  const std::string where = std::string(info.ssl != 0 ? "amqps://" : "amqp://") + info.host +
                            ":" + std::to_string(info.port);

  amqp_connection_state_t state = amqp_new_connection();
  if (state == nullptr) {
    throw AmqpError(AmqpError::Scope::library, AMQP_STATUS_NO_MEMORY, "connect " + where,
                    "cannot allocate a connection");
  }
  // From here the Connection owns `state`: every exit, thrown or not, frees it once.
  std::unique_ptr<Connection> connection(new Connection(state, mask_url(address)));
  // Not logged in yet: nothing to close politely if a step below throws.
  connection->broken_ = true;

  amqp_socket_t* socket = nullptr;
  if (info.ssl != 0) {
    socket = amqp_ssl_socket_new(state);
    if (socket == nullptr) {
      throw AmqpError(AmqpError::Scope::library, AMQP_STATUS_SSL_ERROR, "connect " + where,
                      "cannot create a TLS socket");
    }
    check_status(amqp_ssl_socket_set_ssl_versions(socket, AMQP_TLSv1_2, AMQP_TLSvLATEST),
                 "tls versions " + where);
    if (!settings.tls_ca_file.empty()) {
      check_status(amqp_ssl_socket_set_cacert(socket, settings.tls_ca_file.c_str()),
                   "tls ca file " + settings.tls_ca_file);
    }
    amqp_ssl_socket_set_verify_peer(socket, settings.tls_verify_peer ? 1 : 0);
    amqp_ssl_socket_set_verify_hostname(socket, settings.tls_verify_hostname ? 1 : 0);
  } else {
    socket = amqp_tcp_socket_new(state);
    if (socket == nullptr) {
      throw AmqpError(AmqpError::Scope::library, AMQP_STATUS_NO_MEMORY, "connect " + where,
                      "cannot create a TCP socket");
    }
  }

  // connect_timeout bounds the TCP connect plus the TLS handshake, and separately the
  // AMQP handshake; a silent peer therefore costs at most about twice the setting.
  timeval connect_tv = to_timeval(settings.connect_timeout);
  check_status(amqp_socket_open_noblock(socket, info.host, info.port, &connect_tv),
               "connect " + where);
  check_status(amqp_set_handshake_timeout(state, &connect_tv), "handshake timeout " + where);
  timeval rpc_tv = to_timeval(settings.rpc_timeout);
  check_status(amqp_set_rpc_timeout(state, &rpc_tv), "rpc timeout " + where);

  // rabbitmq-c merges these with its defaults (platform, version, and the
  // authentication_failure_close capability that makes a refused login a connection.close
  // with the broker's reason instead of a bare socket close).
  std::array<amqp_table_entry_t, 2> capability_entries{
      bool_entry("consumer_cancel_notify", true), bool_entry("connection.blocked", true)};
  amqp_table_entry_t capabilities_entry{};
  capabilities_entry.key = amqp_cstring_bytes("capabilities");
  capabilities_entry.value.kind = AMQP_FIELD_KIND_TABLE;
  capabilities_entry.value.value.table.num_entries = static_cast<int>(capability_entries.size());
  capabilities_entry.value.value.table.entries = capability_entries.data();
  std::array<amqp_table_entry_t, 3> property_entries{
      utf8_entry("connection_name", settings.connection_name.c_str()),
      utf8_entry("product", "notifs"), capabilities_entry};
  amqp_table_t properties{};
  properties.num_entries = static_cast<int>(property_entries.size());
  properties.entries = property_entries.data();

  const auto heartbeat = static_cast<int>(
      std::max<std::chrono::seconds::rep>(0, std::min<std::chrono::seconds::rep>(
                                                 settings.heartbeat.count(), 65535)));
  const amqp_rpc_reply_t login =
      amqp_login_with_properties(state, info.vhost, kChannelMax, kFrameMax, heartbeat,
                                 &properties, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
  connection->broken_ = false;
  connection->check(login, "login " + where + " vhost '" + info.vhost + "' as '" + info.user +
                               "'");
  return connection;
}

Connection::~Connection() {
  if (!broken_) {
    // A polite close lets the broker log a clean disconnect instead of a lost client. It
    // is bounded by the rpc timeout and its failure changes nothing: the state is freed.
    const amqp_rpc_reply_t reply = amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
      common::logger("amqp")->debug("connection close was not clean reply_type={}",
                                    static_cast<int>(reply.reply_type));
    }
  }
  amqp_destroy_connection(state_);
}

void Connection::check(const amqp_rpc_reply_t& reply, std::string_view context,
                       amqp_channel_t channel) {
  if (reply.reply_type == AMQP_RESPONSE_NORMAL) return;
  if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
      reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
    // The broker has closed the channel; until it gets close-ok it keeps the number
    // reserved, so the caller could not open the channel again. rabbitmq-c does not
    // answer by itself. A send failure shows up on the next call on the connection.
    if (channel != 0) {
      amqp_channel_close_ok_t close_ok{};
      if (amqp_send_method(state_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok) !=
          AMQP_STATUS_OK) {
        broken_ = true;
      }
    }
  } else if (reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
             reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
    amqp_connection_close_ok_t close_ok{};
    amqp_send_method(state_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
    broken_ = true;
  } else {
    // A library error (socket, timeout, TLS) or an unexpected method: the protocol state
    // is unknown, so the connection is only good for destroying.
    broken_ = true;
  }
  check_reply(reply, context);
}

void Connection::check_last_reply(std::string_view context, amqp_channel_t channel) {
  check(amqp_get_rpc_reply(state_), context, channel);
}

void Connection::open_channel(amqp_channel_t channel) {
  amqp_channel_open(state_, channel);
  check_last_reply("channel.open " + std::to_string(channel), channel);
}

void Connection::confirm_select(amqp_channel_t channel) {
  amqp_confirm_select(state_, channel);
  check_last_reply("confirm.select channel " + std::to_string(channel), channel);
}

void Connection::basic_qos(amqp_channel_t channel, std::uint16_t prefetch) {
  amqp_basic_qos(state_, channel, 0, prefetch, 0);
  check_last_reply("basic.qos channel " + std::to_string(channel) + " prefetch " +
                       std::to_string(prefetch),
                   channel);
}

void Connection::close_channel(amqp_channel_t channel) noexcept {
  if (broken_) return;
  const amqp_rpc_reply_t reply = amqp_channel_close(state_, channel, AMQP_REPLY_SUCCESS);
  if (reply.reply_type != AMQP_RESPONSE_NORMAL) broken_ = true;
}

int Connection::socket_fd() const { return amqp_get_sockfd(state_); }

bool Connection::has_buffered_frames() const {
  return amqp_frames_enqueued(state_) != 0 || amqp_data_in_buffer(state_) != 0;
}

}  // namespace notifs::messaging::amqp::detail
