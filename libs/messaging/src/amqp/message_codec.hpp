#pragma once

// Conversion between the suite's message types and rabbitmq-c's basic properties. Private:
// amqp.h stays out of public headers.
#include <amqp.h>

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "notifs/messaging/amqp/message.hpp"

namespace notifs::messaging::amqp::detail {

// The basic properties of one outgoing message (content type, delivery_mode 2 when
// persistent, message_id, correlation_id, priority, timestamp in seconds, headers as an
// AMQP field table of longstr / signed 64-bit / boolean). rabbitmq-c's structs only point
// at bytes; this object owns them, so `properties()` stays valid as long as it lives,
// including after a move (the storage is on the heap). Not thread-safe; cheap to build.
class EncodedProperties {
 public:
  // `now` is the timestamp when the message carries none.
  explicit EncodedProperties(
      const OutgoingMessage& message,
      std::chrono::system_clock::time_point now = std::chrono::system_clock::now());
  EncodedProperties(EncodedProperties&&) noexcept = default;
  EncodedProperties& operator=(EncodedProperties&&) noexcept = default;
  EncodedProperties(const EncodedProperties&) = delete;
  EncodedProperties& operator=(const EncodedProperties&) = delete;
  ~EncodedProperties() = default;

  const amqp_basic_properties_t& properties() const { return storage_->properties; }
  // For amqp_basic_publish, which takes a pointer.
  const amqp_basic_properties_t* get() const { return &storage_->properties; }

 private:
  struct Storage {
    std::deque<std::string> strings;  // a deque never moves what it holds when it grows
    std::vector<amqp_table_entry_t> entries;
    amqp_basic_properties_t properties{};
  };
  std::unique_ptr<Storage> storage_;
};

// A Delivery from what rabbitmq-c read (basic.deliver / basic.get-ok plus the content
// header). Every property is copied, so the result does not refer to rabbitmq-c's pools.
// Headers of every AMQP field type are accepted: integers of any width become int64
// (unsigned 64-bit values above INT64_MAX become text), booleans stay booleans, strings
// and byte arrays become strings, timestamps their seconds, floats and decimals their text,
// and nested tables and arrays (x-death, for example) a bounded text rendering.
Delivery decode_delivery(const amqp_basic_properties_t& properties, std::string body,
                         std::string exchange, std::string routing_key, bool redelivered);

// Copies rabbitmq-c bytes (which may be {0, nullptr}) into a string.
std::string to_string(amqp_bytes_t bytes);

}  // namespace notifs::messaging::amqp::detail
