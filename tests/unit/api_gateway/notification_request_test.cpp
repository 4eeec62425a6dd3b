// api_gateway's intake parsing: every field of CONTRACT.md at both sides of its limits,
// all problems of a body reported at once, hostile bodies refused with a 400 (never a
// crash), and the idempotency fingerprint stable across spellings of one body.
#include "notification_request.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/http/envelope.hpp"

namespace gw = notifs::api_gateway;
namespace http = notifs::messaging::http;
using nlohmann::json;

namespace {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

http::Request post(std::string body, const HeaderList& headers = {}) {
  http::Request request;
  request.method = http::Method::post;
  request.target = request.path = "/api/v1/notifications";
  request.headers.set("Content-Type", "application/json");
  for (const auto& [name, value] : headers) {
    request.headers.add(name, value);
  }
  request.body = std::move(body);
  return request;
}

http::Request post(const json& body, const HeaderList& headers = {}) {
  return post(body.dump(), headers);
}

json valid_body() {
  return {{"notification_type", "email"},
          {"user_id", "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"},
          {"template_code", "welcome_email"},
          {"variables", {{"name", "Ada"}, {"link", "https://example.com/start"}}},
          {"request_id", "order-1234-welcome"},
          {"priority", 5},
          {"metadata", {{"campaign", "onboarding"}}}};
}

json with(json body, const std::string& key, json value) {
  body[key] = std::move(value);
  return body;
}

json without(json body, const std::string& key) {
  body.erase(key);
  return body;
}

// The {field: problem} pairs of the 400 `validation_failed` that parsing throws; FAILs
// when it does not throw one.
std::map<std::string, std::string> problems_of(const http::Request& request) {
  try {
    gw::parse_notification_request(request);
  } catch (const http::HttpError& error) {
    CHECK(error.status() == 400);
    CHECK(error.code() == "validation_failed");
    std::map<std::string, std::string> out;
    for (const auto& detail : error.details()) {
      CHECK(out.count(detail.field) == 0);  // one detail per field
      CHECK_FALSE(detail.problem.empty());
      out[detail.field] = detail.problem;
    }
    return out;
  }
  FAIL("no 400 was thrown");
  return {};
}

std::map<std::string, std::string> problems_of(const json& body, const HeaderList& headers = {}) {
  return problems_of(post(body, headers));
}

// Exactly one problem, on `field`.
bool only_problem_is(const std::map<std::string, std::string>& problems, const std::string& field) {
  return problems.size() == 1 && problems.count(field) == 1;
}

// The HttpError a raw body gives (not necessarily validation_failed).
http::HttpError error_of(std::string raw) {
  try {
    gw::parse_notification_request(post(std::move(raw)));
  } catch (const http::HttpError& error) {
    return error;
  }
  FAIL("no HttpError was thrown");
  return http::HttpError(0, "", "");
}

// A JSON value `levels` containers deep: {"a":{"a":...{"a":1}}}.
json nested_object(std::size_t levels) {
  json value = 1;
  for (std::size_t i = 0; i < levels; ++i) {
    value = json{{"a", std::move(value)}};
  }
  return value;
}

// A metadata object whose compact dump is exactly `bytes` long ({"k":"xxx..."} is 8 + n).
json metadata_of_size(std::size_t bytes) {
  REQUIRE(bytes >= 8);
  return json{{"k", std::string(bytes - 8, 'x')}};
}

}  // namespace

TEST_CASE("api_gateway request: a complete valid request parses into its typed fields",
          "[api_gateway][request]") {
  const auto request = gw::parse_notification_request(post(valid_body()));
  CHECK(request.notification_type == gw::Channel::email);
  CHECK(request.user_id == "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f");
  CHECK(request.template_code == "welcome_email");
  CHECK(request.variables == json({{"name", "Ada"}, {"link", "https://example.com/start"}}));
  CHECK(request.request_id == "order-1234-welcome");
  CHECK(request.priority == 5);
  CHECK(request.metadata == json({{"campaign", "onboarding"}}));

  const auto push =
      gw::parse_notification_request(post(with(valid_body(), "notification_type", "push")));
  CHECK(push.notification_type == gw::Channel::push);
}

