#include "notifs/messaging/http/percent_encoding.hpp"

#include <catch2/catch.hpp>

using notifs::messaging::http::percent_encode;

TEST_CASE("percent_encode keeps unreserved characters and escapes every other byte",
          "[http][uri]") {
  CHECK(percent_encode("abc-DEF_1.2~") == "abc-DEF_1.2~");
  CHECK(percent_encode("a/b?c=d e") == "a%2Fb%3Fc%3Dd%20e");
  CHECK(percent_encode("\xC3\xA9") == "%C3%A9");
  CHECK(percent_encode("").empty());
  // An FCM token as user_service must receive it: one path segment.
  CHECK(percent_encode("fcm:APA91b/x+y%z") == "fcm%3AAPA91b%2Fx%2By%25z");
}
