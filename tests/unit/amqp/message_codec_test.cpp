#include <amqp.h>

#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "amqp/message_codec.hpp"

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
using namespace std::chrono_literals;

namespace {

std::string text_of(amqp_bytes_t bytes) { return detail::to_string(bytes); }

// Sends a table through rabbitmq-c's wire encoder and decoder, as the broker path would.
class WireTable {
 public:
  explicit WireTable(amqp_table_t table) {
    init_amqp_pool(&pool_, 4096);
    std::vector<char> buffer(65536);
    amqp_bytes_t encoded{buffer.size(), buffer.data()};
    std::size_t offset = 0;
    REQUIRE(amqp_encode_table(encoded, &table, &offset) == AMQP_STATUS_OK);
    encoded.len = offset;
    buffer_ = std::move(buffer);
    encoded.bytes = buffer_.data();
    std::size_t read = 0;
    REQUIRE(amqp_decode_table(encoded, &pool_, &decoded_, &read) == AMQP_STATUS_OK);
    REQUIRE(read == offset);
  }
  ~WireTable() { empty_amqp_pool(&pool_); }
  WireTable(const WireTable&) = delete;
  WireTable& operator=(const WireTable&) = delete;

  const amqp_table_t& table() const { return decoded_; }

 private:
  amqp_pool_t pool_{};
  std::vector<char> buffer_;
  amqp_table_t decoded_{};
};

amqp::OutgoingMessage full_message() {
  amqp::OutgoingMessage message;
  message.exchange = "notifications.direct";
  message.routing_key = "email";
  message.body = R"({"notification_id":"n-1"})";
  message.message_id = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";
  message.correlation_id = "order-1234-welcome";
  message.priority = 7;
  message.timestamp = std::chrono::system_clock::time_point(1'700'000'000s) + 900ms;
  message.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{2});
  message.headers.set(std::string(amqp::kTraceparentHeader),
                      std::string("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
  message.headers.set("x-flag", true);
  message.headers.set("x-empty", std::string());
  return message;
}

}  // namespace

TEST_CASE("amqp EncodedProperties sets flags and values of a full message", "[amqp]") {
  const amqp::OutgoingMessage message = full_message();
  const detail::EncodedProperties encoded(message);
  const amqp_basic_properties_t& p = encoded.properties();
  const amqp_flags_t expected = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                                AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
                                AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
                                AMQP_BASIC_HEADERS_FLAG;
  CHECK(p._flags == expected);
  CHECK(text_of(p.content_type) == "application/json");
  CHECK(p.delivery_mode == 2);
  CHECK(text_of(p.message_id) == message.message_id);
  CHECK(text_of(p.correlation_id) == message.correlation_id);
  CHECK(p.priority == 7);
  CHECK(p.timestamp == 1'700'000'000u);  // whole seconds, as AMQP timestamps are
  REQUIRE(p.headers.num_entries == 4);
  CHECK(text_of(p.headers.entries[0].key) == "x-attempt");
  CHECK(p.headers.entries[0].value.kind == AMQP_FIELD_KIND_I64);
  CHECK(p.headers.entries[0].value.value.i64 == 2);
  CHECK(p.headers.entries[2].value.kind == AMQP_FIELD_KIND_BOOLEAN);
  CHECK(p.headers.entries[3].value.kind == AMQP_FIELD_KIND_UTF8);
}

TEST_CASE("amqp EncodedProperties leaves out what the message does not carry", "[amqp]") {
  amqp::OutgoingMessage message;
  message.content_type.clear();
  message.persistent = false;
  const auto now = std::chrono::system_clock::time_point(1234s);
  const detail::EncodedProperties encoded(message, now);
  const amqp_basic_properties_t& p = encoded.properties();
  CHECK(p._flags == (AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG));
  CHECK(p.delivery_mode == 1);
  CHECK(p.timestamp == 1234u);  // no timestamp given: `now`
}

TEST_CASE("amqp EncodedProperties owns its bytes, also after a move", "[amqp]") {
  std::vector<detail::EncodedProperties> all;
  for (int i = 0; i < 20; ++i) {
    amqp::OutgoingMessage message = full_message();
    message.message_id = "id-" + std::to_string(i) + std::string(40, 'x');
    all.emplace_back(message);
    // `message` is gone; the properties must not point into it.
  }
  for (int i = 0; i < 20; ++i) {
    CHECK(text_of(all[static_cast<std::size_t>(i)].get()->message_id) ==
          "id-" + std::to_string(i) + std::string(40, 'x'));
  }
}

TEST_CASE("amqp codec round trip: encoded properties decode to the same message", "[amqp]") {
  const amqp::OutgoingMessage message = full_message();
  const detail::EncodedProperties encoded(message);
  amqp_basic_properties_t props = encoded.properties();
  const WireTable wire(props.headers);
  props.headers = wire.table();

  const amqp::Delivery delivery =
      detail::decode_delivery(props, message.body, message.exchange, message.routing_key, true);
  CHECK(delivery.exchange == message.exchange);
  CHECK(delivery.routing_key == message.routing_key);
  CHECK(delivery.body == message.body);
  CHECK(delivery.redelivered);
  CHECK(delivery.content_type == message.content_type);
  CHECK(delivery.message_id == message.message_id);
  CHECK(delivery.correlation_id == message.correlation_id);
  CHECK(delivery.priority == message.priority);
  REQUIRE(delivery.timestamp);
  CHECK(*delivery.timestamp == std::chrono::system_clock::time_point(1'700'000'000s));
  CHECK(delivery.attempt() == 2);
  CHECK(delivery.headers.get_string(amqp::kTraceparentHeader) ==
        message.headers.get_string(amqp::kTraceparentHeader));
  REQUIRE(delivery.headers.find("x-flag") != nullptr);
  CHECK(std::get<bool>(*delivery.headers.find("x-flag")));
  CHECK(delivery.headers.get_string("x-empty") == "");
  CHECK(delivery.headers.size() == message.headers.size());
}

TEST_CASE("amqp decode_delivery of bare properties gives an empty delivery", "[amqp]") {
  amqp_basic_properties_t props{};
  props._flags = 0;
  const amqp::Delivery delivery = detail::decode_delivery(props, "x", "", "q", false);
  CHECK(delivery.body == "x");
  CHECK(delivery.content_type.empty());
  CHECK(delivery.message_id.empty());
  CHECK_FALSE(delivery.priority);
  CHECK_FALSE(delivery.timestamp);
  CHECK(delivery.headers.empty());
  CHECK(delivery.attempt() == 1);
}

TEST_CASE("amqp decode_delivery accepts every AMQP field type in headers", "[amqp]") {
  std::vector<amqp_table_entry_t> entries;
  const auto add = [&entries](const char* key, amqp_field_value_t value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value = value;
    entries.push_back(entry);
  };
  amqp_field_value_t v{};
  v.kind = AMQP_FIELD_KIND_I8; v.value.i8 = -8; add("i8", v);
  v.kind = AMQP_FIELD_KIND_U8; v.value.u8 = 200; add("u8", v);
  v.kind = AMQP_FIELD_KIND_I16; v.value.i16 = -16; add("i16", v);
  v.kind = AMQP_FIELD_KIND_U16; v.value.u16 = 65000; add("u16", v);
  v.kind = AMQP_FIELD_KIND_I32; v.value.i32 = -32; add("i32", v);
  v.kind = AMQP_FIELD_KIND_U32; v.value.u32 = 4'000'000'000u; add("u32", v);
  v.kind = AMQP_FIELD_KIND_I64; v.value.i64 = -64; add("i64", v);
  v.kind = AMQP_FIELD_KIND_U64; v.value.u64 = 18'000'000'000'000'000'000u; add("u64", v);
  v.kind = AMQP_FIELD_KIND_F64; v.value.f64 = 2.5; add("f64", v);
  v.kind = AMQP_FIELD_KIND_F32; v.value.f32 = 0.5F; add("f32", v);
  v.kind = AMQP_FIELD_KIND_DECIMAL; v.value.decimal = {2, 1234}; add("decimal", v);
  v.kind = AMQP_FIELD_KIND_TIMESTAMP; v.value.u64 = 1'700'000'000; add("timestamp", v);
  v.kind = AMQP_FIELD_KIND_BYTES; v.value.bytes = amqp_cstring_bytes("raw"); add("bytes", v);
  v.kind = AMQP_FIELD_KIND_VOID; add("void", v);

  // x-death as RabbitMQ writes it: an array of tables.
  std::array<amqp_table_entry_t, 2> death_entries{};
  death_entries[0].key = amqp_cstring_bytes("queue");
  death_entries[0].value.kind = AMQP_FIELD_KIND_UTF8;
  death_entries[0].value.value.bytes = amqp_cstring_bytes("email.retry.1");
  death_entries[1].key = amqp_cstring_bytes("count");
  death_entries[1].value.kind = AMQP_FIELD_KIND_I64;
  death_entries[1].value.value.i64 = 1;
  amqp_field_value_t death{};
  death.kind = AMQP_FIELD_KIND_TABLE;
  death.value.table = {static_cast<int>(death_entries.size()), death_entries.data()};
  std::array<amqp_field_value_t, 2> deaths{death, death};
  v.kind = AMQP_FIELD_KIND_ARRAY;
  v.value.array = {static_cast<int>(deaths.size()), deaths.data()};
  add("x-death", v);

  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG;
  props.headers = {static_cast<int>(entries.size()), entries.data()};
  const WireTable wire(props.headers);
  props.headers = wire.table();

  const amqp::MessageHeaders headers =
      detail::decode_delivery(props, "", "", "", false).headers;
  CHECK(headers.get_int("i8") == -8);
  CHECK(headers.get_int("u8") == 200);
  CHECK(headers.get_int("i16") == -16);
  CHECK(headers.get_int("u16") == 65000);
  CHECK(headers.get_int("i32") == -32);
  CHECK(headers.get_int("u32") == 4'000'000'000LL);
  CHECK(headers.get_int("i64") == -64);
  CHECK(headers.get_string("u64") == "18000000000000000000");
  CHECK(headers.get_string("f64") == "2.5");
  CHECK(headers.get_string("f32") == "0.5");
  CHECK(headers.get_string("decimal") == "12.34");
  CHECK(headers.get_int("timestamp") == 1'700'000'000);
  CHECK(headers.get_string("bytes") == "raw");
  CHECK(headers.get_string("void") == "");
  CHECK(headers.get_string("x-death") ==
        "[{queue: email.retry.1, count: 1}, {queue: email.retry.1, count: 1}]");
}

TEST_CASE("amqp decode_delivery bounds deeply nested headers", "[amqp]") {
  // Ten tables nested in each other: rendered to a bounded depth, never recursing away.
  std::array<amqp_table_entry_t, 10> levels{};
  for (std::size_t i = 0; i < levels.size(); ++i) {
    levels[i].key = amqp_cstring_bytes("k");
    if (i + 1 < levels.size()) {
      levels[i].value.kind = AMQP_FIELD_KIND_TABLE;
      levels[i].value.value.table = {1, &levels[i + 1]};
    } else {
      levels[i].value.kind = AMQP_FIELD_KIND_BOOLEAN;
      levels[i].value.value.boolean = 1;
    }
  }
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_HEADERS_FLAG;
  props.headers = {1, levels.data()};
  const amqp::MessageHeaders headers = detail::decode_delivery(props, "", "", "", false).headers;
  const auto text = headers.get_string("k");
  REQUIRE(text);
  CHECK_THAT(*text, Catch::Contains("{...}"));
  CHECK(text->size() < 100);
}

TEST_CASE("amqp decode_delivery ignores a timestamp beyond the clock's range", "[amqp]") {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_TIMESTAMP_FLAG;
  props.timestamp = std::numeric_limits<std::uint64_t>::max();
  CHECK_FALSE(detail::decode_delivery(props, "", "", "", false).timestamp);
}
