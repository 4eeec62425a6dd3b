#include "notifs/runtime/service_auth.hpp"

#include <array>
#include <stdexcept>
#include <utility>

#include <openssl/crypto.h>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/digest.hpp"

namespace notifs::runtime {

namespace http = messaging::http;

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::optional<std::string_view> bearer_token(const http::Request& request) {
  const auto header = request.headers.get("Authorization");
  if (!header) {
    return std::nullopt;
  }
  std::string_view value = *header;
  while (!value.empty() && is_space(value.front())) {
    value.remove_prefix(1);
  }
  while (!value.empty() && is_space(value.back())) {
    value.remove_suffix(1);
  }
  constexpr std::string_view kScheme = "bearer";
  if (value.size() <= kScheme.size() || !http::iequals(value.substr(0, kScheme.size()), kScheme) ||
      !is_space(value[kScheme.size()])) {
    return std::nullopt;
  }
  value.remove_prefix(kScheme.size());
  while (!value.empty() && is_space(value.front())) {
    value.remove_prefix(1);
  }
  // RFC 6750's credential is one token68: anything with inner whitespace is not one.
  if (value.empty() || value.find_first_of(" \t") != std::string_view::npos) {
    return std::nullopt;
  }
  return value;
}

bool constant_time_equals(std::string_view a, std::string_view b) {
  // SHA-256 turns both inputs into 32 bytes, so the comparison always touches the same
  // number of bytes whatever the inputs' lengths and contents are.
  const auto left = sha256(a);
  const auto right = sha256(b);
  // CRYPTO_memcmp never stops at the first difference. Equal digests of different inputs
  // would need a SHA-256 collision; the size check costs nothing and removes even that.
  return CRYPTO_memcmp(left.data(), right.data(), left.size()) == 0 && a.size() == b.size();
}

void require_service_token(http::Router& router, std::string token) {
  if (token.empty()) {
    return;
  }
  router.set_guard([expected = std::move(token)](
                       const http::Request& request) -> std::optional<http::Response> {
    const auto presented = bearer_token(request);
    if (presented && constant_time_equals(*presented, expected)) {
      return std::nullopt;
    }
    auto response = http::error_response(
        401, "unauthorized",
        presented ? "the service token is not valid"
                  : "a service token is required: Authorization: Bearer <SERVICE_TOKEN>");
    // RFC 6750 section 3: name the scheme, and say why when a token was sent.
    response.headers.set("WWW-Authenticate",
                         presented ? "Bearer error=\"invalid_token\"" : "Bearer");
    return response;
  });
}

}  // namespace notifs::runtime