TEST_CASE("api_gateway request: optional fields default when absent or null",
          "[api_gateway][request]") {
  json minimal = valid_body();
  for (const char* key : {"variables", "priority", "metadata"}) {
    minimal.erase(key);
  }
  const auto defaulted = gw::parse_notification_request(post(minimal));
  CHECK(defaulted.variables == json::object());
  CHECK(defaulted.variables.is_object());
  CHECK(defaulted.priority == gw::kDefaultPriority);
  CHECK(defaulted.priority == 5);
  CHECK(defaulted.metadata.is_object());
  CHECK(defaulted.metadata.empty());

  json nulls = valid_body();
  for (const char* key : {"variables", "priority", "metadata"}) {
    nulls[key] = nullptr;
  }
  const auto from_nulls = gw::parse_notification_request(post(nulls));
  CHECK(from_nulls.variables == json::object());
  CHECK(from_nulls.priority == 5);
  CHECK(from_nulls.metadata == json::object());
}

TEST_CASE("api_gateway request: unknown fields are ignored", "[api_gateway][request]") {
  json body = valid_body();
  body["channel"] = "sms";
  body["emial"] = 42;
  body["nested"] = {{"deep", {1, 2, 3}}};
  const auto request = gw::parse_notification_request(post(body));
  CHECK(request.template_code == "welcome_email");
  CHECK(request.notification_type == gw::Channel::email);
}

TEST_CASE("api_gateway request: every bad field is reported at once, one problem each",
          "[api_gateway][request]") {
  const json body = {{"notification_type", "sms"}, {"user_id", "not-a-uuid"},
                     {"template_code", "Welcome"}, {"variables", json::array()},
                     {"request_id", ""},           {"priority", 10},
                     {"metadata", "campaign"}};
  const auto problems = problems_of(body);
  CHECK(problems.size() == 7);
  for (const char* field : {"notification_type", "user_id", "template_code", "variables",
                            "request_id", "priority", "metadata"}) {
    CHECK(problems.count(field) == 1);
  }
}

TEST_CASE("api_gateway request: required fields missing are named", "[api_gateway][request]") {
  const auto problems = problems_of(json::object());
  CHECK(problems.size() == 4);
  CHECK(problems.at("notification_type") == "is required");
  CHECK(problems.at("user_id") == "is required");
  CHECK(problems.at("template_code") == "is required");
  CHECK(problems.at("request_id") == "required: body request_id or Idempotency-Key header");
}

TEST_CASE("api_gateway request: notification_type must be email or push exactly",
          "[api_gateway][request]") {
  for (const json& bad : {json("EMAIL"), json("Push"), json("sms"), json(""), json(" email"),
                          json(std::string("email\0", 6)), json(1), json(true), json(nullptr),
                          json::array({"email"}), json::object()}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "notification_type", bad)),
                          "notification_type"));
  }
  CHECK(problems_of(with(valid_body(), "notification_type", 1)).at("notification_type") ==
        "must be a string, got number");
}

TEST_CASE("api_gateway request: user_id is a UUID in any case, stored lower case",
          "[api_gateway][request]") {
  const auto upper = gw::parse_notification_request(
      post(with(valid_body(), "user_id", "6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F")));
  CHECK(upper.user_id == "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f");
  const auto mixed = gw::parse_notification_request(
      post(with(valid_body(), "user_id", "6f1C9a8E-2b7D-4c1A-9e3F-0a1B2c3D4e5F")));
  CHECK(mixed.user_id == "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f");

  for (const json& bad : {json("{6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f}"),
                          json("urn:uuid:6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"),
                          json("6f1c9a8e2b7d4c1a9e3f0a1b2c3d4e5f"),       // 32 digits, no dashes
                          json("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5"),    // 35 characters
                          json("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f0"),  // 37 characters
                          json("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5g"),   // not hex
                          json("6f1c9a8e2-b7d-4c1a-9e3f-0a1b2c3d4e5f"),   // dash misplaced
                          json(" 6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"),  // padded
                          json(std::string("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5\0", 36)), json(""),
                          json(42), json(nullptr)}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "user_id", bad)), "user_id"));
  }
}

