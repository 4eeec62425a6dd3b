#include "notifs/messaging/amqp/connection_settings.hpp"

#include <amqp.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace notifs::messaging::amqp {

namespace {

constexpr std::string_view kPlainScheme = "amqp://";
constexpr std::string_view kTlsScheme = "amqps://";

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::string mask_url(std::string_view url) {
  const std::size_t scheme_end = url.find("://");
  const std::size_t start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const std::size_t authority_end = std::min(url.find_first_of("/?#", start), url.size());
  const std::string_view authority = url.substr(start, authority_end - start);
  std::size_t at = std::string_view::npos;
  if (const std::size_t at_in_authority = authority.rfind('@');
      at_in_authority != std::string_view::npos) {
    at = start + at_in_authority;
  } else {
    // No '@' before the first '/': either there is no user info (an '@' further on is in
    // the vhost) or the password holds a raw '/'. "host:5672" is the first; anything else
    // after the colon is taken for a password and masked up to the last '@': masking too
    // much is harmless, too little leaks a secret.
    at = url.rfind('@');
    const std::size_t colon = authority.find(':');
    if (at == std::string_view::npos || at < start || colon == std::string_view::npos) {
      return std::string(url);
    }
    const std::string_view after_colon = authority.substr(colon + 1);
    const bool is_port = !after_colon.empty() &&
                         after_colon.find_first_not_of("0123456789") == std::string_view::npos;
    if (is_port) return std::string(url);
  }
  const std::size_t colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  std::string masked(url.substr(0, colon + 1));
  masked += "***";
  masked += url.substr(at);
  return masked;
}

void validate_url(std::string_view url) {
  if (url.empty()) throw std::invalid_argument("the AMQP URL is empty");
  if (!starts_with_ci(url, kPlainScheme) && !starts_with_ci(url, kTlsScheme)) {
    throw std::invalid_argument("the AMQP URL must start with amqp:// or amqps://: " +
                                mask_url(url));
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      throw std::invalid_argument("the AMQP URL contains a space or control character: " +
                                  mask_url(url));
    }
  }
  // rabbitmq-c is what will use the URL, so its parser has the last word; it writes into
  // the buffer it parses.
  std::vector<char> buffer(url.begin(), url.end());
  buffer.push_back('\0');
  amqp_connection_info info{};
  amqp_default_connection_info(&info);
  if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK) {
    throw std::invalid_argument(
        "the AMQP URL is malformed (expected amqp[s]://user:password@host:port/vhost): " +
        mask_url(url));
  }
  // rabbitmq-c fills in "localhost" for a missing host; a configured URL without one is
  // a mistake, not a wish for localhost.
  const std::size_t start = url.find("://") + 3;
  std::string_view authority = url.substr(start, url.find_first_of("/?#", start) - start);
  if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  if (authority.empty() || authority.front() == ':' || info.host == nullptr ||
      *info.host == '\0') {
    throw std::invalid_argument("the AMQP URL names no host: " + mask_url(url));
  }
  // In an AMQP URI "host/" names the vhost "" (not "/"), which no broker has by default;
  // refusing it here beats a puzzling "access to vhost '' refused" at login.
  if (info.vhost != nullptr && *info.vhost == '\0') {
    throw std::invalid_argument(
        "the AMQP URL names the empty vhost; write %2f for the default vhost '/': " +
        mask_url(url));
  }
  if (info.port <= 0 || info.port > 65535) {
    throw std::invalid_argument("the AMQP URL has a port outside 1..65535: " + mask_url(url));
  }
}

}  // namespace notifs::messaging::amqp
