#include "amqp/message_codec.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <utility>

namespace notifs::messaging::amqp::detail {

namespace {

// Nested tables and arrays are rendered down to this depth and this many characters, so
// a hostile or looping header cannot blow up memory or the stack.
constexpr int kMaxRenderDepth = 4;
constexpr std::size_t kMaxRenderedSize = 4096;
// Seconds beyond this do not fit system_clock's nanoseconds (year 2262): no timestamp.
constexpr std::uint64_t kMaxTimestampSeconds = 9'000'000'000ULL;

amqp_bytes_t bytes_of(const std::string& text) {
  amqp_bytes_t bytes{};
  bytes.len = text.size();
  // rabbitmq-c never writes through properties it is given; the cast only drops const.
  bytes.bytes = const_cast<char*>(text.data());
  return bytes;
}

std::string double_text(double value) {
  std::array<char, 64> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  if (result.ec != std::errc{}) return "nan";
  return {buffer.data(), result.ptr};
}

std::string decimal_text(const amqp_decimal_t& decimal) {
  std::string digits = std::to_string(decimal.value);
  if (decimal.decimals == 0) return digits;
  const std::size_t scale = decimal.decimals;
  if (digits.size() <= scale) digits.insert(0, scale - digits.size() + 1, '0');
  digits.insert(digits.size() - scale, ".");
  return digits;
}

void render(const amqp_field_value_t& value, int depth, std::string& out);

void render_table(const amqp_table_t& table, int depth, std::string& out) {
  if (depth >= kMaxRenderDepth) {
    out += "{...}";
    return;
  }
  out += '{';
  for (int i = 0; i < table.num_entries && table.entries != nullptr; ++i) {
    if (out.size() > kMaxRenderedSize) break;
    if (i > 0) out += ", ";
    out += to_string(table.entries[i].key);
    out += ": ";
    render(table.entries[i].value, depth + 1, out);
  }
  out += '}';
}

void render_array(const amqp_array_t& array, int depth, std::string& out) {
  if (depth >= kMaxRenderDepth) {
    out += "[...]";
    return;
  }
  out += '[';
  for (int i = 0; i < array.num_entries && array.entries != nullptr; ++i) {
    if (out.size() > kMaxRenderedSize) break;
    if (i > 0) out += ", ";
    render(array.entries[i], depth + 1, out);
  }
  out += ']';
}

// The header value of a field; nested containers become text.
HeaderValue decode_value(const amqp_field_value_t& value, int depth);

void render(const amqp_field_value_t& value, int depth, std::string& out) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_TABLE: render_table(value.value.table, depth, out); return;
    case AMQP_FIELD_KIND_ARRAY: render_array(value.value.array, depth, out); return;
    default: break;
  }
  const HeaderValue decoded = decode_value(value, depth);
  if (const auto* text = std::get_if<std::string>(&decoded)) {
    out += *text;
  } else if (const auto* number = std::get_if<std::int64_t>(&decoded)) {
    out += std::to_string(*number);
  } else {
    out += std::get<bool>(decoded) ? "true" : "false";
  }
  if (out.size() > kMaxRenderedSize) out.resize(kMaxRenderedSize);
}

HeaderValue decode_value(const amqp_field_value_t& value, int depth) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_BOOLEAN: return value.value.boolean != 0;
    case AMQP_FIELD_KIND_I8: return std::int64_t{value.value.i8};
    case AMQP_FIELD_KIND_U8: return std::int64_t{value.value.u8};
    case AMQP_FIELD_KIND_I16: return std::int64_t{value.value.i16};
    case AMQP_FIELD_KIND_U16: return std::int64_t{value.value.u16};
    case AMQP_FIELD_KIND_I32: return std::int64_t{value.value.i32};
    case AMQP_FIELD_KIND_U32: return std::int64_t{value.value.u32};
    case AMQP_FIELD_KIND_I64: return std::int64_t{value.value.i64};
    case AMQP_FIELD_KIND_U64:
      if (value.value.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::to_string(value.value.u64);
      }
      return static_cast<std::int64_t>(value.value.u64);
    case AMQP_FIELD_KIND_TIMESTAMP:
      if (value.value.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return std::to_string(value.value.u64);
      }
      return static_cast<std::int64_t>(value.value.u64);
    case AMQP_FIELD_KIND_F32: return double_text(static_cast<double>(value.value.f32));
    case AMQP_FIELD_KIND_F64: return double_text(value.value.f64);
    case AMQP_FIELD_KIND_DECIMAL: return decimal_text(value.value.decimal);
    case AMQP_FIELD_KIND_UTF8:
    case AMQP_FIELD_KIND_BYTES: return to_string(value.value.bytes);
    case AMQP_FIELD_KIND_VOID: return std::string();
    case AMQP_FIELD_KIND_TABLE: {
      std::string out;
      render_table(value.value.table, depth, out);
      return out;
    }
    case AMQP_FIELD_KIND_ARRAY: {
      std::string out;
      render_array(value.value.array, depth, out);
      return out;
    }
  }
  return std::string();
}

}  // namespace

