#include "notifs/runtime/digest.hpp"

#include <stdexcept>

#include <openssl/evp.h>

namespace notifs::runtime {

Sha256Digest sha256(std::string_view text) {
  Sha256Digest digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    // Refuse rather than compare or store garbage.
    throw std::runtime_error("SHA-256 is unavailable in this OpenSSL build");
  }
  return digest;
}

std::string to_hex(std::span<const unsigned char> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const unsigned char byte : bytes) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 0x0f]);
  }
  return out;
}

}  // namespace notifs::runtime
