#pragma once

// What every fuzz target shares: a contract violation prints why and aborts, so libFuzzer
// records the input as a crash (an exception escaping LLVMFuzzerTestOneInput would too,
// but with no word on which rule broke).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <utility>

namespace notifs::fuzz {

[[noreturn]] inline void fail(std::string_view rule, std::string_view detail = {}) {
  std::fprintf(stderr, "contract violated: %.*s%s%.*s\n", static_cast<int>(rule.size()),
               rule.data(), detail.empty() ? "" : ": ", static_cast<int>(detail.size()),
               detail.data());
  std::abort();
}

inline void check(bool ok, std::string_view rule, std::string_view detail = {}) {
  if (!ok) {
    fail(rule, detail);
  }
}

// Called in the catch-all of a target: names the exception that was not the documented one.
[[noreturn]] inline void fail_unexpected(std::string_view where) {
  try {
    throw;
  } catch (const std::exception& error) {
    fail(where, std::string("undocumented exception: ") + error.what());
  } catch (...) {
    fail(where, "undocumented non-std exception");
  }
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits the input at the first occurrence of `separator`: (before, after). Without one,
// all of it is `before`. Lets one input carry two parts (a template and its variables).
inline std::pair<std::string_view, std::string_view> split_once(std::string_view input,
                                                               std::string_view separator) {
  const auto at = input.find(separator);
  if (at == std::string_view::npos) {
    return {input, {}};
  }
  return {input.substr(0, at), input.substr(at + separator.size())};
}

}  // namespace notifs::fuzz
