// ApiKeys: which credentials a request may present (Authorization: Bearer or X-API-Key),
// the key id that partitions the idempotency ledger, and the router guard's 401.
// Requests are built by hand: no server, no network.

#include "api_keys.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace gw = notifs::api_gateway;
namespace http = notifs::messaging::http;

namespace {

constexpr const char* kKey = "k3y-Alpha.0123456789";
constexpr const char* kOtherKey = "k3y-Bravo.9876543210";

gw::ApiKeys make_keys() { return gw::ApiKeys({kKey, kOtherKey}); }

http::Request request_with(std::vector<std::pair<std::string, std::string>> headers) {
  http::Request request;
  request.method = http::Method::get;
  request.target = "/api/v1/notifications";
  request.path = request.target;
  for (auto& [name, value] : headers) {
    request.headers.add(std::move(name), std::move(value));
  }
  return request;
}

std::optional<std::string> authenticate(std::vector<std::pair<std::string, std::string>> headers) {
  return make_keys().authenticate(request_with(std::move(headers)));
}

bool is_lower_hex(const std::string& text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

TEST_CASE("api keys: a Bearer key is accepted and identified by its key id",
          "[api_gateway][api_keys]") {
  const auto id = authenticate({{"Authorization", std::string("Bearer ") + kKey}});
  REQUIRE(id);
  CHECK(*id == gw::ApiKeys::key_id(kKey));

  // Every configured key is accepted, each under its own id.
  const auto other = authenticate({{"Authorization", std::string("Bearer ") + kOtherKey}});
  REQUIRE(other);
  CHECK(*other == gw::ApiKeys::key_id(kOtherKey));
  CHECK(*other != *id);
}

TEST_CASE("api keys: an X-API-Key key is accepted under the same id as its Bearer form",
          "[api_gateway][api_keys]") {
  const auto id = authenticate({{"X-API-Key", kKey}});
  REQUIRE(id);
  CHECK(*id == gw::ApiKeys::key_id(kKey));
  CHECK(id == authenticate({{"Authorization", std::string("Bearer ") + kKey}}));
}

TEST_CASE("api keys: header names match in any case", "[api_gateway][api_keys]") {
  CHECK(authenticate({{"authorization", std::string("Bearer ") + kKey}}));
  CHECK(authenticate({{"x-api-key", kKey}}));
  CHECK(authenticate({{"X-Api-Key", kKey}}));
}

TEST_CASE("api keys: the Bearer scheme is case-insensitive", "[api_gateway][api_keys]") {
  // RFC 9110 section 11.1: the auth-scheme is a case-insensitive token.
  for (const std::string scheme : {"bearer", "BEARER", "bEaReR"}) {
    INFO(scheme);
    const auto id = authenticate({{"Authorization", scheme + " " + kKey}});
    REQUIRE(id);
    CHECK(*id == gw::ApiKeys::key_id(kKey));
  }
}

TEST_CASE("api keys: whitespace around the header value and after the scheme is not part of "
          "the key",
          "[api_gateway][api_keys]") {
  // Optional whitespace around a field value is not part of it (RFC 9110 section 5.5) and
  // the scheme may be followed by more than one space (RFC 9110 section 11.4).
  for (const std::string& value : {std::string("Bearer   ") + kKey, std::string("  Bearer ") + kKey,
                                  std::string("Bearer ") + kKey + "  ",
                                  std::string("Bearer\t") + kKey}) {
    INFO("'" << value << "'");
    const auto id = authenticate({{"Authorization", value}});
    REQUIRE(id);
    CHECK(*id == gw::ApiKeys::key_id(kKey));
  }
}

TEST_CASE("api keys: a token padded with more text is not the key", "[api_gateway][api_keys]") {
  for (const std::string& value :
       {std::string("Bearer ") + kKey + " x", std::string("Bearer x ") + kKey,
        std::string("Bearer ") + kKey + "\t" + kKey, std::string("Bearer") + kKey,
        std::string("Bearer:") + kKey}) {
    INFO("'" << value << "'");
    CHECK_FALSE(authenticate({{"Authorization", value}}));
  }
}

TEST_CASE("api keys: a wrong key is refused, however close to a real one",
          "[api_gateway][api_keys]") {
  const std::string key = kKey;
  std::string flipped = key;
  flipped.back() = flipped.back() == '9' ? '8' : '9';
  std::string upper = key;
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; });
  for (const std::string& wrong :
       {std::string("not-a-key"), key.substr(0, key.size() - 1), key + "0", "0" + key, flipped,
        upper, key + kOtherKey}) {
    INFO("'" << wrong << "'");
    CHECK_FALSE(authenticate({{"Authorization", "Bearer " + wrong}}));
    CHECK_FALSE(authenticate({{"X-API-Key", wrong}}));
  }
}

