#include <catch2/catch.hpp>

#include <cstdint>
#include <string>

#include "notifs/messaging/amqp/message.hpp"

namespace amqp = notifs::messaging::amqp;

TEST_CASE("amqp MessageHeaders set replaces and keeps insertion order", "[amqp]") {
  amqp::MessageHeaders headers;
  CHECK(headers.empty());
  headers.set("a", std::string("one"));
  headers.set("b", std::int64_t{2});
  headers.set("a", true);
  REQUIRE(headers.size() == 2);
  auto it = headers.begin();
  CHECK(it->first == "a");
  CHECK(std::get<bool>(it->second));
  ++it;
  CHECK(it->first == "b");
  CHECK(headers.find("c") == nullptr);
}

TEST_CASE("amqp MessageHeaders typed getters", "[amqp]") {
  amqp::MessageHeaders headers;
  headers.set("text", std::string("hello"));
  headers.set("digits", std::string("42"));
  headers.set("negative", std::string("-7"));
  headers.set("junk", std::string("4x"));
  headers.set("empty", std::string());
  headers.set("number", std::int64_t{-3});
  headers.set("flag", false);

  CHECK(headers.get_string("text") == "hello");
  CHECK(headers.get_string("number") == "-3");
  CHECK(headers.get_string("flag") == "false");
  CHECK_FALSE(headers.get_string("missing"));

  CHECK(headers.get_int("number") == -3);
  CHECK(headers.get_int("digits") == 42);
  CHECK(headers.get_int("negative") == -7);
  CHECK_FALSE(headers.get_int("junk"));
  CHECK_FALSE(headers.get_int("empty"));
  CHECK_FALSE(headers.get_int("text"));
  CHECK_FALSE(headers.get_int("flag"));
  CHECK_FALSE(headers.get_int("missing"));
  CHECK_FALSE(headers.get_int("99999999999999999999"));
}

TEST_CASE("amqp Delivery attempt reads x-attempt, 1 when absent or malformed", "[amqp]") {
  amqp::Delivery delivery;
  CHECK(delivery.attempt() == 1);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{3});
  CHECK(delivery.attempt() == 3);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::string("5"));
  CHECK(delivery.attempt() == 5);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{0});
  CHECK(delivery.attempt() == 1);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{-4});
  CHECK(delivery.attempt() == 1);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{5'000'000'000});
  CHECK(delivery.attempt() == 1);
  delivery.headers.set(std::string(amqp::kAttemptHeader), std::string("three"));
  CHECK(delivery.attempt() == 1);
  delivery.headers.set(std::string(amqp::kAttemptHeader), true);
  CHECK(delivery.attempt() == 1);
}
