#include "notifs/messaging/common/request_id.hpp"

#include <array>
#include <chrono>
#include <cstdint>

#include "notifs/messaging/common/random.hpp"

namespace notifs::messaging::common {
namespace {

constexpr std::size_t kUuidLength = 36;
constexpr std::size_t kMaxRequestIdLength = 128;
constexpr char kHexDigits[] = "0123456789abcdef";

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool is_dash_position(std::size_t i) { return i == 8 || i == 13 || i == 18 || i == 23; }

}  // namespace

namespace {

std::string format_uuid(std::array<std::uint8_t, 16> bytes, std::uint8_t version) {
  // RFC 9562: the version in the high nibble of byte 6, variant 10xx in byte 8.
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0F) | (version << 4));
  bytes[8] = static_cast<std::uint8_t>((bytes[8] & 0x3F) | 0x80);
  std::string out;
  out.reserve(kUuidLength);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) {
      out.push_back('-');
    }
    out.push_back(kHexDigits[bytes[i] >> 4]);
    out.push_back(kHexDigits[bytes[i] & 0x0F]);
  }
  return out;
}

void put_big_endian(std::array<std::uint8_t, 16>& bytes, std::size_t at, std::uint64_t bits) {
  for (std::size_t i = 0; i < 8; ++i) {
    bytes[at + i] = static_cast<std::uint8_t>(bits >> (56 - 8 * i));
  }
}

}  // namespace

std::string generate_uuid_v4(Random& random) {
  std::array<std::uint8_t, 16> bytes{};
  put_big_endian(bytes, 0, random.next_u64());
  put_big_endian(bytes, 8, random.next_u64());
  return format_uuid(bytes, 4);
}

std::string generate_uuid_v7(Random& random, std::chrono::system_clock::time_point now) {
  std::array<std::uint8_t, 16> bytes{};
  put_big_endian(bytes, 8, random.next_u64());
  // Bytes 0-5: Unix milliseconds, big-endian (so ids sort by creation time); 6-7: random
  // (their top nibble becomes the version).
  const auto ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  put_big_endian(bytes, 0, (ms << 16) | (random.next_u64() & 0xFFFF));
  return format_uuid(bytes, 7);
}

std::string generate_uuid_v7() {
  static DefaultRandom random;
  return generate_uuid_v7(random, std::chrono::system_clock::now());
}

std::string generate_uuid_v4() {
  // DefaultRandom locks internally, so one instance serves every thread.
  static DefaultRandom random;
  return generate_uuid_v4(random);
}

bool is_uuid(std::string_view text) {
  if (text.size() != kUuidLength) {
    return false;
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (is_dash_position(i) ? text[i] != '-' : !is_hex(text[i])) {
      return false;
    }
  }
  return true;
}

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) {
    return false;
  }
  for (char c : id) {
    auto byte = static_cast<unsigned char>(c);
    if (byte < 0x21 || byte > 0x7E) {
      return false;
    }
  }
  return true;
}

}  // namespace notifs::messaging::common
