#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "notifs/messaging/http/envelope.hpp"

namespace http = notifs::messaging::http;
using nlohmann::json;

namespace {

http::Request with_body(std::string body) {
  http::Request request;
  request.body = std::move(body);
  return request;
}

// Runs parse_json_object and returns the HttpError it threw.
http::HttpError parse_error(std::string body) {
  try {
    http::parse_json_object(with_body(std::move(body)));
  } catch (const http::HttpError& error) {
    return error;
  }
  FAIL("parse_json_object did not throw");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("success_envelope has exactly the contract's five fields", "[http][server][envelope]") {
  const auto envelope = http::success_envelope({{"id", 1}}, "created");
  CHECK(envelope == json{{"success", true},
                         {"data", {{"id", 1}}},
                         {"error", nullptr},
                         {"message", "created"},
                         {"meta", nullptr}});
  CHECK(http::success_envelope(nullptr)["message"] == "ok");
}

TEST_CASE("error_envelope carries code and details, data null", "[http][server][envelope]") {
  const auto envelope = http::error_envelope("validation_failed", "invalid request",
                                             {{"user_id", "must be a UUID"}, {"priority", "0 to 9"}});
  CHECK(envelope == json{{"success", false},
                         {"data", nullptr},
                         {"error",
                          {{"code", "validation_failed"},
                           {"details",
                            {{{"field", "user_id"}, {"problem", "must be a UUID"}},
                             {{"field", "priority"}, {"problem", "0 to 9"}}}}}},
                         {"message", "invalid request"},
                         {"meta", nullptr}});
  // No details is an empty array, not null: clients iterate it without a check.
  CHECK(http::error_envelope("x", "y")["error"]["details"] == json::array());
}

TEST_CASE("PageMeta computes pages and neighbours", "[http][server][envelope]") {
  CHECK(http::PageMeta{45, 20, 3}.to_json() == json{{"total", 45},
                                                  {"limit", 20},
                                                  {"page", 3},
                                                  {"total_pages", 3},
                                                  {"has_next", false},
                                                  {"has_previous", true}});
  const auto first = http::PageMeta{40, 20, 1}.to_json();
  CHECK(first["total_pages"] == 2);
  CHECK(first["has_next"] == true);
  CHECK(first["has_previous"] == false);
  const auto empty = http::PageMeta{0, 20, 1}.to_json();
  CHECK(empty["total_pages"] == 0);
  CHECK(empty["has_next"] == false);
}

TEST_CASE("ok_response and error_response serialize the envelope as JSON", "[http][server][envelope]") {
  const auto ok = http::ok_response(201, {{"id", "a"}}, "created", http::PageMeta{1, 20, 1}.to_json());
  CHECK(ok.status == 201);
  CHECK(ok.content_type == "application/json");
  const auto body = json::parse(ok.body);
  CHECK(body["success"] == true);
  CHECK(body["meta"]["total"] == 1);

  const auto error = http::error_response(404, "user_not_found", "no such user");
  CHECK(error.status == 404);
  CHECK(error.content_type == "application/json");
  CHECK(json::parse(error.body)["error"]["code"] == "user_not_found");
}

TEST_CASE("Envelopes built from invalid UTF-8 still serialize", "[http][server][envelope]") {
  const auto response = http::error_response(400, "validation_failed", "bad",
                                             {{"name\xff", "value \xc3"}});
  const auto body = json::parse(response.body);
  CHECK(body["error"]["details"][0]["field"].get<std::string>().rfind("name", 0) == 0);
}

TEST_CASE("HttpError becomes its own envelope with its headers", "[http][server][envelope]") {
  http::HttpError error(503, "dependency_unavailable", "user_service is down",
                        {{"user_service", "circuit open"}});
  error.headers().set("Retry-After", "10");
  CHECK(std::string(error.what()) == "user_service is down");
  const auto response = error.to_response();
  CHECK(response.status == 503);
  CHECK(response.headers.get("retry-after") == "10");
  const auto body = json::parse(response.body);
  CHECK(body["success"] == false);
  CHECK(body["message"] == "user_service is down");
  CHECK(body["error"]["code"] == "dependency_unavailable");
  CHECK(body["error"]["details"][0]["problem"] == "circuit open");
}

TEST_CASE("parse_json_object returns the object of a valid body", "[http][server][envelope]") {
  const auto object = http::parse_json_object(with_body(R"({"a": [1, {"b": "]}"}], "c": null})"));
  CHECK(object["a"][1]["b"] == "]}");
  CHECK(object["c"].is_null());
}

