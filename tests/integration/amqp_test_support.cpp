#include "integration/amqp_test_support.hpp"

#include <amqp.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "amqp/message_codec.hpp"

namespace notifs::amqp_test {

namespace detail = notifs::messaging::amqp::detail;
using test_support::shell_quote;

namespace {

timeval to_timeval(std::chrono::steady_clock::duration duration) {
  const auto micros = std::max<std::int64_t>(
      0, std::chrono::duration_cast<std::chrono::microseconds>(duration).count());
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(micros / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(micros % 1000000);
  return tv;
}

amqp_rpc_reply_t server_exception(const amqp_method_t& method) {
  amqp_rpc_reply_t reply{};
  reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
  reply.reply = method;
  return reply;
}

}  // namespace

std::string rabbitmq_url() { return require_env("NOTIFS_TEST_RABBITMQ_URL"); }

amqp::ConnectionSettings connection_settings(std::string connection_name) {
  amqp::ConnectionSettings settings;
  settings.url = rabbitmq_url();
  settings.connection_name = std::move(connection_name);
  settings.heartbeat = std::chrono::seconds{10};
  settings.connect_timeout = std::chrono::milliseconds{3000};
  settings.rpc_timeout = std::chrono::milliseconds{10000};
  settings.reconnect = {std::chrono::milliseconds{50}, std::chrono::milliseconds{1000}, 2.0};
  return settings;
}

std::string unique_prefix() {
  std::random_device device;
  std::uniform_int_distribution<std::uint32_t> dist;
  std::ostringstream out;
  out << "t-" << ::getpid() << '-' << std::hex << dist(device) << '.';
  return out.str();
}

amqp::TopologySettings test_topology(amqp::QueueType type, std::string prefix) {
  amqp::TopologySettings topology;
  topology.queue_type = type;
  topology.channels = {"email", "push"};
  topology.retry_tiers = 2;
  topology.retry_base_delay = std::chrono::milliseconds{200};
  topology.retry_factor = 2.0;
  topology.names = amqp::TopologyNames(std::move(prefix));
  return topology;
}

CommandResult run_rabbitmqctl(const std::vector<std::string>& args) {
  std::string command = shell_quote(require_env("NOTIFS_TEST_RABBITMQCTL"));
  for (const auto& arg : args) command += " " + shell_quote(arg);
  return test_support::run_command(command + " 2>&1");
}

std::string rabbitmqctl(const std::vector<std::string>& args) {
  CommandResult result = run_rabbitmqctl(args);
  if (result.exit_code != 0) {
    std::string joined;
    for (const auto& arg : args) joined += " " + arg;
    FAIL("rabbitmqctl" << joined << " exited with " << result.exit_code << ": "
                       << result.output);
  }
  return result.output;
}

nlohmann::json queue_arguments(const std::string& queue) {
  const std::string output =
      rabbitmqctl({"list_queues", "--quiet", "--formatter", "json", "name", "arguments"});
  nlohmann::json listing = nlohmann::json::parse(output, nullptr, false);
  if (!listing.is_array()) FAIL("unexpected output of rabbitmqctl list_queues: " << output);
  for (const auto& entry : listing) {
    if (entry.value("name", std::string()) != queue) continue;
    const nlohmann::json& arguments = entry.at("arguments");
    // rabbitmqctl 3.10 renders the table as [["x-max-priority", "long", 10], ...].
    if (arguments.is_object()) return arguments;
    nlohmann::json object = nlohmann::json::object();
    if (!arguments.is_array()) FAIL("unexpected arguments of " << queue << ": " << output);
    for (const auto& field : arguments) {
      if (!field.is_array() || field.empty() || !field[0].is_string()) {
        FAIL("unexpected argument of " << queue << ": " << field.dump());
      }
      object[field[0].get<std::string>()] = field.back();
    }
    return object;
  }
  FAIL("queue " << queue << " is not in rabbitmqctl list_queues: " << output);
  return {};
}

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

BrokerProbe::BrokerProbe(const amqp::ConnectionSettings& settings)
    : connection_(detail::Connection::open(settings)), confirm_timeout_(settings.rpc_timeout) {
  connection_->open_channel(kChannel);
  connection_->confirm_select(kChannel);
}

BrokerProbe::~BrokerProbe() = default;

template <typename Step>
auto BrokerProbe::on_channel(Step&& step) -> decltype(step()) {
  try {
    return step();
  } catch (const amqp::AmqpError& error) {
    if (error.scope() == amqp::AmqpError::Scope::channel && !connection_->broken()) {
      connection_->open_channel(kChannel);
      connection_->confirm_select(kChannel);
    }
    throw;
  }
}

std::uint32_t BrokerProbe::message_count(const std::string& queue) {
  return on_channel([&] {
    const amqp_queue_declare_ok_t* ok =
        amqp_queue_declare(connection_->state(), kChannel, amqp_cstring_bytes(queue.c_str()),
                           /*passive=*/1, 0, 0, 0, amqp_empty_table);
    connection_->check_last_reply("queue.declare passive " + queue, kChannel);
    return ok->message_count;
  });
}

bool BrokerProbe::queue_exists(const std::string& queue) {
  try {
    message_count(queue);
    return true;
  } catch (const amqp::AmqpError& error) {
    if (error.scope() == amqp::AmqpError::Scope::channel && error.code() == 404) return false;
    throw;
  }
}

std::optional<amqp::Delivery> BrokerProbe::get(const std::string& queue) {
  return on_channel([&]() -> std::optional<amqp::Delivery> {
    amqp_connection_state_t state = connection_->state();
    amqp_maybe_release_buffers(state);
    const amqp_rpc_reply_t reply =
        amqp_basic_get(state, kChannel, amqp_cstring_bytes(queue.c_str()), /*no_ack=*/1);
    connection_->check(reply, "basic.get " + queue, kChannel);
    if (reply.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) return std::nullopt;
    if (reply.reply.id != AMQP_BASIC_GET_OK_METHOD) {
      throw std::runtime_error("basic.get " + queue + ": unexpected method " +
                               std::to_string(reply.reply.id));
    }
    const auto* ok = static_cast<const amqp_basic_get_ok_t*>(reply.reply.decoded);
    // Copied now: reading the content may recycle the pool `ok` lives in.
    std::string exchange = detail::to_string(ok->exchange);
    std::string routing_key = detail::to_string(ok->routing_key);
    const bool redelivered = ok->redelivered != 0;
    amqp_message_t message{};
    connection_->check(amqp_read_message(state, kChannel, &message, 0),
                       "read message from " + queue, kChannel);
    amqp::Delivery delivery =
        detail::decode_delivery(message.properties, detail::to_string(message.body),
                                std::move(exchange), std::move(routing_key), redelivered);
    amqp_destroy_message(&message);
    return delivery;
  });
}

void BrokerProbe::wait_for_confirm() {
  amqp_connection_state_t state = connection_->state();
  const auto deadline = std::chrono::steady_clock::now() + confirm_timeout_;
  bool returned = false;
  std::string return_text;
  while (true) {
    amqp_frame_t frame{};
    timeval tv = to_timeval(deadline - std::chrono::steady_clock::now());
    const int status = amqp_simple_wait_frame_noblock(state, &frame, &tv);
    if (status == AMQP_STATUS_TIMEOUT) {
      throw std::runtime_error("no publisher confirm within the timeout");
    }
    if (status != AMQP_STATUS_OK) {
      connection_->mark_broken();
      detail::check_status(status, "wait for confirm");
    }
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD:
        if (returned) throw std::runtime_error("message returned as unroutable: " + return_text);
        return;
      case AMQP_BASIC_NACK_METHOD:
        throw std::runtime_error("message nacked by the broker");
      case AMQP_BASIC_RETURN_METHOD: {
        const auto* ret = static_cast<const amqp_basic_return_t*>(frame.payload.method.decoded);
        return_text = std::to_string(ret->reply_code) + " " + detail::to_string(ret->reply_text);
        returned = true;
        // The returned content follows; read it so the frame stream stays in step.
        amqp_message_t message{};
        connection_->check(amqp_read_message(state, frame.channel, &message, 0),
                           "read returned message", kChannel);
        amqp_destroy_message(&message);
        break;
      }
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD:
        connection_->check(server_exception(frame.payload.method), "publish", kChannel);
        break;
      default:
        break;
    }
  }
}

void BrokerProbe::publish(const amqp::OutgoingMessage& message) {
  on_channel([&] {
    const detail::EncodedProperties properties(message);
    const int status = amqp_basic_publish(
        connection_->state(), kChannel, amqp_cstring_bytes(message.exchange.c_str()),
        amqp_cstring_bytes(message.routing_key.c_str()), message.mandatory ? 1 : 0, 0,
        properties.get(), amqp_bytes_t{message.body.size(), const_cast<char*>(message.body.data())});
    if (status != AMQP_STATUS_OK) {
      connection_->mark_broken();
      detail::check_status(status, "basic.publish to " + message.exchange);
    }
    wait_for_confirm();
  });
}

void BrokerProbe::publish_raw(const std::string& exchange, const std::string& routing_key,
                              const std::string& body) {
  on_channel([&] {
    amqp_basic_properties_t properties{};
    properties._flags = 0;
    const int status = amqp_basic_publish(
        connection_->state(), kChannel, amqp_cstring_bytes(exchange.c_str()),
        amqp_cstring_bytes(routing_key.c_str()), 1, 0, &properties,
        amqp_bytes_t{body.size(), const_cast<char*>(body.data())});
    if (status != AMQP_STATUS_OK) {
      connection_->mark_broken();
      detail::check_status(status, "basic.publish to " + exchange);
    }
    wait_for_confirm();
  });
}

void BrokerProbe::declare_queue(const std::string& queue, const nlohmann::json& arguments) {
  on_channel([&] {
    std::vector<std::string> strings;
    strings.reserve(arguments.size() * 2);
    std::vector<amqp_table_entry_t> entries;
    for (const auto& [key, value] : arguments.items()) {
      amqp_table_entry_t entry{};
      entry.key = amqp_cstring_bytes(strings.emplace_back(key).c_str());
      if (value.is_string()) {
        entry.value.kind = AMQP_FIELD_KIND_UTF8;
        entry.value.value.bytes =
            amqp_cstring_bytes(strings.emplace_back(value.get<std::string>()).c_str());
      } else if (value.is_boolean()) {
        entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
        entry.value.value.boolean = value.get<bool>() ? 1 : 0;
      } else if (value.is_number_integer()) {
        entry.value.kind = AMQP_FIELD_KIND_I64;
        entry.value.value.i64 = value.get<std::int64_t>();
      } else {
        throw std::invalid_argument("declare_queue: unsupported argument type for " + key);
      }
      entries.push_back(entry);
    }
    amqp_table_t table{};
    table.num_entries = static_cast<int>(entries.size());
    table.entries = entries.data();
    amqp_queue_declare(connection_->state(), kChannel, amqp_cstring_bytes(queue.c_str()), 0,
                       /*durable=*/1, 0, 0, table);
    connection_->check_last_reply("queue.declare " + queue, kChannel);
  });
}

void BrokerProbe::delete_queue(const std::string& queue) {
  on_channel([&] {
    amqp_queue_delete(connection_->state(), kChannel, amqp_cstring_bytes(queue.c_str()), 0, 0);
    connection_->check_last_reply("queue.delete " + queue, kChannel);
  });
}

void BrokerProbe::delete_exchange(const std::string& exchange) {
  on_channel([&] {
    amqp_exchange_delete(connection_->state(), kChannel, amqp_cstring_bytes(exchange.c_str()),
                         0);
    connection_->check_last_reply("exchange.delete " + exchange, kChannel);
  });
}

void BrokerProbe::delete_topology(const amqp::TopologySettings& topology) {
  const amqp::TopologyNames& names = topology.names;
  std::vector<std::string> queues{names.failed_queue(), names.status_queue()};
  for (const auto& channel : topology.channels) {
    queues.push_back(names.main_queue(channel));
    for (std::uint32_t tier = 1; tier <= topology.retry_tiers; ++tier) {
      queues.push_back(names.retry_queue(channel, tier));
    }
  }
  for (const auto& queue : queues) delete_queue(queue);
  for (const auto& exchange : {names.direct_exchange(), names.retry_exchange(),
                               names.dead_letter_exchange(), names.status_exchange()}) {
    delete_exchange(exchange);
  }
}

TopologyCleanup::~TopologyCleanup() {
  // Never FAIL here (a destructor may run while a failure unwinds the test).
  const char* url = std::getenv("NOTIFS_TEST_RABBITMQ_URL");
  if (url == nullptr || *url == '\0') return;
  try {
    amqp::ConnectionSettings settings;
    settings.url = url;
    settings.connection_name = "cleanup";
    settings.connect_timeout = std::chrono::milliseconds{2000};
    settings.rpc_timeout = std::chrono::milliseconds{5000};
    BrokerProbe probe(settings);
    probe.delete_topology(topology_);
  } catch (...) {
    // Best effort: the broker of a test run is thrown away at the end anyway.
  }
}

}  // namespace notifs::amqp_test
