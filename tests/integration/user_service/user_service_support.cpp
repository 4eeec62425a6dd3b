#include "integration/user_service/user_service_support.hpp"

#include <algorithm>
#include <chrono>
#include <memory>
#include <regex>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>

namespace notifs::user_service_test {

namespace {

runtime::DatabaseServiceSettings settings_for(const pg_test::TestSchema& schema,
                                              const std::string& service_token) {
  runtime::DatabaseServiceSettings settings;
  settings.server.service_name = "user_service_test";
  settings.server.address = "127.0.0.1";
  settings.server.port = 0;
  settings.server.io_threads = 2;
  settings.server.blocking_threads = 4;
  settings.server.shutdown_grace = std::chrono::seconds(5);
  settings.database.url = schema.url();
  settings.database.name = "postgres";
  settings.database.size = 4;
  settings.database.application_name = "user_service_test";
  settings.service_token = service_token;
  settings.startup_timeout = std::chrono::seconds(20);
  return settings;
}

}  // namespace

UserServiceFixture::UserServiceFixture(std::string service_token)
    : service_token_(std::move(service_token)),
      app_(settings_for(schema_, service_token_), std::make_shared<prometheus::Registry>()) {
  app_.start();
}

UserServiceFixture::~UserServiceFixture() { app_.stop(); }

tests::RawResponse UserServiceFixture::request(std::string_view method, std::string_view target,
                                               std::string_view body, Headers headers,
                                               bool authorize) {
  if (!body.empty()) {
    bool typed = false;
    for (const auto& [name, value] : headers) {
      typed = typed || name == "Content-Type";
    }
    if (!typed) {
      headers.emplace_back("Content-Type", "application/json");
    }
  }
  if (authorize && !service_token_.empty()) {
    headers.emplace_back("Authorization", "Bearer " + service_token_);
  }
  return send_raw(tests::make_request(method, target, std::move(headers), body));
}

tests::RawResponse UserServiceFixture::send_raw(const std::string& bytes) {
  auto response = tests::round_trip(port(), bytes);
  REQUIRE(response.has_value());
  return std::move(*response);
}

nlohmann::json UserServiceFixture::create_user(const std::string& name, const std::string& email,
                                               nlohmann::json extra) {
  extra["name"] = name;
  extra["email"] = email;
  const auto response = post("/api/v1/users", extra);
  INFO(response.body);
  REQUIRE(response.status == 201);
  return response.json()["data"];
}

std::vector<std::string> problem_fields(const nlohmann::json& envelope) {
  std::vector<std::string> fields;
  for (const auto& detail : envelope.at("error").at("details")) {
    fields.push_back(detail.at("field").get<std::string>());
  }
  return fields;
}

bool names_field(const nlohmann::json& envelope, const std::string& field) {
  const auto fields = problem_fields(envelope);
  return std::find(fields.begin(), fields.end(), field) != fields.end();
}

bool is_millisecond_timestamp(const std::string& text) {
  static const std::regex pattern(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  return std::regex_match(text, pattern);
}

bool is_lowercase_uuid(const std::string& text) {
  static const std::regex pattern(
      R"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})");
  return std::regex_match(text, pattern);
}

}  // namespace notifs::user_service_test
