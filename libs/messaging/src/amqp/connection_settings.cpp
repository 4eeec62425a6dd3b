#include "notifs/messaging/amqp/connection_settings.hpp"

#include <amqp.h>

#include <algorithm>
#include <cstddef>
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

// Whether `text` starts like a URL ("scheme://", any scheme): the start of another address
// of a list. Any scheme, not only amqp(s): a mistaken "http://..." item must be an item of
// its own, refused by validation and masked on its own, not glued onto its neighbour.
bool starts_with_scheme(std::string_view text) {
  const std::size_t separator = text.find("://");
  if (separator == std::string_view::npos || separator == 0) return false;
  const auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!alpha(text.front())) return false;
  const auto scheme_char = [&](char c) {
    return alpha(c) || digit(c) || c == '+' || c == '-' || c == '.';
  };
  return std::all_of(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(separator),
                     scheme_char);
}

std::string_view trim_blanks(std::string_view text) {
  const std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

std::string mask_one(std::string_view url) {
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

void validate_one(std::string_view url) {
  if (url.empty()) throw std::invalid_argument("the AMQP URL is empty");
  if (!starts_with_ci(url, kPlainScheme) && !starts_with_ci(url, kTlsScheme)) {
    throw std::invalid_argument("the AMQP URL must start with amqp:// or amqps://: " +
                                mask_one(url));
  }
  for (const char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      throw std::invalid_argument("the AMQP URL contains a space or control character: " +
                                  mask_one(url));
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
        mask_one(url));
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
    throw std::invalid_argument("the AMQP URL names no host: " + mask_one(url));
  }
  // In an AMQP URI "host/" names the vhost "" (not "/"), which no broker has by default;
  // refusing it here beats a puzzling "access to vhost '' refused" at login.
  if (info.vhost != nullptr && *info.vhost == '\0') {
    throw std::invalid_argument(
        "the AMQP URL names the empty vhost; write %2f for the default vhost '/': " +
        mask_one(url));
  }
  if (info.port <= 0 || info.port > 65535) {
    throw std::invalid_argument("the AMQP URL has a port outside 1..65535: " + mask_one(url));
  }
}

}  // namespace

std::vector<std::string> split_urls(std::string_view urls) {
  // Raw pieces first, trimmed at the end: a piece glued back onto its URL keeps its text
  // exactly (a password may start or end with a space).
  std::vector<std::string> items;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = urls.find(',', start);
    const std::string_view piece = urls.substr(start, comma - start);
    const std::string_view trimmed = trim_blanks(piece);
    if (!items.empty() && !trimmed.empty() && !starts_with_scheme(trimmed)) {
      // Not the start of another address: a comma inside this one.
      items.back() += ',';
      items.back() += piece;
    } else {
      items.emplace_back(piece);
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  for (auto& item : items) item = std::string(trim_blanks(item));
  return items;
}

std::string mask_url(std::string_view url) {
  const std::vector<std::string> items = split_urls(url);
  // A single URL is masked as given, blanks and all, as it always was.
  if (items.size() == 1) return mask_one(url);
  std::string masked;
  for (const auto& item : items) {
    if (!masked.empty()) masked += ',';
    masked += mask_one(item);
  }
  return masked;
}

void validate_url(std::string_view url) {
  const std::vector<std::string> items = split_urls(url);
  if (items.size() == 1) {
    validate_one(url);
    return;
  }
  for (std::size_t i = 0; i < items.size(); ++i) {
    try {
      validate_one(items[i]);
    } catch (const std::invalid_argument& error) {
      throw std::invalid_argument("address " + std::to_string(i + 1) + " of " +
                                  std::to_string(items.size()) + " in the AMQP URL list: " +
                                  error.what());
    }
  }
}

}  // namespace notifs::messaging::amqp
