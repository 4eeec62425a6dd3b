#include "api_keys.hpp"

#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/service_auth.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;

namespace {

std::array<unsigned char, 32> sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int size = 0;
  if (EVP_Digest(text.data(), text.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1 ||
      size != digest.size()) {
    throw std::runtime_error("SHA-256 is unavailable in this OpenSSL build");
  }
  return digest;
}

std::string hex(const unsigned char* bytes, std::size_t count) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(count * 2);
  for (std::size_t i = 0; i < count; ++i) {
    out.push_back(kDigits[bytes[i] >> 4]);
    out.push_back(kDigits[bytes[i] & 0x0f]);
  }
  return out;
}

constexpr std::size_t kKeyIdBytes = 16;

std::optional<std::string_view> presented_key(const http::Request& request) {
  if (request.headers.contains("Authorization")) {
    // A malformed Authorization is a refusal, not a reason to look at X-API-Key: a
    // client that sends both meant the first.
    return runtime::bearer_token(request);
  }
  const auto header = request.headers.get("X-API-Key");
  if (!header || header->empty()) {
    return std::nullopt;
  }
  return header;
}

}  // namespace

ApiKeys::ApiKeys(const std::vector<std::string>& keys) {
  if (keys.empty()) {
    throw std::invalid_argument("api keys: at least one key is needed");
  }
  for (const auto& key : keys) {
    if (key.empty()) {
      throw std::invalid_argument("api keys: a key is empty");
    }
    digests_.push_back(sha256(key));
  }
}

std::optional<std::string> ApiKeys::authenticate(const http::Request& request) const {
  const auto key = presented_key(request);
  if (!key) {
    return std::nullopt;
  }
  const auto digest = sha256(*key);
  // Every digest is compared, also after a match: see the class comment.
  bool matched = false;
  for (const auto& known : digests_) {
    matched |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  }
  if (!matched) {
    return std::nullopt;
  }
  return hex(digest.data(), kKeyIdBytes);
}

http::Router::Guard ApiKeys::guard() const {
  return [keys = *this](const http::Request& request) -> std::optional<http::Response> {
    if (keys.authenticate(request)) {
      return std::nullopt;
    }
    auto response = http::error_response(
        401, "unauthorized",
        "an API key is required: Authorization: Bearer <key> or X-API-Key: <key>");
    response.headers.set("WWW-Authenticate", "Bearer");
    return response;
  };
}

std::string ApiKeys::key_id(std::string_view key) {
  const auto digest = sha256(key);
  return hex(digest.data(), kKeyIdBytes);
}

}  // namespace notifs::api_gateway
