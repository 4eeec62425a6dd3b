#pragma once

#include <string>
#include <string_view>

namespace notifs::messaging::http {

// Percent-encodes every byte but RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~),
// so any text (an id, an FCM token with ':' or '/', a locale) travels as exactly one path
// segment or query value.
std::string percent_encode(std::string_view text);

}  // namespace notifs::messaging::http
