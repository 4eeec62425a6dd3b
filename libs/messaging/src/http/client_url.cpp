#include "http/client_url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <stdexcept>

namespace notifs::messaging::http::detail {
namespace {

[[noreturn]] void fail(std::string_view url, std::string_view why) {
  throw std::invalid_argument("invalid base_url \"" + std::string(url) + "\": " + std::string(why));
}

std::string to_lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_reg_name_char(unsigned char c) {
  return std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_';
}

bool looks_like_ipv4(std::string_view host) {
  if (host.empty()) return false;
  return std::all_of(host.begin(), host.end(),
                     [](unsigned char c) { return std::isdigit(c) != 0 || c == '.'; });
}

}  // namespace

std::string BaseUrl::authority() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

BaseUrl parse_base_url(std::string_view url) {
  BaseUrl out;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) fail(url, "expected http://host[:port]");
  const std::string scheme = to_lower(url.substr(0, scheme_end));
  if (scheme == "http") {
    out.tls = false;
  } else if (scheme == "https") {
    out.tls = true;
  } else {
    fail(url, "scheme must be http or https");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  if (rest.find_first_of("?#") != std::string_view::npos) fail(url, "query and fragment are not allowed");
  const auto path_start = rest.find('/');
  std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (authority.find('@') != std::string_view::npos) {
    fail(url, "credentials in the URL are not allowed (use service_token)");
  }
  if (authority.empty()) fail(url, "missing host");

  std::string_view host;
  std::string_view port_text;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) fail(url, "unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') fail(url, "unexpected characters after IPv6 address");
      port_text = after.substr(1);
      if (port_text.empty()) fail(url, "empty port");
    }
    if (host.empty() || host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      fail(url, "malformed IPv6 address");
    }
    out.host_is_ip = true;
  } else {
    const auto colon = authority.rfind(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) fail(url, "empty port");
    }
    if (host.empty()) fail(url, "missing host");
    if (!std::all_of(host.begin(), host.end(), [](unsigned char c) { return is_reg_name_char(c); })) {
      fail(url, "host has characters a host name cannot have");
    }
    out.host_is_ip = looks_like_ipv4(host);
  }

  const std::uint16_t default_port = out.tls ? 443 : 80;
  if (port_text.empty()) {
    out.port = default_port;
  } else {
    unsigned value = 0;
    const auto* first = port_text.data();
    const auto* last = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(first, last, value);
    if (ec != std::errc{} || ptr != last || value == 0 || value > 65535) {
      fail(url, "port must be a number from 1 to 65535");
    }
    out.port = static_cast<std::uint16_t>(value);
  }
  out.host = to_lower(host);
  const bool v6 = out.host.find(':') != std::string::npos;
  out.host_header = v6 ? "[" + out.host + "]" : out.host;
  if (out.port != default_port) out.host_header += ":" + std::to_string(out.port);

  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  if (path.find_first_of(" \t\r\n") != std::string_view::npos) fail(url, "path has whitespace");
  out.path_prefix = std::string(path);
  return out;
}

}  // namespace notifs::messaging::http::detail