TEST_CASE("api_gateway request: template_code is 1 to 64 of a-z 0-9 underscore dot dash",
          "[api_gateway][request]") {
  const std::string code64(64, 'a');
  CHECK(gw::parse_notification_request(post(with(valid_body(), "template_code", code64)))
            .template_code == code64);
  const std::string every_allowed = "abcdefghijklmnopqrstuvwxyz0123456789_.-";
  CHECK(gw::parse_notification_request(post(with(valid_body(), "template_code", every_allowed)))
            .template_code == every_allowed);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "template_code", "x")))
            .template_code == "x");

  for (const json& bad :
       {json(std::string(65, 'a')), json(""), json("Welcome_email"), json("WELCOME"),
        json("welcome email"), json("welcome/email"), json("welcome\temail"), json("caf\u00e9"),
        json(std::string("welcome\0", 8)), json(7), json(nullptr)}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "template_code", bad)), "template_code"));
  }
}

TEST_CASE("api_gateway request: variables must be an object of bounded depth without NUL",
          "[api_gateway][request]") {
  for (const json& bad :
       {json::array(), json::array({1, 2}), json("name=Ada"), json(3), json(false)}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "variables", bad)), "variables"));
  }

  const json rich = {{"name", "Ada \u00e9\u4e2d"},
                     {"items", json::array({json{{"sku", "a"}, {"qty", 2}}, json{{"sku", "b"}}})},
                     {"flag", true},
                     {"nothing", nullptr},
                     {"newline", "line 1\nline 2"},
                     {"price", 12.5}};
  CHECK(gw::parse_notification_request(post(with(valid_body(), "variables", rich))).variables ==
        rich);

  // The variables object is level 1.
  const json at_limit = nested_object(gw::kMaxValueDepth);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "variables", at_limit))).variables ==
        at_limit);
  CHECK(only_problem_is(
      problems_of(with(valid_body(), "variables", nested_object(gw::kMaxValueDepth + 1))),
      "variables"));
  // Arrays count as levels too.
  json arrays = json::array({1});
  for (std::size_t i = 2; i < gw::kMaxValueDepth; ++i) arrays = json::array({arrays});
  CHECK_NOTHROW(
      gw::parse_notification_request(post(with(valid_body(), "variables", {{"a", arrays}}))));
  CHECK(only_problem_is(
      problems_of(with(valid_body(), "variables", {{"a", json::array({arrays})}})), "variables"));

  const std::string nul("a\0b", 3);
  CHECK(
      only_problem_is(problems_of(with(valid_body(), "variables", {{"name", nul}})), "variables"));
  CHECK(only_problem_is(problems_of(with(valid_body(), "variables", {{nul, "x"}})), "variables"));
  CHECK(only_problem_is(
      problems_of(with(valid_body(), "variables", {{"l", json::array({"ok", {{"k", nul}}})}})),
      "variables"));
  // The same through raw JSON text, as a client sends it.
  std::string raw = valid_body().dump();
  raw.replace(raw.find("\"Ada\""), 5, "\"A\\u0000da\"");
  CHECK(only_problem_is(problems_of(post(raw)), "variables"));
}

