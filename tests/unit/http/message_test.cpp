#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "http/server_uri.hpp"
#include "notifs/messaging/http/message.hpp"

namespace http = notifs::messaging::http;

TEST_CASE("Headers look names up case-insensitively and keep arrival order", "[http][server][message]") {
  http::Headers headers;
  headers.add("Content-Type", "application/json");
  headers.add("X-Trace", "one");
  headers.add("x-trace", "two");

  CHECK(headers.get("content-type") == "application/json");
  CHECK(headers.get("CONTENT-TYPE") == "application/json");
  CHECK(headers.get("X-TRACE") == "one");  // the first value wins
  CHECK(headers.contains("x-Trace"));
  CHECK_FALSE(headers.get("Content-Length").has_value());
  REQUIRE(headers.size() == 3);

  std::vector<std::string> names;
  for (const auto& [name, value] : headers) {
    names.push_back(name);
  }
  CHECK(names == std::vector<std::string>{"Content-Type", "X-Trace", "x-trace"});
}

TEST_CASE("Headers::set replaces every value of a name, remove drops them all", "[http][server][message]") {
  http::Headers headers;
  headers.add("Accept", "a");
  headers.add("Vary", "x");
  headers.add("ACCEPT", "b");

  headers.set("accept", "c");
  CHECK(headers.size() == 2);
  CHECK(headers.get("Accept") == "c");

  headers.remove("VARY");
  CHECK(headers.size() == 1);
  CHECK_FALSE(headers.contains("vary"));
  headers.remove("not-there");
  CHECK(headers.size() == 1);
}

TEST_CASE("iequals compares ASCII case-insensitively and respects length", "[http][server][message]") {
  CHECK(http::iequals("Content-Length", "content-length"));
  CHECK(http::iequals("", ""));
  CHECK_FALSE(http::iequals("abc", "abcd"));
  CHECK_FALSE(http::iequals("a-b", "a_b"));
  // Only ASCII letters fold: '@' (0x40) and '`' (0x60) differ by the same bit as 'A'/'a'.
  CHECK_FALSE(http::iequals("@", "`"));
}

TEST_CASE("Method names round-trip and are case-sensitive", "[http][server][message]") {
  for (auto method : {http::Method::get, http::Method::head, http::Method::post, http::Method::put,
                      http::Method::patch, http::Method::delete_, http::Method::options}) {
    CHECK(http::method_from_string(http::to_string(method)) == method);
  }
  CHECK(http::to_string(http::Method::delete_) == "DELETE");
  CHECK(http::method_from_string("get") == http::Method::other);
  CHECK(http::method_from_string("PROPFIND") == http::Method::other);
  CHECK(http::method_from_string("") == http::Method::other);
  CHECK(http::to_string(http::Method::other) == "OTHER");
}

TEST_CASE("Request finds query and path parameters by exact name", "[http][server][message]") {
  http::Request request;
  request.query = {{"page", "2"}, {"limit", ""}, {"page", "3"}};
  request.path_params = {{"id", "42"}};

  CHECK(request.query_param("page") == "2");
  CHECK(request.query_param("limit") == "");
  CHECK_FALSE(request.query_param("Page").has_value());
  CHECK(request.path_param("id") == "42");
  CHECK(request.path_param("token").empty());
}

TEST_CASE("Response::json is an application/json answer", "[http][server][message]") {
  const auto response = http::Response::json(201, R"({"success":true})");
  CHECK(response.status == 201);
  CHECK(response.content_type == "application/json");
  CHECK(response.body == R"({"success":true})");
}

TEST_CASE("percent_decode decodes escapes and rejects broken ones", "[http][server][uri]") {
  using http::detail::percent_decode;
  CHECK(percent_decode("a%20b%2Fc", false) == "a b/c");
  CHECK(percent_decode("%e2%82%ac", false) == "\xe2\x82\xac");
  CHECK(percent_decode("a+b", false) == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("", false) == "");
  CHECK_FALSE(percent_decode("%", false).has_value());
  CHECK_FALSE(percent_decode("abc%2", false).has_value());
  CHECK_FALSE(percent_decode("%zz", false).has_value());
  CHECK_FALSE(percent_decode("%2g", false).has_value());
}

TEST_CASE("parse_query splits, decodes and keeps order", "[http][server][uri]") {
  using Pairs = std::vector<std::pair<std::string, std::string>>;
  const auto query = http::detail::parse_query("a=1&b=x%20y+z&&flag&c=&a=2&e%3D=%26");
  REQUIRE(query.has_value());
  CHECK(*query == Pairs{{"a", "1"}, {"b", "x y z"}, {"flag", ""}, {"c", ""}, {"a", "2"}, {"e=", "&"}});
  CHECK(http::detail::parse_query("")->empty());
  CHECK_FALSE(http::detail::parse_query("a=%").has_value());
  CHECK_FALSE(http::detail::parse_query("ok=1&bad%x=2").has_value());
}

TEST_CASE("split_target separates path and query of origin and absolute forms", "[http][server][uri]") {
  using http::detail::split_target;
  auto parts = split_target("/a/b?x=1&y=2");
  REQUIRE(parts);
  CHECK(parts->path == "/a/b");
  CHECK(parts->query == "x=1&y=2");

  parts = split_target("/only");
  REQUIRE(parts);
  CHECK(parts->path == "/only");
  CHECK(parts->query.empty());

  parts = split_target("HTTP://example.com:8080/p?q=1");
  REQUIRE(parts);
  CHECK(parts->path == "/p");
  CHECK(parts->query == "q=1");

  parts = split_target("http://example.com");
  REQUIRE(parts);
  CHECK(parts->path == "/");

  parts = split_target("http://example.com?q=1");
  REQUIRE(parts);
  CHECK(parts->path == "/");
  CHECK(parts->query == "q=1");

  CHECK_FALSE(split_target("*"));
  CHECK_FALSE(split_target(""));
  CHECK_FALSE(split_target("relative/path"));
}
