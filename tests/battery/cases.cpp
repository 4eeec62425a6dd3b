#include "cases.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>

namespace notifs::tests::battery {

namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

// A labelled raw JSON value (text exactly as it goes on the wire).
struct Value {
  std::string label;
  std::string raw;
};

Expect want(std::vector<int> statuses, std::string code, bool closed_ok = false) {
  Expect expect;
  expect.statuses = std::move(statuses);
  expect.code = std::move(code);
  expect.closed_ok = closed_ok;
  return expect;
}

std::string quoted(const std::string& text) { return json(text).dump(); }

// `base` (an object) with member `key` set to the raw text `raw`, or removed when nullopt.
std::string with_field(const json& base, const std::string& key, std::optional<std::string> raw) {
  std::string out = "{";
  bool placed = false;
  auto append = [&](const std::string& name, const std::string& value) {
    if (out.size() > 1) out += ',';
    out += quoted(name) + ':' + value;
  };
  for (const auto& [name, value] : base.items()) {
    if (name == key) {
      placed = true;
      if (raw) append(name, *raw);
      continue;
    }
    append(name, value.dump());
  }
  if (!placed && raw) append(key, *raw);
  return out + "}";
}

std::string repeat(std::string_view unit, std::size_t times) {
  std::string out;
  out.reserve(unit.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += unit;
  return out;
}

// {"a":{"a":...{"a":1}...}} with `levels` objects.
std::string nested_objects(std::size_t levels) {
  return repeat("{\"a\":", levels - 1) + "{\"a\":1}" + repeat("}", levels - 1);
}

// Everything but RFC 3986's unreserved characters percent-encoded: a path segment that
// reaches the handler exactly as `text`.
std::string encode_segment(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

// Wrong JSON types for a field of type `kind` ("string", "object", "integer", "array",
// "bool"); null counts as wrong only for required fields (null is "absent" otherwise).
std::vector<Value> wrong_types(std::string_view kind, bool required) {
  std::vector<Value> all = {{"number", "1"},    {"float", "1.5"}, {"bool", "true"},
                            {"array", "[]"},    {"object", "{}"}, {"string", "\"x\""}};
  if (required) all.push_back({"null", "null"});
  std::vector<Value> out;
  for (auto& value : all) {
    const bool same = (kind == "string" && value.label == "string") ||
                      (kind == "object" && value.label == "object") ||
                      (kind == "integer" && value.label == "number") ||
                      (kind == "array" && value.label == "array") ||
                      (kind == "bool" && value.label == "bool");
    if (!same) out.push_back({"wrong type: " + value.label, value.raw});
  }
  return out;
}

// The malformed-body set every JSON endpoint must refuse: what each must answer.
struct BodyAttack {
  std::string name;
  std::string body;
  Expect expect;
  std::string content_type = "application/json";
};

std::vector<BodyAttack> body_attacks(bool empty_body_allowed) {
  const Expect invalid_json = want({400}, "invalid_json");
  const Expect not_object = want({400}, "validation_failed");
  std::vector<BodyAttack> out = {
      {"top level null", "null", not_object},
      {"top level array", "[]", not_object},
      {"top level string", "\"text\"", not_object},
      {"top level number", "42", not_object},
      {"top level bool", "true", not_object},
      {"truncated object", "{", invalid_json},
      {"missing value", "{\"a\":}", invalid_json},
      {"trailing garbage", "{}garbage", invalid_json},
      {"single quotes", "{'a':1}", invalid_json},
      {"trailing comma", "{\"a\":1,}", invalid_json},
      {"leading zero number", "{\"a\":01}", invalid_json},
      {"invalid UTF-8 in string", "{\"a\":\"\xff\xfe\"}", invalid_json},
      {"overlong UTF-8 in string", "{\"a\":\"\xc0\xaf\"}", invalid_json},
      {"UTF-16 surrogate bytes", "{\"a\":\"\xed\xa0\x80\"}", invalid_json},
      {"lone escaped surrogate", "{\"a\":\"\\ud800\"}", invalid_json},
      {"raw NUL in string", std::string("{\"a\":\"x\0y\"}", 11), invalid_json},
      {"invalid UTF-8 in key", "{\"\xff\":1}", invalid_json},
      {"number beyond double", "{\"a\":1e400}", invalid_json},
      {"20000 nested arrays", repeat("[", 20000), invalid_json},
      {"100 nested objects, closed", nested_objects(100), invalid_json},
      {"unbalanced 30000 braces", repeat("{\"a\":", 6000), invalid_json},
      {"body over 64 KiB", "{\"a\":\"" + repeat("x", 70 * 1024) + "\"}",
       want({413}, "payload_too_large")},
      {"text/plain body", "{}", want({415}, "unsupported_media_type"), "text/plain"},
      {"no content type", "{}", want({415}, "unsupported_media_type"), ""},
      {"content type application/jsonx", "{}", want({415}, "unsupported_media_type"),
       "application/jsonx"},
      {"form body", "a=1&b=2", want({415}, "unsupported_media_type"),
       "application/x-www-form-urlencoded"},
  };
  if (!empty_body_allowed) {
    out.push_back({"empty body", "", invalid_json});
  }
  return out;
}

class Builder {
 public:
  explicit Builder(std::vector<Case>& cases) : cases_(cases) {}

  void add(const std::string& endpoint, std::string name, const Target& target,
           std::string request, Expect expect, bool half_close = false) {
    cases_.push_back(
        {endpoint, std::move(name), &target, std::move(request), std::move(expect), half_close});
  }

  // A request with the target's credentials (unless auth is false) and a JSON body.
  static std::string request(const Target& target, std::string_view method,
                             std::string_view path, std::string_view body = {},
                             Headers extra = {}, bool auth = true,
                             std::string content_type = "application/json") {
    Headers headers;
    if (auth && !target.auth.empty()) headers.emplace_back("Authorization", target.auth);
    const bool has_body = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    if (has_body && !content_type.empty()) headers.emplace_back("Content-Type", content_type);
    if (has_body && body.empty()) headers.emplace_back("Content-Length", "0");
    for (auto& header : extra) headers.push_back(std::move(header));
    return build_request(method, path, headers, body);
  }

  // Every malformed body, at one endpoint.
  void body_attacks_at(const std::string& endpoint, const Target& target, std::string_view method,
                       const std::string& path, bool empty_allowed = false) {
    for (auto& attack : body_attacks(empty_allowed)) {
      add(endpoint, attack.name, target,
          request(target, method, path, attack.body, {}, true, attack.content_type),
          attack.expect);
    }
  }

  // `base` with each of `values` in `field`: each must be refused with `expect`.
  void field_values(const std::string& endpoint, const Target& target, std::string_view method,
                    const std::string& path, const json& base, const std::string& field,
                    const std::vector<Value>& values, const Expect& expect) {
    for (const auto& value : values) {
      add(endpoint, field + ": " + value.label, target,
          request(target, method, path, with_field(base, field, value.raw)), expect);
    }
  }

  void missing(const std::string& endpoint, const Target& target, std::string_view method,
               const std::string& path, const json& base, const std::string& field,
               const Expect& expect) {
    add(endpoint, field + ": missing", target,
        request(target, method, path, with_field(base, field, std::nullopt)), expect);
  }

  // Credentials missing or wrong: 401 unauthorized whatever else is in the request.
  void auth_attacks(const std::string& endpoint, const Target& target, std::string_view method,
                    const std::string& path, const std::string& body) {
    const Expect unauthorized = want({401}, "unauthorized");
    const std::vector<std::pair<std::string, Headers>> variants = {
        {"no credentials", {}},
        {"wrong bearer token", {{"Authorization", "Bearer not-the-key-0123456789abcdef"}}},
        {"empty bearer", {{"Authorization", "Bearer "}}},
        {"basic scheme", {{"Authorization", "Basic YWRtaW46YWRtaW4="}}},
        {"token with a space inside",
         {{"Authorization", target.auth + " extra"}}},
        {"SQL as token", {{"Authorization", "Bearer ' OR '1'='1"}}},
        {"2 KiB token", {{"Authorization", "Bearer " + repeat("k", 2048)}}},
    };
    for (const auto& [name, headers] : variants) {
      add(endpoint, "auth: " + name, target,
          request(target, method, path, body, headers, false), unauthorized);
    }
  }

  // Path parameters that are not ids: SQL, traversal, NUL, huge, bad UTF-8. `prefix` and
  // `suffix` surround the segment; every one must get `expect`.
  void path_param_attacks(const std::string& endpoint, const Target& target,
                          std::string_view method, const std::string& prefix,
                          const std::string& suffix, const std::string& body,
                          const Expect& expect) {
    const std::vector<Value> segments = {
        {"not an id", "not-an-id"},
        {"SQL quote", encode_segment("' OR '1'='1")},
        {"SQL statement", encode_segment("1;DROP TABLE users;--")},
        {"SQL union", encode_segment("x' UNION SELECT password FROM pg_shadow--")},
        {"encoded traversal", encode_segment("../../etc/passwd")},
        {"encoded dot dot", "%2e%2e"},
        {"percent-encoded NUL", "%00"},
        {"invalid UTF-8", "%ff%fe"},
        {"CR LF", "%0d%0aX-Injected:%20yes"},
        {"4 KiB segment", repeat("a", 4096)},
        {"UUID one char short", "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5"},
        {"UUID with braces", "%7B6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f%7D"},
    };
    for (const auto& segment : segments) {
      add(endpoint, "path: " + segment.label, target,
          request(target, method, prefix + segment.raw + suffix, body), expect);
    }
    // Not a parameter any more: the router must not find a route (or must refuse).
    add(endpoint, "path: raw traversal", target,
        request(target, method, prefix + "../../../../etc/passwd" + suffix, body),
        want({400, 404}, ""));
  }

  // Query parameters (pagination and filters) with values that are not numbers/choices.
  void query_attacks(const std::string& endpoint, const Target& target, const std::string& path,
                     const std::vector<std::string>& queries) {
    for (const auto& query : queries) {
      add(endpoint, "query: " + query, target, request(target, "GET", path + "?" + query),
          want({400}, "validation_failed"));
    }
  }

 private:
  std::vector<Case>& cases_;
};

const std::vector<std::string> kPageQueries = {
    "page=0", "page=-1", "page=abc", "page=1e3", "page=99999999999999999999", "page=",
    "page=%00", "limit=0", "limit=-5", "limit=abc", "limit=99999999999999999999", "limit=1.5",
    "page=1%27%20OR%20%271%27%3D%271"};

// ---------------------------------------------------------------------------------------

void gateway_cases(Builder& b, const Fixture& f) {
  const Target& t = f.gateway;
  const Expect invalid = want({400}, "validation_failed");
  const std::string post = "gateway POST /api/v1/notifications";
  const std::string path = "/api/v1/notifications";
  // Valid in every part but the user, whom nobody has: whatever a mutation forgets to
  // break ends as 404 user_not_found, never as a queued notification.
  const json base = {{"notification_type", "email"},
                     {"user_id", f.unknown_uuid},
                     {"template_code", f.template_code},
                     {"variables", {{"name", "Ada"}}},
                     {"request_id", "battery-" + f.run_tag},
                     {"priority", 5},
                     {"metadata", {{"campaign", "battery"}}}};

  b.add(post, "valid body, unknown user", t, Builder::request(t, "POST", path, base.dump()),
        want({404}, "user_not_found"));
  json unknown_template = base;
  unknown_template["user_id"] = f.user_id;
  unknown_template["template_code"] = "battery_no_such_template";
  unknown_template["request_id"] = "battery-unknown-template-" + f.run_tag;
  b.add(post, "valid body, unknown template", t,
        Builder::request(t, "POST", path, unknown_template.dump()),
        want({404}, "template_not_found"));

  b.body_attacks_at(post, t, "POST", path);
  b.auth_attacks(post, t, "POST", path, base.dump());

  const std::string huge = quoted(repeat("h", 60 * 1024));
  auto strings = [&](std::vector<Value> extra, bool required) {
    auto values = wrong_types("string", required);
    values.push_back({"empty", "\"\""});
    values.push_back({"60 KiB string", huge});
    for (auto& value : extra) values.push_back(std::move(value));
    return values;
  };
  b.field_values(post, t, "POST", path, base, "notification_type",
                 strings({{"unknown channel", "\"sms\""},
                          {"upper case", "\"EMAIL\""},
                          {"trailing space", "\"email \""},
                          {"escaped NUL", "\"email\\u0000\""}},
                         true),
                 invalid);
  b.field_values(post, t, "POST", path, base, "user_id",
                 strings({{"not a UUID", "\"not-a-uuid\""},
                          {"UUID without dashes", "\"6f1c9a8e2b7d4c1a9e3f0a1b2c3d4e5f\""},
                          {"UUID one char long", "\"6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5fa\""},
                          {"not hex", "\"zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz\""},
                          {"SQL", "\"' OR '1'='1\""},
                          {"traversal", "\"../../etc/passwd\""}},
                         true),
                 invalid);
  b.field_values(post, t, "POST", path, base, "template_code",
                 strings({{"upper case", "\"Welcome\""},
                          {"space", "\"a b\""},
                          {"traversal", "\"../../etc/passwd\""},
                          {"SQL", "\"x';DROP TABLE templates;--\""},
                          {"65 characters", quoted(repeat("a", 65))},
                          {"non-ASCII", "\"\\u00e9t\\u00e9\""}},
                         true),
                 invalid);
  auto objects = wrong_types("object", false);
  b.field_values(post, t, "POST", path, base, "variables", objects, invalid);
  b.field_values(post, t, "POST", path, base, "variables",
                 {{"nested 40 levels", nested_objects(40)},
                  {"escaped NUL in a value", "{\"a\":\"x\\u0000\"}"},
                  {"escaped NUL in a key", "{\"a\\u0000\":1}"}},
                 invalid);
  b.field_values(post, t, "POST", path, base, "request_id",
                 strings({{"leading space", "\" lead\""},
                          {"trailing space", "\"trail \""},
                          {"CR LF header injection", "\"a\\r\\nX-Injected: yes\""},
                          {"tab", "\"tab\\there\""},
                          {"non-ASCII", "\"caf\\u00e9\""},
                          {"129 characters", quoted(repeat("r", 129))},
                          {"escaped NUL", "\"\\u0000\""}},
                         false),
                 invalid);
  auto integers = wrong_types("integer", false);
  integers.push_back({"negative", "-1"});
  integers.push_back({"10", "10"});
  integers.push_back({"2^63", "9223372036854775808"});
  integers.push_back({"2^64", "18446744073709551616"});
  integers.push_back({"-2^63-1", "-9223372036854775809"});
  integers.push_back({"exponent", "1e2"});
  integers.push_back({"5.0", "5.0"});
  b.field_values(post, t, "POST", path, base, "priority", integers, invalid);
  b.field_values(post, t, "POST", path, base, "priority", {{"1e400", "1e400"}},
                 want({400}, "invalid_json"));
  b.field_values(post, t, "POST", path, base, "metadata", objects, invalid);
  b.field_values(post, t, "POST", path, base, "metadata",
                 {{"over 4 KiB", "{\"a\":" + quoted(repeat("m", 5000)) + "}"},
                  {"nested 40 levels", nested_objects(40)}},
                 invalid);
  for (const auto* field : {"notification_type", "user_id", "template_code", "request_id"}) {
    b.missing(post, t, "POST", path, base, field, invalid);
  }

  // The idempotency key in a header.
  const std::string no_id = with_field(base, "request_id", std::nullopt);
  const std::vector<std::pair<std::string, Headers>> key_headers = {
      {"control byte", {{"Idempotency-Key", "a\x01" "b"}}},
      {"bare CR", {{"Idempotency-Key", "a\rX-Injected: yes"}}},
      {"non-ASCII", {{"Idempotency-Key", "caf\xc3\xa9"}}},
      {"129 characters", {{"Idempotency-Key", repeat("k", 129)}}},
      {"two different keys", {{"Idempotency-Key", "one"}, {"Idempotency-Key", "two"}}},
  };
  for (const auto& [name, headers] : key_headers) {
    b.add(post, "Idempotency-Key: " + name, t, Builder::request(t, "POST", path, no_id, headers),
          want({400}, ""));
  }
  b.add(post, "Idempotency-Key differs from request_id", t,
        Builder::request(t, "POST", path, base.dump(), {{"Idempotency-Key", "other-key"}}),
        invalid);

  // Duplicate keys: both spellings wrong must be refused whichever one the parser keeps;
  // one right and one wrong may go either way, but never to a 5xx.
  b.add(post, "duplicate key, both wrong", t,
        Builder::request(t, "POST", path,
                         "{\"priority\":\"x\"," + with_field(base, "priority", "99").substr(1)),
        invalid);
  b.add(post, "duplicate key, right then wrong", t,
        Builder::request(t, "POST", path,
                         "{\"user_id\":" + quoted(f.unknown_uuid) + "," +
                             with_field(base, "user_id", "\"bad\"").substr(1)),
        want({400, 404}, ""));
  b.add(post, "duplicate key, wrong then right", t,
        Builder::request(t, "POST", path, "{\"user_id\":\"bad\"," + base.dump().substr(1)),
        want({400, 404}, ""));

  // Header injection through X-Request-ID: the answer never carries the injected header,
  // and an id that is not one is replaced rather than echoed.
  const std::string bad_body = "{}";
  const std::vector<std::pair<std::string, std::string>> ids = {
      {"bare CR", "abc\rX-Injected: yes"},
      {"bare LF", "abc\nX-Injected: yes"},
      {"obs-fold", "abc\r\n X-Injected: yes"},
      {"NUL", std::string("abc\0X-Injected", 14)},
      {"non-ASCII", "caf\xc3\xa9"},
      {"300 characters", repeat("i", 300)},
  };
  for (const auto& [name, id] : ids) {
    b.add(post, "X-Request-ID: " + name, t,
          Builder::request(t, "POST", path, bad_body, {{"X-Request-ID", id}}), want({400}, ""));
  }
  Expect echoed = want({400}, "validation_failed");
  echoed.request_id = "battery-request-id-" + f.run_tag;
  b.add(post, "X-Request-ID: a good one is echoed", t,
        Builder::request(t, "POST", path, bad_body, {{"X-Request-ID", echoed.request_id}}),
        echoed);

  // GET one notification.
  const std::string item = "gateway GET /api/v1/notifications/{id}";
  const Expect not_found = want({404}, "notification_not_found");
  b.add(item, "unknown UUID", t, Builder::request(t, "GET", path + "/" + f.unknown_uuid),
        not_found);
  b.path_param_attacks(item, t, "GET", path + "/", "", "", want({400, 404}, ""));
  b.auth_attacks(item, t, "GET", path + "/" + f.unknown_uuid, "");

  // The list.
  const std::string list = "gateway GET /api/v1/notifications";
  b.query_attacks(list, t, path, kPageQueries);
  b.query_attacks(list, t, path,
                  {"user_id=not-a-uuid", "user_id=%27%20OR%201%3D1--", "user_id=%00",
                   "status=bogus", "status=queued%27%20OR%20%271%27%3D%271", "status=QUEUED",
                   "user_id=" + repeat("u", 4000)});
  b.auth_attacks(list, t, "GET", path, "");
}

void user_service_cases(Builder& b, const Fixture& f) {
  const Target& t = f.users;
  const Expect invalid = want({400}, "validation_failed");
  const std::string users = "/api/v1/users";
  const std::string huge = quoted(repeat("h", 60 * 1024));
  const json base = {{"name", "Battery Probe"},
                     {"email", "probe-" + f.run_tag + "@example.com"},
                     {"push_tokens", json::array()},
                     {"preferences", {{"email", true}, {"push", true}}},
                     {"locale", "en"}};

  const std::string create = "user_service POST /api/v1/users";
  b.body_attacks_at(create, t, "POST", users);
  b.auth_attacks(create, t, "POST", users, base.dump());
  auto strings = [&](std::vector<Value> extra, bool required) {
    auto values = wrong_types("string", required);
    values.push_back({"empty", "\"\""});
    values.push_back({"60 KiB string", huge});
    for (auto& value : extra) values.push_back(std::move(value));
    return values;
  };
  b.field_values(create, t, "POST", users, base, "name",
                 strings({{"201 characters", quoted(repeat("n", 201))},
                          {"CR LF header injection", "\"Ada\\r\\nBcc: victim@example.com\""},
                          {"escaped NUL", "\"a\\u0000b\""},
                          {"bell character", "\"\\u0007\""}},
                         true),
                 invalid);
  b.field_values(create, t, "POST", users, base, "email",
                 strings({{"no at sign", "\"no-at-sign\""},
                          {"two at signs", "\"a@b@example.com\""},
                          {"space", "\"a b@example.com\""},
                          {"CR LF", "\"x\\r\\nRCPT TO:<victim@example.com>@example.com\""},
                          {"255 bytes", quoted(repeat("e", 243) + "@example.com")},
                          {"SQL", "\"' OR 1=1--@example.com\""}},
                         true),
                 invalid);
  b.field_values(create, t, "POST", users, base, "locale",
                 strings({{"36 characters", quoted(repeat("l", 36))},
                          {"CR LF", "\"en\\r\\n\""},
                          {"traversal", "\"../../etc/passwd\""},
                          {"SQL", "\"en' OR '1'='1\""}},
                         false),
                 invalid);
  auto arrays = wrong_types("array", false);
  arrays.push_back({"number element", "[1]"});
  arrays.push_back({"null element", "[null]"});
  arrays.push_back({"empty token", "[\"\"]"});
  arrays.push_back({"CR LF token", "[\"a\\r\\nb\"]"});
  arrays.push_back({"4097-byte token", "[" + quoted(repeat("t", 4097)) + "]"});
  {
    std::string many = "[";
    for (int i = 0; i < 21; ++i) many += (i ? "," : "") + quoted("token-" + std::to_string(i));
    arrays.push_back({"21 tokens", many + "]"});
  }
  b.field_values(create, t, "POST", users, base, "push_tokens", arrays, invalid);
  auto preferences = wrong_types("object", false);
  preferences.push_back({"string flag", "{\"email\":\"yes\"}"});
  preferences.push_back({"number flag", "{\"email\":1}"});
  preferences.push_back({"unknown channel", "{\"sms\":true}"});
  b.field_values(create, t, "POST", users, base, "preferences", preferences, invalid);
  b.field_values(create, t, "POST", users, base, "admin", {{"unknown field", "true"}}, invalid);
  b.missing(create, t, "POST", users, base, "name", invalid);
  b.missing(create, t, "POST", users, base, "email", invalid);
  b.add(create, "duplicate key, both wrong", t,
        Builder::request(t, "POST", users,
                         "{\"email\":1," + with_field(base, "email", "\"no-at\"").substr(1)),
        invalid);

  const std::string list = "user_service GET /api/v1/users";
  b.query_attacks(list, t, users, kPageQueries);
  b.auth_attacks(list, t, "GET", users, "");

  // One user: bad ids are 400, an unknown one 404.
  const Expect bad_id = want({400}, "validation_failed");
  const Expect no_user = want({404}, "user_not_found");
  const std::string unknown = users + "/" + f.unknown_uuid;
  const json patch = {{"name", "New Name"}};
  for (const auto* method : {"GET", "PATCH", "DELETE"}) {
    const std::string endpoint = std::string("user_service ") + method + " /api/v1/users/{id}";
    const std::string body = std::string(method) == "PATCH" ? patch.dump() : "";
    b.path_param_attacks(endpoint, t, method, users + "/", "", body, bad_id);
    b.add(endpoint, "unknown UUID", t, Builder::request(t, method, unknown, body), no_user);
    b.auth_attacks(endpoint, t, method, unknown, body);
  }
  const std::string patch_endpoint = "user_service PATCH /api/v1/users/{id}";
  b.body_attacks_at(patch_endpoint, t, "PATCH", unknown);
  b.add(patch_endpoint, "empty object", t, Builder::request(t, "PATCH", unknown, "{}"), invalid);
  b.field_values(patch_endpoint, t, "PATCH", unknown, patch, "name",
                 strings({{"CR LF", "\"a\\r\\nb\""}}, false), invalid);
  b.field_values(patch_endpoint, t, "PATCH", unknown, patch, "email",
                 {{"no at sign", "\"x\""}, {"number", "1"}}, invalid);
  b.field_values(patch_endpoint, t, "PATCH", unknown, patch, "id",
                 {{"unknown field id", quoted(f.unknown_uuid)}}, invalid);

  const std::string preferences_path = unknown + "/preferences";
  const std::string get_preferences = "user_service GET /api/v1/users/{id}/preferences";
  b.path_param_attacks(get_preferences, t, "GET", users + "/", "/preferences", "", bad_id);
  b.add(get_preferences, "unknown UUID", t, Builder::request(t, "GET", preferences_path),
        no_user);
  const std::string put_preferences = "user_service PUT /api/v1/users/{id}/preferences";
  const json good_preferences = {{"email", true}, {"push", false}};
  b.path_param_attacks(put_preferences, t, "PUT", users + "/", "/preferences",
                       good_preferences.dump(), bad_id);
  b.body_attacks_at(put_preferences, t, "PUT", preferences_path);
  b.add(put_preferences, "unknown UUID", t,
        Builder::request(t, "PUT", preferences_path, good_preferences.dump()), no_user);
  b.add(put_preferences, "empty object", t, Builder::request(t, "PUT", preferences_path, "{}"),
        invalid);
  b.missing(put_preferences, t, "PUT", preferences_path, good_preferences, "push", invalid);
  for (const auto* field : {"email", "push"}) {
    auto values = wrong_types("bool", true);
    b.field_values(put_preferences, t, "PUT", preferences_path, good_preferences, field, values,
                   invalid);
  }
  b.field_values(put_preferences, t, "PUT", preferences_path, good_preferences, "sms",
                 {{"unknown channel", "true"}}, invalid);

  const std::string tokens_path = unknown + "/push_tokens";
  const std::string add_token = "user_service POST /api/v1/users/{id}/push_tokens";
  const json token = {{"token", "battery-token"}};
  b.path_param_attacks(add_token, t, "POST", users + "/", "/push_tokens", token.dump(), bad_id);
  b.body_attacks_at(add_token, t, "POST", tokens_path);
  b.add(add_token, "unknown UUID", t, Builder::request(t, "POST", tokens_path, token.dump()),
        no_user);
  b.field_values(add_token, t, "POST", tokens_path, token, "token",
                 strings({{"4097 bytes", quoted(repeat("t", 4097))}, {"CR LF", "\"a\\r\\nb\""}},
                         true),
                 invalid);
  b.missing(add_token, t, "POST", tokens_path, token, "token", invalid);
  b.field_values(add_token, t, "POST", tokens_path, token, "extra", {{"unknown field", "1"}},
                 invalid);

  const std::string remove_token = "user_service DELETE /api/v1/users/{id}/push_tokens/{token}";
  b.path_param_attacks(remove_token, t, "DELETE", users + "/", "/push_tokens/battery-token", "",
                       bad_id);
  // The token segment: refused (400) or not found (404), never more.
  b.path_param_attacks(remove_token, t, "DELETE", tokens_path + "/", "", "",
                       want({400, 404}, ""));
}

void template_service_cases(Builder& b, const Fixture& f) {
  const Target& t = f.templates;
  const Expect invalid = want({400}, "validation_failed");
  const std::string templates = "/api/v1/templates";
  const std::string huge = quoted(repeat("h", 60 * 1024));
  const json base = {{"code", "probe_" + f.run_tag},
                     {"channel", "email"},
                     {"locale", "en"},
                     {"subject", "Subject"},
                     {"body", "Body"}};
  auto strings = [&](std::vector<Value> extra, bool required) {
    auto values = wrong_types("string", required);
    values.push_back({"60 KiB string", huge});
    for (auto& value : extra) values.push_back(std::move(value));
    return values;
  };

  const std::string create = "template_service POST /api/v1/templates";
  b.body_attacks_at(create, t, "POST", templates);
  b.auth_attacks(create, t, "POST", templates, base.dump());
  b.field_values(create, t, "POST", templates, base, "code",
                 strings({{"empty", "\"\""},
                          {"upper case", "\"Upper\""},
                          {"traversal", "\"../../x\""},
                          {"space", "\"a b\""},
                          {"SQL", "\"x';DROP TABLE templates;--\""},
                          {"65 characters", quoted(repeat("c", 65))}},
                         true),
                 invalid);
  b.field_values(create, t, "POST", templates, base, "channel",
                 strings({{"empty", "\"\""}, {"sms", "\"sms\""}, {"upper case", "\"EMAIL\""}},
                         true),
                 invalid);
  b.field_values(create, t, "POST", templates, base, "locale",
                 strings({{"empty", "\"\""},
                          {"traversal", "\"../../etc\""},
                          {"CR LF", "\"en\\r\\n\""},
                          {"36 characters", quoted(repeat("l", 36))},
                          {"SQL", "\"en' OR '1'='1\""}},
                         false),
                 invalid);
  b.field_values(create, t, "POST", templates, base, "subject",
                 strings({{"CR LF header injection", "\"Hi\\r\\nBcc: victim@example.com\""},
                          {"bare LF", "\"Hi\\nX-Injected: yes\""},
                          {"999 characters", quoted(repeat("s", 999))}},
                         true),
                 invalid);
  b.field_values(create, t, "POST", templates, base, "body",
                 strings({{"33 KiB", quoted(repeat("b", 33 * 1024))}}, true), invalid);
  b.field_values(create, t, "POST", templates, base, "html_body", wrong_types("string", false),
                 invalid);
  b.field_values(create, t, "POST", templates, base, "title",
                 {{"title on an email template", "\"Title\""}}, invalid);
  b.field_values(create, t, "POST", templates, base, "extra", {{"unknown field", "1"}}, invalid);
  for (const auto* field : {"code", "channel", "subject", "body"}) {
    b.missing(create, t, "POST", templates, base, field, invalid);
  }
  json push = base;
  push["channel"] = "push";
  push.erase("subject");
  push["title"] = "Title";
  b.field_values(create, t, "POST", templates, push, "subject",
                 {{"subject on a push template", "\"S\""}}, invalid);
  b.field_values(create, t, "POST", templates, push, "title",
                 {{"257 characters", quoted(repeat("t", 257))}}, invalid);
  b.field_values(create, t, "POST", templates, push, "body",
                 {{"4097 bytes", quoted(repeat("b", 4097))}}, invalid);

  const std::string list = "template_service GET /api/v1/templates";
  b.query_attacks(list, t, templates, kPageQueries);
  b.query_attacks(list, t, templates,
                  {"channel=sms", "channel=", "channel=EMAIL", "channel=email%27%20OR%201%3D1"});
  b.auth_attacks(list, t, "GET", templates, "");

  // One template.
  const Expect no_template = want({404}, "template_not_found");
  const std::string known = templates + "/" + f.template_code;
  const std::string unknown = templates + "/battery_no_such_" + f.run_tag;
  const std::string get = "template_service GET /api/v1/templates/{code}";
  // Some of the segments ("not-an-id", "..") are valid codes nobody has: 404 for those.
  const Expect bad_code = want({400, 404}, "");
  b.path_param_attacks(get, t, "GET", templates + "/", "", "", bad_code);
  b.add(get, "unknown code", t, Builder::request(t, "GET", unknown), no_template);
  b.add(get, "unknown version", t, Builder::request(t, "GET", known + "?version=9999"),
        want({404}, "version_not_found"));
  b.query_attacks(get, t, known,
                  {"version=0", "version=-1", "version=abc", "version=2147483648", "version=1.5",
                   "version=", "version=1%27%20OR%201%3D1", "locale=..%2F..%2Fetc",
                   "locale=en%0d%0a", "locale=" + repeat("l", 36), "locale=%00"});
  b.auth_attacks(get, t, "GET", known, "");

  const std::string put = "template_service PUT /api/v1/templates/{code}";
  json version = base;
  version.erase("code");
  b.path_param_attacks(put, t, "PUT", templates + "/", "", version.dump(), bad_code);
  b.body_attacks_at(put, t, "PUT", known);
  b.add(put, "unknown code", t, Builder::request(t, "PUT", unknown, version.dump()), no_template);
  b.field_values(put, t, "PUT", known, version, "code", {{"another code", "\"other_code\""}},
                 invalid);
  b.field_values(put, t, "PUT", known, version, "subject",
                 {{"CR LF header injection", "\"Hi\\r\\nBcc: victim@example.com\""},
                  {"number", "1"}},
                 invalid);
  // Hostile Mustache: refused or, when it parses, stored nowhere (the code is unknown).
  const std::vector<Value> hostile = {
      {"unclosed section", "\"{{#a}}x\""},
      {"stray close", "\"x{{/a}}\""},
      {"partial", "\"{{>etc/passwd}}\""},
      {"delimiter change", "\"{{=<% %>=}}<%a%>\""},
      {"unbalanced braces", "\"{{{{{{a}}\""},
      {"4000 nested sections", quoted(repeat("{{#a}}", 4000) + repeat("{{/a}}", 4000))},
  };
  for (const auto& value : hostile) {
    b.add(put, "body: " + value.label, t,
          Builder::request(t, "PUT", unknown, with_field(version, "body", value.raw)),
          want({400, 404, 422}, ""));
  }
  b.auth_attacks(put, t, "PUT", known, version.dump());

  const std::string versions = "template_service GET /api/v1/templates/{code}/versions";
  b.path_param_attacks(versions, t, "GET", templates + "/", "/versions", "", bad_code);
  b.query_attacks(versions, t, known + "/versions",
                  {"page=0", "limit=abc", "locale=..%2F..", "locale=%00"});
  b.auth_attacks(versions, t, "GET", known + "/versions", "");

  const std::string render = "template_service POST /api/v1/templates/{code}/render";
  const std::string render_path = known + "/render";
  const json good_render = {{"locale", "en"}, {"variables", {{"name", "Ada"}}}};
  b.path_param_attacks(render, t, "POST", templates + "/", "/render", good_render.dump(),
                       bad_code);
  b.body_attacks_at(render, t, "POST", render_path, /*empty_allowed=*/true);
  b.add(render, "unknown code", t,
        Builder::request(t, "POST", unknown + "/render", good_render.dump()), no_template);
  b.add(render, "unknown version", t,
        Builder::request(t, "POST", render_path, with_field(good_render, "version", "9999")),
        want({404}, "version_not_found"));
  b.add(render, "missing variable", t,
        Builder::request(t, "POST", render_path, with_field(good_render, "variables", "{}")),
        want({422}, "missing_variables"));
  b.field_values(render, t, "POST", render_path, good_render, "locale",
                 {{"number", "1"}, {"empty", "\"\""}, {"traversal", "\"../../etc\""},
                  {"CR LF", "\"en\\r\\n\""}},
                 invalid);
  auto render_versions = wrong_types("integer", false);
  render_versions.push_back({"zero", "0"});
  render_versions.push_back({"negative", "-1"});
  render_versions.push_back({"2^31", "2147483648"});
  render_versions.push_back({"2^64", "18446744073709551616"});
  b.field_values(render, t, "POST", render_path, good_render, "version", render_versions,
                 invalid);
  b.field_values(render, t, "POST", render_path, good_render, "version", {{"1e400", "1e400"}},
                 want({400}, "invalid_json"));
  b.field_values(render, t, "POST", render_path, good_render, "variables",
                 wrong_types("object", false), invalid);
  b.field_values(render, t, "POST", render_path, good_render, "variables",
                 {{"nested 70 levels", nested_objects(70)}}, want({400}, "invalid_json"));
  b.field_values(render, t, "POST", render_path, good_render, "extra", {{"unknown field", "1"}},
                 invalid);
  // Lists inside lists: the output would be terabytes; it must be refused, quickly.
  {
    std::string items = "[";
    for (int i = 0; i < 200; ++i) items += (i ? "," : "") + std::string("{\"l\":[1,2,3,4,5,6,7,8,9,10]}");
    items += "]";
    const std::string variables = "{\"x\":" + quoted(repeat("x", 1000)) + ",\"l\":" + items + "}";
    b.add(render, "output bomb", t,
          Builder::request(t, "POST", templates + "/" + f.bomb_code + "/render",
                           "{\"variables\":" + variables + "}"),
          want({422}, ""));
  }
  b.auth_attacks(render, t, "POST", render_path, good_render.dump());
}

// Malformed HTTP and routing, the same for every process: they share the server.
void protocol_cases(Builder& b, const Target& t) {
  const std::string endpoint = t.name + " (HTTP layer)";
  const Expect malformed = want({400}, "malformed_request");
  const Expect any4xx = want({}, "");
  auto raw = [&](std::string name, std::string bytes, Expect expect) {
    const bool half_close = name.find("half-close") != std::string::npos;
    b.add(endpoint, std::move(name), t, std::move(bytes), std::move(expect), half_close);
  };
  raw("garbage request line", "GARBAGE\r\n\r\n", malformed);
  raw("HTTP/9.9", "GET /health HTTP/9.9\r\nHost: x\r\n\r\n", malformed);
  raw("lower-case method", "get /health HTTP/1.1\r\nHost: x\r\n\r\n", want({400, 405}, ""));
  raw("unknown method", "BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", want({400, 405}, ""));
  raw("wrong method", "DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n",
      want({405}, "method_not_allowed"));
  raw("unknown path", "GET /api/v1/nothing-here HTTP/1.1\r\nHost: x\r\n\r\n",
      want({404}, "not_found"));
  raw("raw traversal", "GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
      want({400, 404}, ""));
  raw("encoded traversal", "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
      want({400, 404}, ""));
  raw("invalid percent-encoding", "GET /health%zz HTTP/1.1\r\nHost: x\r\n\r\n",
      want({400, 404}, ""));
  // RFC 9112 3.2.2: a server must accept the absolute form (and ignore its authority).
  raw("absolute-form target", "GET http://evil.example/health HTTP/1.1\r\nHost: x\r\n\r\n",
      want({200, 400}, ""));
  raw("asterisk target", "GET * HTTP/1.1\r\nHost: x\r\n\r\n", want({400, 404}, ""));
  raw("NUL in target", std::string("GET /hea\0lth HTTP/1.1\r\nHost: x\r\n\r\n", 35),
      want({400}, ""));
  raw("header without colon", "GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
      want({400}, ""));
  raw("space in header name", "GET /health HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
      want({400}, ""));
  raw("negative Content-Length",
      "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", want({400}, ""));
  raw("Content-Length beyond 2^64",
      "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      want({400, 413}, ""));
  raw("two different Content-Length",
      "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
      want({400}, ""));
  raw("Content-Length and chunked",
      "POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
      "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
      want({400, 405}, ""));
  raw("invalid chunk size",
      "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
      want({400}, ""));
  raw("chunk size beyond 2^64",
      "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "ffffffffffffffffffff\r\n{}\r\n",
      want({400, 413}, ""));
  raw("announced 1 MB body", "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n",
      want({413}, "payload_too_large"));
  raw("header block over 8 KiB",
      "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + repeat("b", 9000) + "\r\n\r\n",
      want({431}, "headers_too_large"));
  raw("target over 8 KiB", "GET /" + repeat("p", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
      want({414, 431}, ""));
  raw("2000 small headers (16 KiB)",
      "GET /health HTTP/1.1\r\nHost: x\r\n" + repeat("X-A: b\r\n", 2000) + "\r\n",
      want({431}, "headers_too_large"));
  raw("TLS ClientHello",
      std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 11) + repeat("\x01", 40),
      want({400}, "", true));
  raw("body shorter than Content-Length, then half-close",
      "POST /health HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{}",
      want({}, "", true));
  raw("request line only, then half-close", "GET /health HTTP/1.1\r\n", want({}, "", true));
}

}  // namespace

std::vector<Case> make_cases(const Fixture& fixture) {
  std::vector<Case> cases;
  Builder builder(cases);
  gateway_cases(builder, fixture);
  user_service_cases(builder, fixture);
  template_service_cases(builder, fixture);
  for (const Target* target : {&fixture.gateway, &fixture.users, &fixture.templates,
                               &fixture.email_worker, &fixture.push_worker}) {
    protocol_cases(builder, *target);
  }
  return cases;
}

}  // namespace notifs::tests::battery
