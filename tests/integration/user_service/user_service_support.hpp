#pragma once

// user_service in-process on a loopback port of its own, against a schema of its own in
// the PostgreSQL cluster scripts/test started; requests go over real sockets.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"
#include "user_service_app.hpp"

namespace notifs::user_service_test {

using Headers = std::vector<std::pair<std::string, std::string>>;

class UserServiceFixture {
 public:
  // A non-empty token turns on SERVICE_TOKEN auth; request() then presents it unless
  // told otherwise.
  explicit UserServiceFixture(std::string service_token = {});
  ~UserServiceFixture();

  std::uint16_t port() const { return app_.port(); }
  // Stops serving (an upstream outage for the gateway's tests); the port stays closed.
  void stop() { app_.stop(); }
  const pg_test::TestSchema& schema() const { return schema_; }

  // One request on a new connection; a JSON body gets Content-Type: application/json.
  // REQUIREs an answer.
  tests::RawResponse request(std::string_view method, std::string_view target,
                             std::string_view body = {}, Headers headers = {},
                             bool authorize = true);
  tests::RawResponse get(std::string_view target) { return request("GET", target); }
  tests::RawResponse post(std::string_view target, const nlohmann::json& body) {
    return request("POST", target, body.dump());
  }
  tests::RawResponse patch(std::string_view target, const nlohmann::json& body) {
    return request("PATCH", target, body.dump());
  }
  tests::RawResponse put(std::string_view target, const nlohmann::json& body) {
    return request("PUT", target, body.dump());
  }
  tests::RawResponse del(std::string_view target) { return request("DELETE", target); }
  // Sends exactly these bytes; REQUIREs an answer.
  tests::RawResponse send_raw(const std::string& bytes);

  // POSTs a user and REQUIREs 201; returns its data.
  nlohmann::json create_user(const std::string& name, const std::string& email,
                             nlohmann::json extra = nlohmann::json::object());

 private:
  std::string service_token_;
  pg_test::TestSchema schema_;
  user_service::UserServiceApp app_;
};

// The `field` of each of error.details, in order.
std::vector<std::string> problem_fields(const nlohmann::json& envelope);
// Whether an error envelope names `field` among its details.
bool names_field(const nlohmann::json& envelope, const std::string& field);
// RFC 3339 UTC with exactly three fractional digits: 2026-11-29T19:20:00.123Z.
bool is_millisecond_timestamp(const std::string& text);
bool is_lowercase_uuid(const std::string& text);

}  // namespace notifs::user_service_test
