#pragma once

// template_service in-process on loopback (port 0) against the PostgreSQL scripts/test
// started, each fixture with a schema of its own; requests go through RawClient.
#include <prometheus/registry.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "integration/http_server_client.hpp"
#include "integration/pg_test_support.hpp"
#include "template_service_app.hpp"

namespace notifs::template_service_test {

using nlohmann::json;

struct FixtureOptions {
  template_service::TemplateCacheSettings cache{};
  std::string service_token;
};

class TemplateServiceFixture {
 public:
  explicit TemplateServiceFixture(FixtureOptions options = {}) { start_app(options); }

  // A second replica on the same schema (another fixture's).
  TemplateServiceFixture(const TemplateServiceFixture& other_replica, FixtureOptions options)
      : shared_url_(other_replica.url()) {
    start_app(options);
  }

  ~TemplateServiceFixture() {
    if (app_) {
      app_->stop();
    }
  }

  const std::string& url() const { return shared_url_.empty() ? schema_->url() : shared_url_; }
  pg_test::TestSchema& schema() { return *schema_; }
  std::uint16_t port() const { return app_->port(); }
  // Stops serving (an upstream outage for the gateway's tests).
  void stop() { app_->stop(); }

  tests::RawResponse request(std::string_view method, const std::string& target,
                             const std::string& body = {},
                             std::vector<std::pair<std::string, std::string>> headers = {}) const {
    if (!body.empty()) {
      headers.emplace_back("Content-Type", "application/json");
    }
    if (!token_.empty()) {
      headers.emplace_back("Authorization", "Bearer " + token_);
    }
    auto response = tests::round_trip(port(), tests::make_request(method, target, headers, body));
    REQUIRE(response);
    return std::move(*response);
  }

  tests::RawResponse get(const std::string& target) const { return request("GET", target); }
  tests::RawResponse post(const std::string& target, const json& body) const {
    return request("POST", target, body.dump());
  }
  tests::RawResponse put(const std::string& target, const json& body) const {
    return request("PUT", target, body.dump());
  }

  // POSTs a template and returns its data; REQUIREs a 201.
  json create(const json& body) const {
    const auto response = post("/api/v1/templates", body);
    INFO(response.body);
    REQUIRE(response.status == 201);
    return response.json()["data"];
  }
  json add_version(const std::string& code, const json& body) const {
    const auto response = put("/api/v1/templates/" + code, body);
    INFO(response.body);
    REQUIRE(response.status == 201);
    return response.json()["data"];
  }
  tests::RawResponse render(const std::string& code, const json& body) const {
    return post("/api/v1/templates/" + code + "/render", body);
  }

  void set_token(std::string token) { token_ = std::move(token); }

 private:
  void start_app(const FixtureOptions& options) {
    if (shared_url_.empty()) {
      schema_ = std::make_unique<pg_test::TestSchema>();
    }
    runtime::DatabaseServiceSettings settings;
    settings.server.service_name = "template_service_test";
    settings.server.address = "127.0.0.1";
    settings.server.port = 0;
    settings.server.io_threads = 2;
    settings.server.blocking_threads = 8;
    settings.server.shutdown_grace = std::chrono::seconds(5);
    settings.database.url = url();
    settings.database.name = "templates";
    settings.database.size = 8;
    settings.service_token = options.service_token;
    settings.startup_timeout = std::chrono::seconds(30);
    token_ = options.service_token;
    app_ = std::make_unique<template_service::TemplateServiceApp>(
        settings, std::make_shared<prometheus::Registry>(), options.cache);
    app_->start();
  }

  std::unique_ptr<pg_test::TestSchema> schema_;
  std::string shared_url_;
  std::unique_ptr<template_service::TemplateServiceApp> app_;
  std::string token_;
};

inline json email_template(const std::string& code, const std::string& locale = "en") {
  return {{"code", code},
          {"channel", "email"},
          {"locale", locale},
          {"subject", "Welcome {{name}}"},
          {"body", "Hello {{name}}, start at {{link}}"},
          {"html_body", "<p>Hello {{name}}, <a href=\"{{{link}}}\">start</a></p>"}};
}

inline json push_template(const std::string& code, const std::string& locale = "en") {
  return {{"code", code},
          {"channel", "push"},
          {"locale", locale},
          {"title", "Hi {{name}}"},
          {"body", "You have {{count}} new messages"}};
}

inline bool is_millisecond_timestamp(const json& value) {
  static const std::regex pattern(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  return value.is_string() && std::regex_match(value.get<std::string>(), pattern);
}

// The fields named by an error answer's details, in order.
inline std::vector<std::string> problem_fields(const json& body) {
  std::vector<std::string> fields;
  for (const auto& detail : body["error"]["details"]) {
    fields.push_back(detail["field"].get<std::string>());
  }
  return fields;
}

inline std::string error_code(const tests::RawResponse& response) {
  return response.json()["error"]["code"].get<std::string>();
}

}  // namespace notifs::template_service_test
