#include "notifs/messaging/common/trace_context.hpp"

#include <cstdint>

#include "notifs/messaging/common/random.hpp"

namespace notifs::messaging::common {
namespace {

// "vv-" + 32 + "-" + 16 + "-" + "ff"
constexpr std::size_t kVersion00Length = 55;
constexpr std::size_t kTraceIdLength = 32;
constexpr std::size_t kParentIdLength = 16;
constexpr char kHexDigits[] = "0123456789abcdef";

// The spec allows lower-case hex only; upper case is a malformed header, not a variant.
bool is_lower_hex(std::string_view text) {
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

bool is_all_zero(std::string_view text) { return text.find_first_not_of('0') == std::string_view::npos; }

int hex_value(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

void append_hex(std::string& out, std::uint64_t bits, std::size_t digits) {
  for (std::size_t i = digits; i-- > 0;) {
    out.push_back(kHexDigits[(bits >> (4 * i)) & 0x0F]);
  }
}

std::string random_hex_id(Random& random, std::size_t digits) {
  // An all-zero id is invalid by the spec; with 64 or 128 random bits a redraw is
  // practically never needed, but a scripted Random in a test can produce one.
  for (;;) {
    std::string id;
    id.reserve(digits);
    for (std::size_t done = 0; done < digits; done += 16) {
      append_hex(id, random.next_u64(), 16);
    }
    if (!is_all_zero(id)) {
      return id;
    }
  }
}

}  // namespace

std::optional<TraceContext> TraceContext::parse(std::string_view header) {
  if (header.size() < kVersion00Length) {
    return std::nullopt;
  }
  std::string_view version = header.substr(0, 2);
  if (!is_lower_hex(version) || version == "ff") {
    return std::nullopt;
  }
  if (version == "00") {
    if (header.size() != kVersion00Length) {
      return std::nullopt;
    }
  } else if (header.size() > kVersion00Length && header[kVersion00Length] != '-') {
    // A future version may append fields, but only after a dash; we read the version-00
    // prefix, as the spec asks of a parser that meets a higher version.
    return std::nullopt;
  }

  if (header[2] != '-' || header[35] != '-' || header[52] != '-') {
    return std::nullopt;
  }
  std::string_view trace_id = header.substr(3, kTraceIdLength);
  std::string_view parent_id = header.substr(36, kParentIdLength);
  std::string_view flags = header.substr(53, 2);
  if (!is_lower_hex(trace_id) || !is_lower_hex(parent_id) || !is_lower_hex(flags)) {
    return std::nullopt;
  }
  if (is_all_zero(trace_id) || is_all_zero(parent_id)) {
    return std::nullopt;
  }

  TraceContext context;
  context.trace_id = std::string(trace_id);
  context.parent_id = std::string(parent_id);
  context.flags = static_cast<std::uint8_t>(hex_value(flags[0]) * 16 + hex_value(flags[1]));
  return context;
}

TraceContext TraceContext::start(Random& random) {
  TraceContext context;
  context.trace_id = random_hex_id(random, kTraceIdLength);
  context.parent_id = random_hex_id(random, kParentIdLength);
  context.flags = 1;
  return context;
}

TraceContext TraceContext::child(Random& random) const {
  TraceContext next = *this;
  next.parent_id = random_hex_id(random, kParentIdLength);
  return next;
}

std::string TraceContext::header() const {
  // We only speak version 00, whatever version the caller sent (spec: a vendor that
  // does not know a higher version propagates version 00).
  std::string out;
  out.reserve(kVersion00Length);
  out += "00-";
  out += trace_id;
  out += '-';
  out += parent_id;
  out += '-';
  append_hex(out, flags, 2);
  return out;
}

}  // namespace notifs::messaging::common
