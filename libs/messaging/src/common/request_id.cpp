#include "notifs/messaging/common/request_id.hpp"

#include <array>
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

std::string generate_uuid_v4(Random& random) {
  std::array<std::uint8_t, 16> bytes{};
  for (std::size_t half = 0; half < 2; ++half) {
    std::uint64_t bits = random.next_u64();
    for (std::size_t i = 0; i < 8; ++i) {
      bytes[half * 8 + i] = static_cast<std::uint8_t>(bits >> (56 - 8 * i));
    }
  }
  // RFC 4122 section 4.4: version 4 in the high nibble of byte 6, variant 10xx in byte 8.
  bytes[6] = static_cast<std::uint8_t>((bytes[6] & 0x0F) | 0x40);
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
