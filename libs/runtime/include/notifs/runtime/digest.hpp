#pragma once

#include <array>
#include <span>
#include <string>
#include <string_view>

namespace notifs::runtime {

using Sha256Digest = std::array<unsigned char, 32>;

// SHA-256 through OpenSSL. Throws std::runtime_error only for an OpenSSL built without it.
Sha256Digest sha256(std::string_view text);

// Lower-case hexadecimal, two digits per byte.
std::string to_hex(std::span<const unsigned char> bytes);

}  // namespace notifs::runtime