TEST_CASE("api_gateway request: request_id is 1 to 128 printable ASCII characters",
          "[api_gateway][request]") {
  const std::string id128(128, 'r');
  CHECK(gw::parse_notification_request(post(with(valid_body(), "request_id", id128))).request_id ==
        id128);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "request_id", "1"))).request_id ==
        "1");
  std::string every_visible;
  for (char c = 0x21; c <= 0x7E; ++c) every_visible.push_back(c);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "request_id", every_visible)))
            .request_id == every_visible);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "request_id", "order 12 a")))
            .request_id == "order 12 a");

  for (const json& bad : {json(std::string(129, 'r')), json(""), json(" order"), json("order "),
                          json(" "), json("order\t1"), json("order\n1"), json("order\x7f"),
                          json("order\x1b[0m"), json("caf\u00e9"), json(std::string("order\0", 6)),
                          json(1234), json(true), json::object()}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "request_id", bad)), "request_id"));
  }
  CHECK(problems_of(with(valid_body(), "request_id", 1234)).at("request_id") ==
        "must be a string, got number");
}

TEST_CASE("api_gateway request: request_id may come from the Idempotency-Key header",
          "[api_gateway][request]") {
  const json body = without(valid_body(), "request_id");

  CHECK(gw::parse_notification_request(post(body, {{"Idempotency-Key", "key-1"}})).request_id ==
        "key-1");
  // Header names are case-insensitive.
  CHECK(gw::parse_notification_request(post(body, {{"idempotency-key", "key-2"}})).request_id ==
        "key-2");
  // A null body request_id is absent.
  CHECK(gw::parse_notification_request(
            post(with(body, "request_id", nullptr), {{"Idempotency-Key", "key-3"}}))
            .request_id == "key-3");
  // Both, equal.
  CHECK(gw::parse_notification_request(
            post(with(body, "request_id", "same"), {{"Idempotency-Key", "same"}}))
            .request_id == "same");
  // The same header twice with one value (a proxy repeated it).
  CHECK(gw::parse_notification_request(
            post(body, {{"Idempotency-Key", "dup"}, {"Idempotency-Key", "dup"}}))
            .request_id == "dup");
  // The header obeys the body's limits.
  CHECK(gw::parse_notification_request(post(body, {{"Idempotency-Key", std::string(128, 'h')}}))
            .request_id == std::string(128, 'h'));

  SECTION("both present and different is a problem on request_id") {
    const auto problems =
        problems_of(with(body, "request_id", "from-body"), {{"Idempotency-Key", "from-header"}});
    CHECK(only_problem_is(problems, "request_id"));
    CHECK(problems.at("request_id") == "differs from the Idempotency-Key header");
    // Case matters: request ids are opaque.
    CHECK(only_problem_is(
        problems_of(with(body, "request_id", "Key"), {{"Idempotency-Key", "key"}}), "request_id"));
  }
  SECTION("neither present") {
    const auto problems = problems_of(body);
    CHECK(only_problem_is(problems, "request_id"));
    CHECK(problems.at("request_id") == "required: body request_id or Idempotency-Key header");
  }
  SECTION("a bad header value is a problem on the header") {
    for (const std::string& bad : {std::string(129, 'h'), std::string(""), std::string("tab\there"),
                                   std::string("caf\xc3\xa9"), std::string("nul\0", 4)}) {
      INFO(bad);
      CHECK(only_problem_is(problems_of(body, {{"Idempotency-Key", bad}}), "Idempotency-Key"));
    }
    // And the body's own bad value is reported beside it.
    const auto both = problems_of(with(body, "request_id", ""), {{"Idempotency-Key", ""}});
    CHECK(both.size() == 2);
    CHECK(both.count("request_id") == 1);
    CHECK(both.count("Idempotency-Key") == 1);
  }
  SECTION("repeated headers with different values") {
    CHECK(only_problem_is(problems_of(body, {{"Idempotency-Key", "a"}, {"Idempotency-Key", "b"}}),
                          "Idempotency-Key"));
  }
}

