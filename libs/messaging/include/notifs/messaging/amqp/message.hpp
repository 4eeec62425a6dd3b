#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace notifs::messaging::amqp {

// A header value as this suite uses them (AMQP field tables carry more types; others are
// decoded to their text form).
using HeaderValue = std::variant<std::string, std::int64_t, bool>;

class MessageHeaders {
 public:
  void set(std::string name, HeaderValue value);
  const HeaderValue* find(std::string_view name) const;
  std::optional<std::string> get_string(std::string_view name) const;
  std::optional<std::int64_t> get_int(std::string_view name) const;  // also parses digit strings

  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  std::size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }

 private:
  std::vector<std::pair<std::string, HeaderValue>> fields_;
};

// Header names the suite gives meaning to.
inline constexpr std::string_view kAttemptHeader = "x-attempt";          // 1 for the first try
inline constexpr std::string_view kFailureReasonHeader = "x-failure-reason";
inline constexpr std::string_view kLastErrorHeader = "x-last-error";     // reason of the last retry
inline constexpr std::string_view kOriginalQueueHeader = "x-original-queue";
inline constexpr std::string_view kTraceparentHeader = "traceparent";

struct OutgoingMessage {
  std::string exchange;
  std::string routing_key;
  std::string body;
  std::string content_type = "application/json";
  std::string message_id;      // the notification id
  std::string correlation_id;  // the request id
  std::optional<std::uint8_t> priority;  // 0..9
  std::optional<std::chrono::system_clock::time_point> timestamp;  // default: now
  MessageHeaders headers;
  bool persistent = true;  // delivery_mode 2
  bool mandatory = true;   // unroutable -> AmqpErrc::unroutable, never a silent drop
};

struct Delivery {
  std::string exchange;
  std::string routing_key;
  std::string body;
  std::string content_type;
  std::string message_id;
  std::string correlation_id;
  std::optional<std::uint8_t> priority;
  std::optional<std::chrono::system_clock::time_point> timestamp;
  MessageHeaders headers;
  bool redelivered = false;

  // The x-attempt header, 1 when absent or malformed.
  std::uint32_t attempt() const;
};

}  // namespace notifs::messaging::amqp
