#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace notifs::messaging::common {

class Random;

// A new random UUID v4 in canonical lower-case form: the request id given to calls that
// arrive without one, and the id of new resources.
std::string generate_uuid_v4(Random& random);
std::string generate_uuid_v4();

// A new time-ordered UUID v7 (RFC 9562): Unix milliseconds, then random bits. Ids made
// later sort later, so a B-tree index on them grows at its right edge instead of touching
// a random page per insert (fewer pages dirtied, far fewer full-page images in the WAL).
std::string generate_uuid_v7(Random& random, std::chrono::system_clock::time_point now);
std::string generate_uuid_v7();

// True for a canonical UUID (any version, either case).
bool is_uuid(std::string_view text);

// An X-Request-ID we accept from a caller and echo back: 1 to 128 visible ASCII
// characters (0x21-0x7E). Anything else (CR/LF, controls, spaces, non-ASCII) could be
// used to forge log lines or headers downstream, so it is replaced by a fresh id.
bool is_valid_request_id(std::string_view id);

}  // namespace notifs::messaging::common