TEST_CASE("api_gateway request: priority is an integer from 0 to 9", "[api_gateway][request]") {
  for (int good : {0, 1, 5, 9}) {
    CHECK(gw::parse_notification_request(post(with(valid_body(), "priority", good))).priority ==
          good);
  }
  for (const json& bad : {json(-1), json(10), json(5.0), json(5.5), json("5"), json(true),
                          json::array({5}), json(std::numeric_limits<std::int64_t>::min()),
                          json(std::numeric_limits<std::int64_t>::max()),
                          json(std::numeric_limits<std::uint64_t>::max()),
                          json(4294967301LL)}) {  // 2^32 + 5: wraps to 5 in 32 bits
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "priority", bad)), "priority"));
  }
  // As a client would write them.
  for (const char* text :
       {"5.0", "5e0", "-0.0", "99999999999999999999999", "1e300", "18446744073709551621"}) {
    INFO(text);
    std::string raw = without(valid_body(), "priority").dump();
    raw.insert(raw.size() - 1, std::string(",\"priority\":") + text);
    CHECK(only_problem_is(problems_of(post(raw)), "priority"));
  }
  std::string negative_zero = without(valid_body(), "priority").dump();
  negative_zero.insert(negative_zero.size() - 1, ",\"priority\":-0");
  CHECK(gw::parse_notification_request(post(negative_zero)).priority == 0);
}

TEST_CASE("api_gateway request: metadata is an object of at most 4096 bytes as compact JSON",
          "[api_gateway][request]") {
  REQUIRE(metadata_of_size(4096).dump().size() == 4096);
  CHECK(gw::parse_notification_request(post(with(valid_body(), "metadata", metadata_of_size(4096))))
            .metadata == metadata_of_size(4096));
  const auto problems = problems_of(with(valid_body(), "metadata", metadata_of_size(4097)));
  CHECK(only_problem_is(problems, "metadata"));
  CHECK(problems.at("metadata") == "must be at most 4096 bytes as compact JSON, got 4097");

  // Measured compact: white space in the client's text does not count.
  std::string raw = without(valid_body(), "metadata").dump();
  raw.insert(raw.size() - 1, ",\"metadata\":" + metadata_of_size(4096).dump(8));
  CHECK_NOTHROW(gw::parse_notification_request(post(raw)));
  // Multi-byte characters count in bytes: 2 bytes each in UTF-8.
  const json two_byte = {{"k", std::string("\xc3\xa9") + std::string(4086, 'x')}};  // 4096
  REQUIRE(two_byte.dump().size() == 4096);
  CHECK_NOTHROW(gw::parse_notification_request(post(with(valid_body(), "metadata", two_byte))));
  const json over = {{"k", std::string("\xc3\xa9\xc3\xa9") + std::string(4085, 'x')}};  // 4097
  CHECK(only_problem_is(problems_of(with(valid_body(), "metadata", over)), "metadata"));

  for (const json& bad : {json::array(), json("campaign"), json(1), json(true)}) {
    INFO(bad.dump());
    CHECK(only_problem_is(problems_of(with(valid_body(), "metadata", bad)), "metadata"));
  }
  CHECK(only_problem_is(
      problems_of(with(valid_body(), "metadata", nested_object(gw::kMaxValueDepth + 1))),
      "metadata"));
  CHECK(only_problem_is(problems_of(with(valid_body(), "metadata", {{"k", std::string("\0", 1)}})),
                        "metadata"));
}

