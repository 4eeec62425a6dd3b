#include "api_keys.hpp"

#include <stdexcept>

#include <openssl/crypto.h>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/digest.hpp"
#include "notifs/runtime/service_auth.hpp"

namespace notifs::api_gateway {

namespace http = messaging::http;

namespace {

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
    digests_.push_back(runtime::sha256(key));
  }
}

std::optional<std::string> ApiKeys::authenticate(const http::Request& request) const {
  const auto key = presented_key(request);
  if (!key) {
    return std::nullopt;
  }
  const auto digest = runtime::sha256(*key);
  // Every digest is compared, also after a match: see the class comment.
  bool matched = false;
  for (const auto& known : digests_) {
    matched |= CRYPTO_memcmp(known.data(), digest.data(), digest.size()) == 0;
  }
  if (!matched) {
    return std::nullopt;
  }
  return runtime::to_hex(std::span(digest).first(kKeyIdBytes));
}

http::Router::Guard ApiKeys::guard() const {
  return [keys = *this](const http::Request& request) -> std::optional<http::Response> {
    if (keys.authenticate(request)) {
      return std::nullopt;
    }
    return unauthorized();
  };
}

http::Response ApiKeys::unauthorized() {
  auto response = http::error_response(
      401, "unauthorized",
      "an API key is required: Authorization: Bearer <key> or X-API-Key: <key>");
  response.headers.set("WWW-Authenticate", "Bearer");
  return response;
}

std::string ApiKeys::key_id(std::string_view key) {
  const auto digest = runtime::sha256(key);
  return runtime::to_hex(std::span(digest).first(kKeyIdBytes));
}

}  // namespace notifs::api_gateway
