#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace notifs::messaging::http::detail {

// A ServiceClient's base_url, split once at construction.
struct BaseUrl {
  bool tls = false;          // https
  std::string host;          // name or address, without IPv6 brackets
  std::uint16_t port = 0;    // explicit, or 80 / 443 from the scheme
  std::string host_header;   // what the Host header carries: host, plus :port when not default
  std::string path_prefix;   // "" or "/prefix" (no trailing slash), put before every target
  bool host_is_ip = false;   // an address literal: no SNI, certificates matched by IP

  std::string authority() const;  // host:port for messages ("[::1]:80" for IPv6)
};

// Parses "http://host[:port][/prefix]" or "https://...". Userinfo, query and fragment are
// refused: credentials go in service_token, and a query on a base would be silently lost.
// Throws std::invalid_argument naming what is wrong (the URL is quoted: it holds no secret).
BaseUrl parse_base_url(std::string_view url);

}  // namespace notifs::messaging::http::detail
