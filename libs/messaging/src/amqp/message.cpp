#include "notifs/messaging/amqp/message.hpp"

#include <charconv>
#include <limits>
#include <system_error>

namespace notifs::messaging::amqp {

void MessageHeaders::set(std::string name, HeaderValue value) {
  for (auto& field : fields_) {
    if (field.first == name) {
      field.second = std::move(value);
      return;
    }
  }
  fields_.emplace_back(std::move(name), std::move(value));
}

const HeaderValue* MessageHeaders::find(std::string_view name) const {
  for (const auto& field : fields_) {
    if (field.first == name) return &field.second;
  }
  return nullptr;
}

std::optional<std::string> MessageHeaders::get_string(std::string_view name) const {
  const HeaderValue* value = find(name);
  if (value == nullptr) return std::nullopt;
  if (const auto* text = std::get_if<std::string>(value)) return *text;
  if (const auto* number = std::get_if<std::int64_t>(value)) return std::to_string(*number);
  return std::get<bool>(*value) ? "true" : "false";
}

std::optional<std::int64_t> MessageHeaders::get_int(std::string_view name) const {
  const HeaderValue* value = find(name);
  if (value == nullptr) return std::nullopt;
  if (const auto* number = std::get_if<std::int64_t>(value)) return *number;
  // Other clients (and people with rabbitmqadmin) often put numbers in string headers.
  if (const auto* text = std::get_if<std::string>(value)) {
    std::int64_t parsed = 0;
    const char* first = text->data();
    const char* last = first + text->size();
    const auto [end, error] = std::from_chars(first, last, parsed);
    if (error == std::errc{} && end == last && !text->empty()) return parsed;
  }
  return std::nullopt;
}

std::uint32_t Delivery::attempt() const {
  const std::optional<std::int64_t> value = headers.get_int(kAttemptHeader);
  if (!value || *value < 1 || *value > std::numeric_limits<std::uint32_t>::max()) return 1;
  return static_cast<std::uint32_t>(*value);
}

}  // namespace notifs::messaging::amqp
