#include <string>

#include <catch2/catch.hpp>

#include "fakes/fake_random.hpp"
#include "notifs/messaging/common/trace_context.hpp"

namespace common = notifs::messaging::common;
using common::TraceContext;
using notifs::fakes::FakeRandom;

namespace {
constexpr const char* kExample = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
}

TEST_CASE("traceparent: a valid version-00 header parses into its fields", "[common][trace]") {
  auto context = TraceContext::parse(kExample);
  REQUIRE(context.has_value());
  CHECK(context->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  CHECK(context->parent_id == "00f067aa0ba902b7");
  CHECK(context->flags == 1);
  CHECK(context->header() == kExample);

  auto unsampled = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(unsampled.has_value());
  CHECK(unsampled->flags == 0);

  auto all_flags = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff");
  REQUIRE(all_flags.has_value());
  CHECK(all_flags->flags == 0xff);
  CHECK(all_flags->header().substr(53) == "ff");
}

TEST_CASE("traceparent: malformed headers are rejected", "[common][trace]") {
  const char* bad[] = {
      "",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",      // short
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011",    // long for v00
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",   // v00 takes no suffix
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",     // zero trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",     // zero parent id
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",     // upper-case trace id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",     // upper-case parent id
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",     // upper-case flags
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // forbidden version
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // non-hex version
      "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",     // wrong separator
      "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",     // dash moved
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",     // non-hex parent
      " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",    // leading space
  };
  for (const char* header : bad) {
    INFO("header: '" << header << "'");
    CHECK_FALSE(TraceContext::parse(header).has_value());
  }
}

TEST_CASE("traceparent: a higher version is read by its version-00 prefix", "[common][trace]") {
  auto plain = TraceContext::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  REQUIRE(plain.has_value());
  auto extended =
      TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future");
  REQUIRE(extended.has_value());
  CHECK(extended->trace_id == "4bf92f3577b34da6a3ce929d0e0e4736");
  // What we send on is version 00, the only one we speak.
  CHECK(extended->header() == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  // Future fields must follow a dash.
  CHECK_FALSE(TraceContext::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x").has_value());
}

TEST_CASE("traceparent: start makes a sampled trace from the random source", "[common][trace]") {
  FakeRandom random{0x4bf92f3577b34da6ULL, 0xa3ce929d0e0e4736ULL, 0x00f067aa0ba902b7ULL};
  TraceContext context = TraceContext::start(random);
  CHECK(context.header() == kExample);
  CHECK(TraceContext::parse(context.header()).has_value());
}

TEST_CASE("traceparent: an all-zero draw is redrawn, never sent", "[common][trace]") {
  FakeRandom random{0, 0, 0x1, 0x2, 0, 0x3};
  TraceContext context = TraceContext::start(random);
  CHECK(context.trace_id == "00000000000000010000000000000002");
  CHECK(context.parent_id == "0000000000000003");
}

TEST_CASE("traceparent: child keeps the trace and flags and changes the span", "[common][trace]") {
  auto parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  REQUIRE(parent.has_value());
  FakeRandom random(0x1122334455667788ULL);
  TraceContext child = parent->child(random);
  CHECK(child.trace_id == parent->trace_id);
  CHECK(child.flags == 0);
  CHECK(child.parent_id == "1122334455667788");
  CHECK(child.header() == "00-4bf92f3577b34da6a3ce929d0e0e4736-1122334455667788-00");
}