TEST_CASE("api_gateway request: malformed bodies are a 400 before any field is read",
          "[api_gateway][request]") {
  CHECK(error_of("").code() == "invalid_json");
  CHECK(error_of("{\"notification_type\":").code() == "invalid_json");
  CHECK(error_of("{\"a\":1}{").code() == "invalid_json");
  CHECK(error_of("not json").code() == "invalid_json");
  CHECK(error_of("{\"priority\":1e400}").code() == "invalid_json");  // overflows a double
  CHECK(error_of("{\"variables\":{\"x\":-1e400}}").code() == "invalid_json");
  CHECK(error_of("{\"template_code\":\"\xff\xfe\"}").code() == "invalid_json");  // not UTF-8
  CHECK(error_of("[1,2]").code() == "validation_failed");
  CHECK(error_of("\"a string\"").code() == "validation_failed");
  CHECK(error_of("null").code() == "validation_failed");
  for (const auto& body : {std::string(""), std::string("[1,2]"), std::string("{")}) {
    CHECK(error_of(body).status() == 400);
  }
  // Nesting far beyond any limit is refused without recursing through it.
  const std::string deep =
      "{\"variables\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK(error_of(deep).status() == 400);
  const std::string deep_objects = [] {
    std::string text = "{\"metadata\":";
    for (int i = 0; i < 50000; ++i) text += "{\"a\":";
    text += "1";
    text += std::string(50000, '}');
    return text + "}";
  }();
  CHECK(error_of(deep_objects).status() == 400);
}

TEST_CASE("api_gateway request: duplicate keys: the last one wins", "[api_gateway][request]") {
  std::string raw = valid_body().dump();
  raw.insert(raw.size() - 1, ",\"priority\":99,\"priority\":3,\"template_code\":\"other\"");
  const auto request = gw::parse_notification_request(post(raw));
  CHECK(request.priority == 3);
  CHECK(request.template_code == "other");
  // And the first occurrence's bad value is not what gets validated.
  std::string raw_bad_last = valid_body().dump();
  raw_bad_last.insert(raw_bad_last.size() - 1, ",\"priority\":12");
  CHECK(only_problem_is(problems_of(post(raw_bad_last)), "priority"));
}

TEST_CASE("api_gateway request: single checks", "[api_gateway][request]") {
  CHECK(gw::is_uuid("00000000-0000-0000-0000-000000000000"));
  CHECK(gw::is_uuid("ABCDEF01-2345-6789-abcd-ef0123456789"));
  CHECK_FALSE(gw::is_uuid("ABCDEF01-2345-6789-abcd-ef012345678"));
  CHECK_FALSE(gw::is_uuid("ABCDEF01-2345-6789-abcd_ef0123456789"));
  CHECK(gw::is_template_code("a.b-c_d9"));
  CHECK_FALSE(gw::is_template_code("a+b"));
  CHECK(gw::is_request_id("a b"));
  CHECK_FALSE(gw::is_request_id("a  "));
  CHECK(gw::channel_from_string("email") == gw::Channel::email);
  CHECK(gw::channel_from_string("push") == gw::Channel::push);
  CHECK_FALSE(gw::channel_from_string("Email").has_value());
  CHECK(gw::to_string(gw::Channel::email) == "email");
  CHECK(gw::to_string(gw::Channel::push) == "push");
}

// --- fingerprint ---------------------------------------------------------------------------

namespace {

std::string fingerprint_of(const std::string& raw, const HeaderList& headers = {}) {
  return gw::request_fingerprint(gw::parse_notification_request(post(raw, headers)));
}

std::string fingerprint_of(const json& body) { return fingerprint_of(body.dump()); }

}  // namespace

TEST_CASE("api_gateway fingerprint: the fingerprint is a pinned SHA-256 of the canonical fields",
          "[api_gateway][fingerprint]") {
  // Pinned: the ledger keeps these hashes across deploys, so a change of canonical form
  // would turn every replay after an upgrade into a 409. The expected value was computed
  // outside this code: SHA-256 of the sorted-key compact JSON of the six fields.
  const std::string raw = R"({
      "request_id": "r-1",
      "metadata": {"\u00e9": "\u00fc", "campaign": "onboarding"},
      "variables": {"name": "Ada", "link": "https://example.com/start", "n": [1, 2.5, true, null]},
      "template_code": "welcome_email",
      "user_id": "6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F",
      "notification_type": "email"
  })";
  CHECK(fingerprint_of(raw) == "62d0f99486e97167421d6c96cbffda1ae6c949a2917530f542d5081d87eedba0");
}

