#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace notifs::messaging::common {

class Random;

// W3C Trace Context (`traceparent: 00-<trace_id>-<parent_id>-<flags>`).
// A process continues the caller's trace and makes a new span id for each hop.
struct TraceContext {
  std::string trace_id;   // 32 lower-case hex digits, not all zero
  std::string parent_id;  // 16 lower-case hex digits, not all zero
  std::uint8_t flags = 1; // bit 0: sampled

  // Parses a traceparent header; nullopt when malformed (the caller then starts a new trace).
  static std::optional<TraceContext> parse(std::string_view header);
  // A new trace with a new span.
  static TraceContext start(Random& random);
  // The same trace with a new span id: what a process sends to the next hop.
  TraceContext child(Random& random) const;

  std::string header() const;
};

}  // namespace notifs::messaging::common
