#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "common/json_log_formatter.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace common = notifs::messaging::common;

namespace {

// A logger of our own, unregistered, writing through the JSON formatter to a string, so
// the test neither depends on nor disturbs the process-wide logging configuration.
struct JsonCapture {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> log;

  JsonCapture() {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_formatter(std::make_unique<common::detail::JsonLogFormatter>("svc"));
    log = std::make_shared<spdlog::logger>("http", sink);
    log->set_level(spdlog::level::trace);
  }

  std::vector<nlohmann::json> lines() const {
    std::vector<nlohmann::json> parsed;
    std::istringstream in(out.str());
    std::string line;
    while (std::getline(in, line)) {
      parsed.push_back(nlohmann::json::parse(line));  // throws, failing the test, if not JSON
    }
    return parsed;
  }
};

std::string escaped(std::string_view text) {
  std::string out;
  common::detail::append_json_escaped(text, out);
  return out;
}

}  // namespace

TEST_CASE("parse_log_level knows the contract's levels", "[common][logging]") {
  spdlog::level::level_enum level = spdlog::level::off;
  CHECK(common::parse_log_level("trace", level));
  CHECK(level == spdlog::level::trace);
  CHECK(common::parse_log_level("debug", level));
  CHECK(level == spdlog::level::debug);
  CHECK(common::parse_log_level("info", level));
  CHECK(level == spdlog::level::info);
  CHECK(common::parse_log_level("warn", level));
  CHECK(level == spdlog::level::warn);
  level = spdlog::level::off;
  CHECK(common::parse_log_level("warning", level));
  CHECK(level == spdlog::level::warn);
  CHECK(common::parse_log_level("error", level));
  CHECK(level == spdlog::level::err);
  CHECK(common::parse_log_level("INFO", level));
  CHECK(level == spdlog::level::info);
}

TEST_CASE("parse_log_level refuses anything else and leaves the output alone", "[common][logging]") {
  spdlog::level::level_enum level = spdlog::level::debug;
  for (const char* text : {"", "inf", "information", " info", "info ", "err", "fatal", "5"}) {
    INFO("text: '" << text << "'");
    CHECK_FALSE(common::parse_log_level(text, level));
    CHECK(level == spdlog::level::debug);
  }
}

TEST_CASE("JSON log lines are one parseable object per line with the agreed fields", "[common][logging]") {
  JsonCapture capture;
  capture.log->info("publish failed queue={} attempt={}", "email.queue", 3);
  capture.log->warn("second");

  auto lines = capture.lines();
  REQUIRE(lines.size() == 2);
  const auto& first = lines[0];
  CHECK(first.at("level") == "info");
  CHECK(first.at("logger") == "http");
  CHECK(first.at("service") == "svc");
  CHECK(first.at("message") == "publish failed queue=email.queue attempt=3");
  const std::string timestamp = first.at("timestamp");
  // 2024-05-01T12:00:00.123Z
  REQUIRE(timestamp.size() == 24);
  CHECK(timestamp[10] == 'T');
  CHECK(timestamp[19] == '.');
  CHECK(timestamp.back() == 'Z');
  CHECK(lines[1].at("level") == "warning");
}

TEST_CASE("JSON log lines survive quotes, newlines and control characters", "[common][logging]") {
  JsonCapture capture;
  const std::string nasty = "say \"hi\"\\ \nforged {\"level\":\"error\"}\r\t\x01\x1f end";
  capture.log->error("{}", nasty);

  auto lines = capture.lines();
  REQUIRE(lines.size() == 1);  // the embedded newline did not split the record
  CHECK(lines[0].at("message") == nasty);
  CHECK(lines[0].at("level") == "error");
}

TEST_CASE("JSON escaping keeps valid UTF-8 and replaces invalid bytes", "[common][logging]") {
  CHECK(escaped("plain") == "plain");
  CHECK(escaped("a\"b\\c") == "a\\\"b\\\\c");
  CHECK(escaped("\n\r\t") == "\\n\\r\\t");
  CHECK(escaped(std::string("\0\x1f\x7f", 3)) == "\\u0000\\u001f\\u007f");
  CHECK(escaped("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

  const std::string replacement = "\xEF\xBF\xBD";
  CHECK(escaped("a\xff" "b") == "a" + replacement + "b");              // never valid
  CHECK(escaped("\xc3") == replacement);                              // truncated sequence
  CHECK(escaped("\xc0\xaf") == replacement + replacement);            // overlong '/'
  CHECK(escaped("\xed\xa0\x80") == replacement + replacement + replacement);  // surrogate
  CHECK(escaped("\xf4\x90\x80\x80") == replacement + replacement + replacement + replacement);

  // Whatever bytes go in, the result is valid JSON that a strict parser accepts.
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  CHECK_NOTHROW(nlohmann::json::parse("\"" + escaped(all_bytes) + "\""));
}

TEST_CASE("logger(area) returns one shared logger per area", "[common][logging]") {
  auto first = common::logger("unit-test-area");
  auto second = common::logger("unit-test-area");
  REQUIRE(first != nullptr);
  CHECK(first == second);
  CHECK(first->name() == "unit-test-area");
  CHECK(common::logger("unit-test-other") != first);
  // It writes where the default logger writes.
  CHECK(first->sinks() == spdlog::default_logger()->sinks());
}