TEST_CASE("api_gateway fingerprint: one logical body gives one fingerprint",
          "[api_gateway][fingerprint]") {
  const std::string compact =
      R"({"notification_type":"push","user_id":"6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f","template_code":"t","variables":{"a":1,"b":{"y":2,"x":[1,"\u00e9"]}},"request_id":"r","priority":5,"metadata":{"m":"n","l":"k"}})";
  const std::string reordered = R"(
    {
      "metadata" : { "l" : "k", "m" : "n" },
      "priority" : 5,
      "request_id" : "r",
      "variables" : { "b" : { "x" : [ 1, "é" ], "y" : 2 }, "a" : 1 },
      "template_code" : "t",
      "user_id" : "6F1C9A8E-2b7d-4c1a-9e3f-0a1b2c3d4e5f",
      "notification_type" : "push",
      "ignored" : "anything"
    }
  )";
  const std::string hash = fingerprint_of(compact);
  CHECK(hash.size() == 64);
  CHECK(hash.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(fingerprint_of(reordered) == hash);

  // request_id is the key, not the body; and where it comes from does not matter.
  CHECK(fingerprint_of(with(json::parse(compact), "request_id", "another")) == hash);
  CHECK(fingerprint_of(without(json::parse(compact), "request_id").dump(),
                       {{"Idempotency-Key", "hdr"}}) == hash);

  // Defaults applied: absent == null == the default value.
  const json base = without(without(without(valid_body(), "variables"), "priority"), "metadata");
  const std::string defaults = fingerprint_of(base);
  CHECK(fingerprint_of(with(base, "priority", 5)) == defaults);
  CHECK(fingerprint_of(with(base, "variables", json::object())) == defaults);
  CHECK(fingerprint_of(with(base, "metadata", nullptr)) == defaults);
  CHECK(fingerprint_of(with(with(base, "variables", nullptr), "priority", nullptr)) == defaults);
}

TEST_CASE("api_gateway fingerprint: any change to what the notification is changes the fingerprint",
          "[api_gateway][fingerprint]") {
  const json body = valid_body();
  const std::string hash = fingerprint_of(body);
  const std::vector<json> changed = {
      with(body, "notification_type", "push"),
      with(body, "user_id", "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e50"),
      with(body, "template_code", "welcome_email2"),
      with(body, "variables", {{"name", "Ada"}, {"link", "https://example.com/Start"}}),
      with(body, "variables", {{"name", "Ada"}}),
      with(body, "variables",
           {{"name", "Ada"}, {"link", "https://example.com/start"}, {"x", nullptr}}),
      with(body, "variables", {{"name", "1"}, {"link", "https://example.com/start"}}),
      with(body, "priority", 4),
      with(body, "metadata", json::object()),
      with(body, "metadata", {{"campaign", "onboarding "}}),
  };
  std::vector<std::string> hashes{hash};
  for (const json& variant : changed) {
    INFO(variant.dump());
    const std::string other = fingerprint_of(variant);
    CHECK(std::find(hashes.begin(), hashes.end(), other) == hashes.end());
    hashes.push_back(other);
  }
  // A string and a number of the same text are different values.
  CHECK(fingerprint_of(with(body, "variables", {{"n", 1}})) !=
        fingerprint_of(with(body, "variables", {{"n", "1"}})));
  // Values cannot leak between fields: moving a value from variables to metadata differs.
  CHECK(fingerprint_of(with(with(body, "variables", {{"a", 1}}), "metadata", json::object())) !=
        fingerprint_of(with(with(body, "variables", json::object()), "metadata", {{"a", 1}})));
}
