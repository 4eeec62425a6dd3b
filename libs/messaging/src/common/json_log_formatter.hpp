#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace notifs::messaging::common::detail {

// Appends `text` to `out` as the inside of a JSON string: quotes, backslashes and control
// characters escaped, and bytes that are not valid UTF-8 replaced by U+FFFD so every line
// stays parseable whatever a message carries.
void append_json_escaped(std::string_view text, std::string& out);

// One JSON object per line:
// {"timestamp":"2024-05-01T12:00:00.123Z","level":"info","logger":"http","service":"x","message":"..."}
// Timestamps are UTC with milliseconds so lines from several hosts sort as text.
class JsonLogFormatter final : public spdlog::formatter {
 public:
  explicit JsonLogFormatter(std::string service);

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;

 private:
  std::string service_;
  std::string line_;  // reused between calls; sinks call a formatter under their own lock
};

}  // namespace notifs::messaging::common::detail
