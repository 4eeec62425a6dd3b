// api_gateway's POST /api/v1/notifications body: parse_notification_request either returns
// a request that satisfies every documented rule or throws HttpError 400; the fingerprint
// of an accepted request never throws and survives a round trip through JSON.
//
// Input: the body, optionally preceded by "Idempotency-Key: <value>\n" (the header).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "fuzz_check.hpp"
#include "notification_request.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace gw = notifs::api_gateway;
namespace http = notifs::messaging::http;
using notifs::fuzz::check;

namespace {

constexpr std::string_view kHeaderPrefix = "Idempotency-Key: ";

std::size_t depth_of(const nlohmann::json& value) {
  if (!value.is_structured()) {
    return 0;
  }
  std::size_t deepest = 0;
  for (const auto& item : value) {
    deepest = std::max(deepest, depth_of(item));
  }
  return deepest + 1;
}

bool has_nul(const nlohmann::json& value) {
  if (value.is_string()) {
    return value.get_ref<const std::string&>().find('\0') != std::string::npos;
  }
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) {
      if (key.find('\0') != std::string::npos || has_nul(item)) {
        return true;
      }
    }
  } else if (value.is_array()) {
    for (const auto& item : value) {
      if (has_nul(item)) {
        return true;
      }
    }
  }
  return false;
}

std::optional<gw::NotificationRequest> parse(const http::Request& request) {
  try {
    return gw::parse_notification_request(request);
  } catch (const http::HttpError& error) {
    check(error.status() == 400, "parse_notification_request throws only 400s");
    return std::nullopt;
  } catch (...) {
    notifs::fuzz::fail_unexpected("parse_notification_request");
  }
}

std::string fingerprint(const gw::NotificationRequest& parsed) {
  try {
    auto hex = gw::request_fingerprint(parsed);
    check(hex.size() == 64 && hex.find_first_not_of("0123456789abcdef") == std::string::npos,
          "fingerprint is 64 lower-case hex digits", hex);
    return hex;
  } catch (...) {
    notifs::fuzz::fail_unexpected("request_fingerprint of an accepted request");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto input = notifs::fuzz::as_text(data, size);
  http::Request request;
  request.method = http::Method::post;
  request.target = "/api/v1/notifications";
  request.path = request.target;
  if (input.starts_with(kHeaderPrefix)) {
    const auto [line, rest] = notifs::fuzz::split_once(input.substr(kHeaderPrefix.size()), "\n");
    request.headers.add(std::string(gw::kIdempotencyKeyHeader), std::string(line));
    input = rest;
  }
  request.body = std::string(input);

  const auto parsed = parse(request);
  if (!parsed) {
    return 0;
  }
  check(gw::is_uuid(parsed->user_id), "user_id is a UUID", parsed->user_id);
  check(parsed->user_id.find_first_of("ABCDEF") == std::string::npos, "user_id is lower case",
        parsed->user_id);
  check(gw::is_template_code(parsed->template_code), "template_code is valid",
        parsed->template_code);
  check(gw::is_request_id(parsed->request_id), "request_id is valid", parsed->request_id);
  check(parsed->priority >= gw::kMinPriority && parsed->priority <= gw::kMaxPriority,
        "priority is 0..9");
  check(parsed->variables.is_object() && parsed->metadata.is_object(),
        "variables and metadata are objects");
  check(depth_of(parsed->variables) <= gw::kMaxValueDepth &&
            depth_of(parsed->metadata) <= gw::kMaxValueDepth,
        "variables and metadata nest at most kMaxValueDepth levels");
  check(!has_nul(parsed->variables) && !has_nul(parsed->metadata), "no NUL in values or keys");
  check(parsed->metadata.dump().size() <= gw::kMaxMetadataBytes, "metadata within 4096 bytes");

  // The same request written back as a body (with the key in the body alone) is accepted
  // and has the same fingerprint: what the ledger compares depends on values only.
  const auto first = fingerprint(*parsed);
  check(first == fingerprint(*parse(request)), "fingerprint is deterministic");
  http::Request again;
  again.method = http::Method::post;
  again.body = nlohmann::json{{"notification_type", gw::to_string(parsed->notification_type)},
                              {"user_id", parsed->user_id},
                              {"template_code", parsed->template_code},
                              {"variables", parsed->variables},
                              {"request_id", parsed->request_id},
                              {"priority", parsed->priority},
                              {"metadata", parsed->metadata}}
                   .dump();
  const auto reparsed = parse(again);
  check(reparsed.has_value(), "an accepted request written back is accepted", again.body);
  check(fingerprint(*reparsed) == first, "fingerprint survives a JSON round trip", again.body);
  check(reparsed->request_id == parsed->request_id, "request_id survives a round trip");
  return 0;
}