std::string to_string(amqp_bytes_t bytes) {
  if (bytes.len == 0 || bytes.bytes == nullptr) return {};
  return {static_cast<const char*>(bytes.bytes), bytes.len};
}

EncodedProperties::EncodedProperties(const OutgoingMessage& message,
                                     std::chrono::system_clock::time_point now)
    : storage_(std::make_unique<Storage>()) {
  Storage& s = *storage_;
  amqp_basic_properties_t& p = s.properties;
  p._flags = 0;

  const auto keep = [&s](const std::string& text) -> amqp_bytes_t {
    return bytes_of(s.strings.emplace_back(text));
  };

  if (!message.content_type.empty()) {
    p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
    p.content_type = keep(message.content_type);
  }
  p._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
  p.delivery_mode = message.persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
  if (!message.message_id.empty()) {
    p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
    p.message_id = keep(message.message_id);
  }
  if (!message.correlation_id.empty()) {
    p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    p.correlation_id = keep(message.correlation_id);
  }
  if (message.priority) {
    p._flags |= AMQP_BASIC_PRIORITY_FLAG;
    p.priority = *message.priority;
  }
  const auto when = message.timestamp.value_or(now);
  const auto seconds =
      std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
  p._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
  p.timestamp = seconds > 0 ? static_cast<std::uint64_t>(seconds) : 0;

  if (!message.headers.empty()) {
    s.entries.reserve(message.headers.size());
    for (const auto& [name, value] : message.headers) {
      amqp_table_entry_t entry{};
      entry.key = keep(name);
      if (const auto* text = std::get_if<std::string>(&value)) {
        entry.value.kind = AMQP_FIELD_KIND_UTF8;
        entry.value.value.bytes = keep(*text);
      } else if (const auto* number = std::get_if<std::int64_t>(&value)) {
        entry.value.kind = AMQP_FIELD_KIND_I64;
        entry.value.value.i64 = *number;
      } else {
        entry.value.kind = AMQP_FIELD_KIND_BOOLEAN;
        entry.value.value.boolean = std::get<bool>(value) ? 1 : 0;
      }
      s.entries.push_back(entry);
    }
    p._flags |= AMQP_BASIC_HEADERS_FLAG;
    p.headers.num_entries = static_cast<int>(s.entries.size());
    p.headers.entries = s.entries.data();
  }
}

Delivery decode_delivery(const amqp_basic_properties_t& properties, std::string body,
                         std::string exchange, std::string routing_key, bool redelivered) {
  Delivery delivery;
  delivery.exchange = std::move(exchange);
  delivery.routing_key = std::move(routing_key);
  delivery.body = std::move(body);
  delivery.redelivered = redelivered;
  const amqp_flags_t flags = properties._flags;
  if ((flags & AMQP_BASIC_CONTENT_TYPE_FLAG) != 0) {
    delivery.content_type = to_string(properties.content_type);
  }
  if ((flags & AMQP_BASIC_MESSAGE_ID_FLAG) != 0) {
    delivery.message_id = to_string(properties.message_id);
  }
  if ((flags & AMQP_BASIC_CORRELATION_ID_FLAG) != 0) {
    delivery.correlation_id = to_string(properties.correlation_id);
  }
  if ((flags & AMQP_BASIC_PRIORITY_FLAG) != 0) delivery.priority = properties.priority;
  if ((flags & AMQP_BASIC_TIMESTAMP_FLAG) != 0 && properties.timestamp <= kMaxTimestampSeconds) {
    delivery.timestamp = std::chrono::system_clock::time_point(std::chrono::duration_cast<
        std::chrono::system_clock::duration>(
        std::chrono::seconds(static_cast<std::int64_t>(properties.timestamp))));
  }
  if ((flags & AMQP_BASIC_HEADERS_FLAG) != 0 && properties.headers.entries != nullptr) {
    for (int i = 0; i < properties.headers.num_entries; ++i) {
      const amqp_table_entry_t& entry = properties.headers.entries[i];
      delivery.headers.set(to_string(entry.key), decode_value(entry.value, 0));
    }
  }
  return delivery;
}

}  // namespace notifs::messaging::amqp::detail
