#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "notifs/messaging/http/message.hpp"
#include "notifs/messaging/http/router.hpp"
#include "notifs/runtime/digest.hpp"

namespace notifs::api_gateway {

// The client keys of GATEWAY_API_KEYS and the check of a request's credentials
// (`Authorization: Bearer <key>` or `X-API-Key: <key>`, CONTRACT.md).
//
// Only SHA-256 digests of the keys are kept. A presented key is hashed once and compared
// with every configured digest by CRYPTO_memcmp, without stopping at a match, so the time
// taken says nothing about which key matched or how much of one did.
//
// A key's id is the first 16 bytes of its digest, in hex: it partitions the idempotency
// ledger (request_id is unique per key) and can be logged, where the key never is.
// Rotating a key therefore starts a new idempotency space for its clients.
//
// Immutable after construction; thread-safe.
class ApiKeys {
 public:
  // Throws std::invalid_argument when `keys` is empty or holds an empty key.
  explicit ApiKeys(const std::vector<std::string>& keys);

  // The id of the key the request presents, or nullopt when it presents none or an
  // unknown one. When both headers are present, Authorization wins: it is the standard.
  std::optional<std::string> authenticate(const messaging::http::Request& request) const;

  // A Router guard answering unauthorized() to requests that authenticate() refuses.
  // Holds a copy of the digests.
  messaging::http::Router::Guard guard() const;
  // 401 `unauthorized` with WWW-Authenticate: Bearer.
  static messaging::http::Response unauthorized();

  static std::string key_id(std::string_view key);

 private:
  std::vector<runtime::Sha256Digest> digests_;
};

}  // namespace notifs::api_gateway
