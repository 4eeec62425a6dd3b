#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "notifs/messaging/amqp/connection_settings.hpp"

namespace amqp = notifs::messaging::amqp;

TEST_CASE("amqp mask_url hides the password and keeps the rest", "[amqp]") {
  CHECK(amqp::mask_url("amqp://guest:secret@127.0.0.1:5672/%2f") ==
        "amqp://guest:***@127.0.0.1:5672/%2f");
  CHECK(amqp::mask_url("amqps://user:p%40ss@broker.example.com/prod") ==
        "amqps://user:***@broker.example.com/prod");
  // Passwords with a raw '@' or '/' (not valid, but people write them) are still hidden.
  CHECK(amqp::mask_url("amqp://user:p@ss@host:5672/vh") == "amqp://user:***@host:5672/vh");
  CHECK(amqp::mask_url("amqp://user:pa/ss@host:5672/vh") == "amqp://user:***@host:5672/vh");
  CHECK(amqp::mask_url("amqp://user:@host/") == "amqp://user:***@host/");
}

TEST_CASE("amqp mask_url leaves URLs without a password alone", "[amqp]") {
  CHECK(amqp::mask_url("amqp://127.0.0.1:5672/%2f") == "amqp://127.0.0.1:5672/%2f");
  CHECK(amqp::mask_url("amqp://user@host/vh") == "amqp://user@host/vh");
  CHECK(amqp::mask_url("amqp://host:5672/v@h") == "amqp://host:5672/v@h");
  CHECK(amqp::mask_url("") == "");
  CHECK(amqp::mask_url("not a url") == "not a url");
}

TEST_CASE("amqp mask_url never shows a password, whatever the URL looks like", "[amqp]") {
  for (const std::string url :
       {"amqp://u:topsecret@h", "AMQP://u:topsecret@h:1/x", "u:topsecret@h",
        "amqp://u:top:secret@h/v", "amqp://u:topsecret@h/v@x", "amqp://u:top/secret@h/v",
        "amqp://u:top@secret@h", "amqp://u:topsecret@h?x=1"}) {
    CAPTURE(url);
    CHECK(amqp::mask_url(url).find("secret") == std::string::npos);
  }
}

TEST_CASE("amqp validate_url accepts amqp and amqps URLs", "[amqp]") {
  CHECK_NOTHROW(amqp::validate_url("amqp://guest:guest@127.0.0.1:5672/%2f"));
  CHECK_NOTHROW(amqp::validate_url("amqps://user:pass@broker.example.com:5671/prod"));
  CHECK_NOTHROW(amqp::validate_url("amqp://localhost"));
  CHECK_NOTHROW(amqp::validate_url("amqp://user:p%40ss@[::1]:5672/vh"));
}

TEST_CASE("amqp validate_url rejects what cannot work, naming the problem", "[amqp]") {
  const auto message_of = [](const std::string& url) {
    try {
      amqp::validate_url(url);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(message_of(""), Catch::Contains("is empty"));
  CHECK_THAT(message_of("http://guest:guest@host/%2f"), Catch::Contains("must start with"));
  CHECK_THAT(message_of("postgresql://u:p@h/db"), Catch::Contains("must start with"));
  CHECK_THAT(message_of("amqp://host:notaport/%2f"), Catch::Contains("malformed"));
  CHECK_THAT(message_of("amqp://host:99999/%2f"), Catch::Contains("malformed"));
  CHECK_THAT(message_of("amqp://host:0/%2f"), Catch::Contains("outside 1..65535"));
  CHECK_THAT(message_of("amqp://host:5672/a/b"), Catch::Contains("malformed"));
  CHECK_THAT(message_of("amqp://host/ vh"), Catch::Contains("space"));
  CHECK_THAT(message_of("amqp://"), Catch::Contains("no host"));
  CHECK_THAT(message_of("amqp://u:p@:5672/%2f"), Catch::Contains("no host"));
  // "host/" names the vhost "", not "/": a classic misconfiguration.
  CHECK_THAT(message_of("amqp://guest:guest@host:5672/"), Catch::Contains("empty vhost"));
  CHECK(message_of("amqp://u:secretpw@host:0/%2f").find("secretpw") == std::string::npos);
}