TEST_CASE("api keys: missing, empty and malformed credentials are refused",
          "[api_gateway][api_keys]") {
  CHECK_FALSE(authenticate({}));
  CHECK_FALSE(authenticate({{"X-API-Key", ""}}));
  CHECK_FALSE(authenticate({{"Authorization", ""}}));
  CHECK_FALSE(authenticate({{"Authorization", "   "}}));
  CHECK_FALSE(authenticate({{"Authorization", "Bearer"}}));
  CHECK_FALSE(authenticate({{"Authorization", "Bearer "}}));
  CHECK_FALSE(authenticate({{"Authorization", "Bearer    "}}));
  // Another scheme carrying the right key is still not a Bearer credential.
  CHECK_FALSE(authenticate({{"Authorization", std::string("Basic ") + kKey}}));
  CHECK_FALSE(authenticate({{"Authorization", kKey}}));
  // The key in a header the contract does not name.
  CHECK_FALSE(authenticate({{"X-Api-Token", kKey}}));
}

TEST_CASE("api keys: when both headers are present Authorization decides, even if wrong",
          "[api_gateway][api_keys]") {
  SECTION("right Authorization, wrong X-API-Key: accepted under Authorization's key") {
    const auto id = authenticate(
        {{"Authorization", std::string("Bearer ") + kKey}, {"X-API-Key", "wrong"}});
    REQUIRE(id);
    CHECK(*id == gw::ApiKeys::key_id(kKey));
  }
  SECTION("two different valid keys: Authorization's key is the one identified") {
    const auto id = authenticate(
        {{"X-API-Key", kOtherKey}, {"Authorization", std::string("Bearer ") + kKey}});
    REQUIRE(id);
    CHECK(*id == gw::ApiKeys::key_id(kKey));
  }
  SECTION("wrong Authorization, right X-API-Key: refused") {
    CHECK_FALSE(authenticate({{"Authorization", "Bearer wrong"}, {"X-API-Key", kKey}}));
  }
  SECTION("malformed Authorization, right X-API-Key: refused") {
    CHECK_FALSE(
        authenticate({{"Authorization", std::string("Basic ") + kKey}, {"X-API-Key", kKey}}));
    CHECK_FALSE(authenticate({{"Authorization", ""}, {"X-API-Key", kKey}}));
  }
}

TEST_CASE("api keys: key_id is 32 lower-case hex digits, stable per key, distinct across keys",
          "[api_gateway][api_keys]") {
  const auto id = gw::ApiKeys::key_id(kKey);
  CHECK(id.size() == 32);
  CHECK(is_lower_hex(id));
  CHECK(gw::ApiKeys::key_id(std::string(kKey)) == id);
  CHECK(gw::ApiKeys::key_id(kOtherKey) != id);
  CHECK(gw::ApiKeys::key_id(std::string(kKey) + " ") != id);
  // The documented derivation: the first 16 bytes of SHA-256 (FIPS 180-2 vector for "abc").
  CHECK(gw::ApiKeys::key_id("abc") == "ba7816bf8f01cfea414140de5dae2223");
  // It never reveals the key.
  CHECK(id.find(kKey) == std::string::npos);
}

TEST_CASE("api keys: the constructor refuses an empty list and an empty key",
          "[api_gateway][api_keys]") {
  CHECK_THROWS_AS(gw::ApiKeys(std::vector<std::string>{}), std::invalid_argument);
  CHECK_THROWS_AS(gw::ApiKeys(std::vector<std::string>{""}), std::invalid_argument);
  CHECK_THROWS_AS(gw::ApiKeys(std::vector<std::string>{kKey, ""}), std::invalid_argument);
  CHECK_NOTHROW(gw::ApiKeys(std::vector<std::string>{kKey}));
}

TEST_CASE("api keys: the guard answers 401 unauthorized with WWW-Authenticate",
          "[api_gateway][api_keys]") {
  const auto guard = make_keys().guard();

  for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {}, {{"Authorization", "Bearer wrong"}}, {{"X-API-Key", "wrong"}}}) {
    const auto refusal = guard(request_with(headers));
    REQUIRE(refusal);
    CHECK(refusal->status == 401);
    const auto challenge = refusal->headers.get("WWW-Authenticate");
    REQUIRE(challenge);
    CHECK(http::iequals(challenge->substr(0, 6), "Bearer"));
    const auto body = nlohmann::json::parse(refusal->body);
    CHECK(body["success"] == false);
    CHECK(body["data"].is_null());
    CHECK(body["error"]["code"] == "unauthorized");
    CHECK_FALSE(body["message"].get<std::string>().empty());
    // The refusal never echoes the key it was offered.
    CHECK(refusal->body.find("wrong") == std::string::npos);
  }
}

TEST_CASE("api keys: the guard lets a valid key through and outlives the ApiKeys it came from",
          "[api_gateway][api_keys]") {
  http::Router::Guard guard;
  {
    gw::ApiKeys keys({kKey});
    guard = keys.guard();
  }
  CHECK_FALSE(guard(request_with({{"Authorization", std::string("Bearer ") + kKey}})));
  CHECK_FALSE(guard(request_with({{"X-API-Key", kKey}})));
  CHECK(guard(request_with({{"X-API-Key", kOtherKey}})));
}
