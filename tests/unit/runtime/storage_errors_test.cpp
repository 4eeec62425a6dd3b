#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/messaging/http/router.hpp"
#include "notifs/runtime/storage_errors.hpp"
#include "notifs/storage/migrations.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace http = notifs::messaging::http;
namespace runtime = notifs::runtime;
namespace storage = notifs::storage;

namespace {

void check_503(const std::optional<http::Response>& response) {
  REQUIRE(response);
  CHECK(response->status == 503);
  CHECK(response->headers.get("Retry-After") == std::optional<std::string_view>("1"));
  const auto body = nlohmann::json::parse(response->body);
  CHECK(body["success"] == false);
  CHECK(body["data"].is_null());
  CHECK(body["error"]["code"] == "database_unavailable");
  CHECK_FALSE(body["message"].get<std::string>().empty());
}

}  // namespace

TEST_CASE("runtime: StorageUnavailable of every reason becomes 503 database_unavailable",
          "[runtime][storage_errors]") {
  using Reason = storage::StorageUnavailable::Reason;
  for (const auto reason :
       {Reason::pool_exhausted, Reason::connect_failed, Reason::connection_lost, Reason::timeout}) {
    const storage::StorageUnavailable error(reason, "connect to 10.0.0.1:5432 failed: password=x");
    const auto response = runtime::translate_storage_error(error);
    check_503(response);
    // The client gets a human sentence, not the driver's text.
    CHECK(response->body.find("10.0.0.1") == std::string::npos);
    CHECK(response->body.find("password") == std::string::npos);
  }
}

TEST_CASE("runtime: StorageInDoubt becomes 503 too", "[runtime][storage_errors]") {
  const storage::StorageInDoubt error("connection lost during COMMIT");
  const auto response = runtime::translate_storage_error(error);
  check_503(response);
  CHECK(response->body.find("COMMIT") == std::string::npos);
}

TEST_CASE("runtime: Other errors are left to the default table", "[runtime][storage_errors]") {
  CHECK_FALSE(runtime::translate_storage_error(std::runtime_error("boom")));
  CHECK_FALSE(runtime::translate_storage_error(storage::MigrationError("bad checksum")));
  CHECK_FALSE(runtime::translate_storage_error(
      http::HttpError(404, "user_not_found", "no such user")));
}

TEST_CASE("runtime: A router answers a handler's StorageUnavailable through the translator",
          "[runtime][storage_errors]") {
  http::Router router;
  router.add(http::Method::get, "/x", [](const http::Request&) -> http::Response {
    throw storage::StorageUnavailable(storage::StorageUnavailable::Reason::timeout,
                                      "statement timeout");
  });
  router.set_error_translator(runtime::translate_storage_error);

  class Sink final : public http::detail::ResponseSink {
   public:
    void deliver(http::Response response) override { answer = std::move(response); }
    std::optional<http::Response> answer;
  };
  auto sink = std::make_shared<Sink>();
  const auto match = router.match(http::Method::get, "/x");
  REQUIRE(match.kind == http::Router::MatchKind::found);
  match.route->handler(http::Request{}, http::Responder(sink));
  check_503(sink->answer);
}
