#include <chrono>
#include <set>
#include <string>

#include <catch2/catch.hpp>

#include "fakes/fake_random.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace common = notifs::messaging::common;
using notifs::fakes::FakeRandom;

TEST_CASE("generate_uuid_v4 sets version and variant bits whatever the random bits", "[common][uuid]") {
  FakeRandom zeros(0);
  CHECK(common::generate_uuid_v4(zeros) == "00000000-0000-4000-8000-000000000000");

  FakeRandom ones(FakeRandom::kMax);
  CHECK(common::generate_uuid_v4(ones) == "ffffffff-ffff-4fff-bfff-ffffffffffff");

  // Byte order: the first draw fills the first eight bytes, most significant first.
  FakeRandom scripted{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  CHECK(common::generate_uuid_v4(scripted) == "01234567-89ab-4def-bedc-ba9876543210");
}

TEST_CASE("generate_uuid_v4 without a Random yields distinct canonical v4 ids", "[common][uuid]") {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string id = common::generate_uuid_v4();
    REQUIRE(common::is_uuid(id));
    CHECK(id[14] == '4');
    CHECK(std::string("89ab").find(id[19]) != std::string::npos);
    CHECK(id.find_first_of("ABCDEF") == std::string::npos);
    seen.insert(id);
  }
  CHECK(seen.size() == 200);
}

TEST_CASE("generate_uuid_v7 puts Unix milliseconds first, then version 7 and random bits",
          "[common][uuid]") {
  // 2024-05-01T12:34:56.789Z = 1714566896789 ms = 0x018f_3426_9c95.
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(1714566896789));
  FakeRandom scripted{0xfedcba9876543210ULL, 0x0000000000001234ULL};
  // The first draw fills bytes 8-15, the second the 16 bits after the timestamp.
  CHECK(common::generate_uuid_v7(scripted, at) == "018f3426-9c95-7234-bedc-ba9876543210");
}

TEST_CASE("generate_uuid_v7 ids sort by the time they were made", "[common][uuid]") {
  FakeRandom scripted{0xffffffffffffffffULL, 0xffffffffffffffffULL, 0, 0};
  const auto t0 = std::chrono::system_clock::time_point(std::chrono::milliseconds(1714566896789));
  const auto earlier = common::generate_uuid_v7(scripted, t0);  // all random bits set
  const auto later = common::generate_uuid_v7(scripted, t0 + std::chrono::milliseconds(1));
  CHECK(earlier < later);
  for (int i = 0; i < 100; ++i) {
    const auto id = common::generate_uuid_v7();
    REQUIRE(common::is_uuid(id));
    CHECK(id[14] == '7');
    CHECK(std::string("89ab").find(id[19]) != std::string::npos);
  }
}

TEST_CASE("is_uuid accepts canonical UUIDs of any version and case", "[common][uuid]") {
  CHECK(common::is_uuid("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f"));
  CHECK(common::is_uuid("6F1C9A8E-2B7D-4C1A-9E3F-0A1B2C3D4E5F"));
  CHECK(common::is_uuid("00000000-0000-0000-0000-000000000000"));
  CHECK(common::is_uuid("6f1c9a8e-2b7d-1c1a-9e3f-0a1b2c3d4e5f"));  // version 1
}

TEST_CASE("is_uuid rejects near misses", "[common][uuid]") {
  CHECK_FALSE(common::is_uuid(""));
  CHECK_FALSE(common::is_uuid("6f1c9a8e2b7d4c1a9e3f0a1b2c3d4e5f"));        // no dashes
  CHECK_FALSE(common::is_uuid("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5"));      // one short
  CHECK_FALSE(common::is_uuid("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f0"));    // one long
  CHECK_FALSE(common::is_uuid("6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5g"));     // not hex
  CHECK_FALSE(common::is_uuid("6f1c9a8e-2b7d4-c1a-9e3f-0a1b2c3d4e5f"));     // dash moved
  CHECK_FALSE(common::is_uuid("{6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f}"));   // braces
  CHECK_FALSE(common::is_uuid(" 6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5"));
}

TEST_CASE("is_valid_request_id accepts 1 to 128 visible ASCII characters", "[common][request_id]") {
  CHECK(common::is_valid_request_id("a"));
  CHECK(common::is_valid_request_id("order-1234-welcome"));
  CHECK(common::is_valid_request_id("!~\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}"));
  CHECK(common::is_valid_request_id(std::string(128, 'x')));
}

TEST_CASE("is_valid_request_id rejects what could forge headers or log lines", "[common][request_id]") {
  CHECK_FALSE(common::is_valid_request_id(""));
  CHECK_FALSE(common::is_valid_request_id(std::string(129, 'x')));
  CHECK_FALSE(common::is_valid_request_id("abc def"));
  CHECK_FALSE(common::is_valid_request_id("abc\r\nX-Injected: 1"));
  CHECK_FALSE(common::is_valid_request_id("abc\n"));
  CHECK_FALSE(common::is_valid_request_id("tab\there"));
  CHECK_FALSE(common::is_valid_request_id(std::string("nul\0byte", 8)));
  CHECK_FALSE(common::is_valid_request_id("del\x7f"));
  CHECK_FALSE(common::is_valid_request_id("caf\xc3\xa9"));  // UTF-8 é
}
