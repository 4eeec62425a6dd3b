#pragma once

#include <chrono>
#include <string>

namespace notifs::contract {

// "2024-05-01T12:34:56.789Z": the one timestamp form in messages and status events, in UTC,
// truncated (not rounded) to the millisecond so the text never names a later instant than
// the one recorded. Throws std::invalid_argument for a time gmtime cannot represent.
std::string format_rfc3339_ms(std::chrono::system_clock::time_point at);

}  // namespace notifs::contract
