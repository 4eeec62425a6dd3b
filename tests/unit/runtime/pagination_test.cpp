#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/pagination.hpp"

namespace http = notifs::messaging::http;
namespace runtime = notifs::runtime;

namespace {

http::Request with_query(std::vector<std::pair<std::string, std::string>> query) {
  http::Request request;
  request.path = "/api/v1/users";
  request.query = std::move(query);
  return request;
}

// The fields named by the 400, or a failure when it did not throw one.
std::vector<std::string> refused_fields(const http::Request& request) {
  try {
    runtime::parse_page_request(request);
  } catch (const http::HttpError& error) {
    CHECK(error.status() == 400);
    CHECK(error.code() == "validation_failed");
    std::vector<std::string> fields;
    for (const auto& detail : error.details()) {
      fields.push_back(detail.field);
    }
    return fields;
  }
  FAIL("parse_page_request accepted the request");
  return {};
}

}  // namespace

TEST_CASE("runtime: Pagination defaults to page 1 of 20", "[runtime][pagination]") {
  const auto page = runtime::parse_page_request(with_query({}));
  CHECK(page.page == 1);
  CHECK(page.limit == 20);
  CHECK(page.offset() == 0);
}

TEST_CASE("runtime: Pagination reads page and limit and computes the offset",
          "[runtime][pagination]") {
  const auto page = runtime::parse_page_request(with_query({{"page", "3"}, {"limit", "25"}}));
  CHECK(page.page == 3);
  CHECK(page.limit == 25);
  CHECK(page.offset() == 50);

  const auto edges = runtime::parse_page_request(
      with_query({{"page", std::to_string(runtime::kMaxPage)}, {"limit", "1"}}));
  CHECK(edges.page == runtime::kMaxPage);
  CHECK(edges.limit == 1);
  CHECK(edges.offset() == runtime::kMaxPage - 1);
  // Leading zeros are still decimal digits.
  CHECK(runtime::parse_page_request(with_query({{"page", "007"}})).page == 7);
}

TEST_CASE("runtime: A limit above 100 is lowered, not refused", "[runtime][pagination]") {
  CHECK(runtime::parse_page_request(with_query({{"limit", "100"}})).limit == 100);
  CHECK(runtime::parse_page_request(with_query({{"limit", "101"}})).limit == 100);
  CHECK(runtime::parse_page_request(with_query({{"limit", "1000"}})).limit == 100);
  CHECK(runtime::parse_page_request(with_query({{"limit", "9223372036854775807"}})).limit == 100);
  // The largest page with the largest limit stays far from int64 overflow.
  const auto far = runtime::parse_page_request(
      with_query({{"page", std::to_string(runtime::kMaxPage)}, {"limit", "1000"}}));
  CHECK(far.offset() == (runtime::kMaxPage - 1) * 100);
}

TEST_CASE("runtime: Malformed page and limit values are a 400 naming the field",
          "[runtime][pagination]") {
  using Fields = std::vector<std::string>;
  for (const std::string bad : {"0", "-1", "+1", " 1", "1 ", "1e3", "1.0", "0x10", "", "abc",
                                "1000001", "9223372036854775808",
                                "99999999999999999999999999"}) {
    CAPTURE(bad);
    CHECK(refused_fields(with_query({{"page", bad}})) == Fields{"page"});
  }
  for (const std::string bad : {"0", "-5", "+10", "ten", "", "10abc", "9223372036854775808"}) {
    CAPTURE(bad);
    CHECK(refused_fields(with_query({{"limit", bad}})) == Fields{"limit"});
  }
  CHECK(refused_fields(with_query({{"page", "0"}, {"limit", "x"}})) == Fields{"page", "limit"});
}

TEST_CASE("runtime: Other query parameters are ignored", "[runtime][pagination]") {
  const auto page = runtime::parse_page_request(
      with_query({{"channel", "email"}, {"pages", "x"}, {"page", "2"}}));
  CHECK(page.page == 2);
  CHECK(page.limit == 20);
}
