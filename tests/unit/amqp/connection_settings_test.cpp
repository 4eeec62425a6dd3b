#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

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

TEST_CASE("amqp split_urls cuts a cluster's list at each new URL", "[amqp]") {
  using List = std::vector<std::string>;
  CHECK(amqp::split_urls("amqp://h1:5672/%2f") == List{"amqp://h1:5672/%2f"});
  CHECK(amqp::split_urls("amqp://u:p@h1:5701/%2f,amqps://u:p@h2:5671/%2f,AMQP://h3") ==
        List{"amqp://u:p@h1:5701/%2f", "amqps://u:p@h2:5671/%2f", "AMQP://h3"});
  // Blanks around the commas are for readability, not part of an address.
  CHECK(amqp::split_urls(" amqp://h1 , amqp://h2\t") == List{"amqp://h1", "amqp://h2"});
  // A comma that does not start another URL belongs to the one it is in.
  CHECK(amqp::split_urls("amqp://u:pa,ss@h1/%2f,amqp://h2") ==
        List{"amqp://u:pa,ss@h1/%2f", "amqp://h2"});
  CHECK(amqp::split_urls("amqp://u:p@h1/a,b") == List{"amqp://u:p@h1/a,b"});
  CHECK(amqp::split_urls("amqp://u:a, b@h1") == List{"amqp://u:a, b@h1"});
  // Any scheme starts an item: a wrong one is refused on its own, not glued on.
  CHECK(amqp::split_urls("amqp://h1,http://u:p@h2,x1+y.z-w://h3") ==
        List{"amqp://h1", "http://u:p@h2", "x1+y.z-w://h3"});
  CHECK(amqp::split_urls("amqp://u:p,1x://@h1") == List{"amqp://u:p,1x://@h1"});
  // Stray commas leave empty items, which validation refuses.
  CHECK(amqp::split_urls("amqp://h1,") == List{"amqp://h1", ""});
  CHECK(amqp::split_urls(",amqp://h1") == List{"", "amqp://h1"});
  CHECK(amqp::split_urls("amqp://h1,,amqp://h2") == List{"amqp://h1", "", "amqp://h2"});
  CHECK(amqp::split_urls("") == List{""});
}

TEST_CASE("amqp mask_url masks every address of a list", "[amqp]") {
  CHECK(amqp::mask_url("amqp://a:one@h1:5701/%2f,amqps://b:two@h2:5702/%2f,amqp://h3/%2f") ==
        "amqp://a:***@h1:5701/%2f,amqps://b:***@h2:5702/%2f,amqp://h3/%2f");
  CHECK(amqp::mask_url("amqp://a:one@h1, amqp://b:two@h2") == "amqp://a:***@h1,amqp://b:***@h2");
  for (const std::string list :
       {"amqp://u:topsecret@h1,amqp://u:topsecret@h2", "amqp://u:h@h1,amqp://u:top/secret@h2/v",
        "amqp://h1,amqp://u:top,secret@h2", "amqp://u:topsecret@h1,,amqp://h2,",
        "amqp://u:h@h1,http://u:topsecret@h2"}) {
    CAPTURE(list);
    CHECK(amqp::mask_url(list).find("secret") == std::string::npos);
  }
}

TEST_CASE("amqp validate_url takes a list and names the bad address", "[amqp]") {
  CHECK_NOTHROW(amqp::validate_url(
      "amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:guest@127.0.0.1:5702/%2f"));
  CHECK_NOTHROW(amqp::validate_url("amqps://u:p@a.example/%2f, amqps://u:p@b.example/%2f"));
  const auto message_of = [](const std::string& url) {
    try {
      amqp::validate_url(url);
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(message_of("amqp://h1/%2f,http://u:p@h2/%2f"),
             Catch::Contains("address 2 of 2") && Catch::Contains("must start with"));
  CHECK_THAT(message_of("amqp://h1/%2f,"), Catch::Contains("address 2 of 2") &&
                                               Catch::Contains("is empty"));
  CHECK_THAT(message_of("amqp://h1/%2f,,amqp://h2/%2f"), Catch::Contains("address 2 of 3"));
  CHECK_THAT(message_of("amqp://u:p@h1:0/%2f,amqp://h2/%2f"),
             Catch::Contains("address 1 of 2") && Catch::Contains("outside 1..65535"));
  CHECK_THAT(message_of("amqp://h1/%2f,amqp://u:p@h2:5672/"),
             Catch::Contains("address 2 of 2") && Catch::Contains("empty vhost"));
  const std::string leaked = message_of("amqp://u:secretpw@h1/%2f,amqp://u:secretpw@h2:0/%2f");
  CHECK_THAT(leaked, Catch::Contains("address 2 of 2"));
  CHECK(leaked.find("secretpw") == std::string::npos);
}