TEST_CASE("parse_json_object refuses bodies that are not a JSON object", "[http][server][envelope]") {
  // 1e400 overflows a double: the parser throws out_of_range, not parse_error.
  for (const char* body : {"{", "{\"a\":}", "not json", "{\"a\":1} trailing", "\xff",
                           "{\"n\": 1e400}", "{\"n\": -1e400}"}) {
    INFO(body);
    const auto error = parse_error(body);
    CHECK(error.status() == 400);
    CHECK(error.code() == "invalid_json");
  }
  CHECK(parse_error("").code() == "invalid_json");

  for (const char* body : {"[1,2]", "\"text\"", "42", "null"}) {
    INFO(body);
    const auto error = parse_error(body);
    CHECK(error.status() == 400);
    CHECK(error.code() == "validation_failed");
    REQUIRE(error.details().size() == 1);
    CHECK(error.details()[0].field == "body");
  }
}

TEST_CASE("parse_json_object reports where the JSON broke", "[http][server][envelope]") {
  const auto error = parse_error(R"({"a": 1, "b": })");
  CHECK(std::string(error.what()).find("byte 15") != std::string::npos);
}

TEST_CASE("parse_json_object refuses absurd nesting before parsing", "[http][server][envelope]") {
  std::string deep = "{\"a\":" + std::string(10000, '[') + std::string(10000, ']') + "}";
  CHECK(parse_error(deep).code() == "invalid_json");

  // Brackets inside strings do not count; 64 levels are fine.
  std::string fine = "{\"s\":\"" + std::string(500, '[') + "\",\"a\":" + std::string(63, '[') +
                     std::string(63, ']') + "}";
  CHECK(http::parse_json_object(with_body(fine))["s"].get<std::string>().size() == 500);
}

TEST_CASE("Envelopes go on the wire in the contract's field order, escaped like nlohmann", "[http][server][envelope]") {
  // The reference: the same envelope serialized by nlohmann with its fields in order.
  const auto reference = [](const json& envelope) {
    nlohmann::ordered_json ordered;
    for (const char* key : {"success", "data", "error", "message", "meta"}) {
      ordered[key] = nlohmann::ordered_json::parse(
          envelope.at(key).dump(-1, ' ', false, json::error_handler_t::replace));
    }
    return ordered.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  };
  const std::vector<std::string> texts = {
      "ok", "", "say \"hi\"", "back\\slash", "tab\there\nnewline", "caf\xc3\xa9 \xe2\x82\xac",
      "control \x01\x1f and del \x7f", "slash / stays", "{\"not\": json}"};
  for (const auto& text : texts) {
    INFO(text);
    const json data = {{"text", text}, {"n", 1}, {"list", {1, "two", nullptr}}};
    const json meta = http::PageMeta{45, 20, 3}.to_json();
    CHECK(http::ok_response(200, data, text, meta).body ==
          reference(http::success_envelope(data, text, meta)));
    CHECK(http::ok_response(200, nullptr, text).body ==
          reference(http::success_envelope(nullptr, text)));
    const std::vector<http::FieldProblem> details = {{text, "must be " + text}, {"b", "c"}};
    CHECK(http::error_response(400, text, text, details).body ==
          reference(http::error_envelope(text, text, details)));
    CHECK(http::error_response(404, "not_found", text).body ==
          reference(http::error_envelope("not_found", text)));
  }
  // Invalid UTF-8 is replaced, as nlohmann does, not thrown on.
  const std::string invalid = "bad \xff\xc3 end";
  CHECK(http::ok_response(200, {{"v", invalid}}, invalid).body ==
        reference(http::success_envelope({{"v", invalid}}, invalid)));
  CHECK(http::ok_response(200, true).body ==
        R"({"success":true,"data":true,"error":null,"message":"ok","meta":null})");
}
