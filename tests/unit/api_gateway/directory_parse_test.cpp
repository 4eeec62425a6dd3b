// The Directory's reading of upstream answers: what a well-formed envelope maps to, and
// every shape that must be refused (and so count as an upstream failure, never as a user
// with guessed preferences).
#include <string>

#include <catch2/catch.hpp>

#include "directory.hpp"

namespace gw = notifs::api_gateway;

namespace {

const std::string kUser = R"({"success":true,"data":{"id":"6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f",
  "name":"Ada","email":"ada@example.com","push_tokens":["t1","t2"],
  "preferences":{"email":false,"push":true},"locale":"de","created_at":"x"},
  "error":null,"message":"user","meta":null})";

TEST_CASE("directory parse maps every user field", "[directory]") {
  std::string error;
  const auto user = gw::detail::parse_user(kUser, error);
  INFO(error);
  REQUIRE(user);
  CHECK(user->id == "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f");
  CHECK(user->name == "Ada");
  CHECK(user->email == "ada@example.com");
  CHECK(user->locale == "de");
  CHECK(user->push_tokens == std::vector<std::string>{"t1", "t2"});
  CHECK_FALSE(user->email_enabled);
  CHECK(user->push_enabled);
}

TEST_CASE("directory parse accepts a user without address or tokens", "[directory]") {
  std::string error;
  const auto user = gw::detail::parse_user(
      R"({"data":{"id":"u","email":null,"preferences":{"email":true,"push":true}}})", error);
  INFO(error);
  REQUIRE(user);
  CHECK(user->email.empty());
  CHECK(user->push_tokens.empty());
}

TEST_CASE("directory parse refuses malformed user answers", "[directory]") {
  const char* bodies[] = {
      "",
      "not json",
      "[]",
      R"({"data":null})",
      R"({"data":{"name":"no id","preferences":{"email":true,"push":true}}})",
      R"({"data":{"id":5,"preferences":{"email":true,"push":true}}})",
      R"({"data":{"id":"u"}})",
      R"({"data":{"id":"u","preferences":{"email":true}}})",
      R"({"data":{"id":"u","preferences":{"email":"yes","push":true}}})",
      R"({"data":{"id":"u","push_tokens":"t","preferences":{"email":true,"push":true}}})",
      R"({"data":{"id":"u","push_tokens":[1],"preferences":{"email":true,"push":true}}})",
  };
  for (const char* body : bodies) {
    std::string error;
    INFO(body);
    CHECK_FALSE(gw::detail::parse_user(body, error));
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("directory parse reads templates and refuses bad versions", "[directory]") {
  std::string error;
  const auto found = gw::detail::parse_template(
      R"({"data":{"code":"welcome","channel":"email","locale":"en","version":3,"subject":"s"}})",
      error);
  INFO(error);
  REQUIRE(found);
  CHECK(found->code == "welcome");
  CHECK(found->channel == "email");
  CHECK(found->locale == "en");
  CHECK(found->version == 3);

  const char* bodies[] = {
      R"({"data":{"code":"w","channel":"email","locale":"en"}})",
      R"({"data":{"code":"w","channel":"email","locale":"en","version":0}})",
      R"({"data":{"code":"w","channel":"email","locale":"en","version":1.5}})",
      R"({"data":{"code":"w","channel":"email","locale":"en","version":4294967296}})",
      R"({"data":{"code":"w","locale":"en","version":1}})",
  };
  for (const char* body : bodies) {
    std::string bad_error;
    INFO(body);
    CHECK_FALSE(gw::detail::parse_template(body, bad_error));
  }
}

}  // namespace
