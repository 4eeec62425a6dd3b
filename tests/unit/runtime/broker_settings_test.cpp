#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <catch2/catch.hpp>

#include "notifs/runtime/broker_settings.hpp"

namespace runtime = notifs::runtime;
using Catch::Matchers::Contains;

namespace {

struct Reader {
  explicit Reader(std::map<std::string, std::string> env)
      : config(1, argv, [env = std::move(env)](std::string_view name) -> std::optional<std::string> {
          const auto found = env.find(std::string(name));
          if (found == env.end()) return std::nullopt;
          return found->second;
        }) {}
  const char* argv[1] = {"service"};
  runtime::ConfigReader config;
};

std::string problems_of(const runtime::ConfigReader& config) {
  std::string all;
  for (const auto& problem : config.problems()) all += problem + "; ";
  return all;
}

}  // namespace

TEST_CASE("broker settings: one URL, TLS verification on by default") {
  Reader reader(std::map<std::string, std::string>{
      {"RABBITMQ_URL", "amqps://app:s3cret@rabbit.internal:5671/%2f"}});
  const auto settings = runtime::read_broker_settings(reader.config, "api_gateway");
  CHECK(reader.config.problems().empty());
  CHECK(settings.url == "amqps://app:s3cret@rabbit.internal:5671/%2f");
  CHECK(settings.connection_name == "api_gateway");
  CHECK(settings.tls_verify_peer);
  CHECK(settings.tls_verify_hostname);
  CHECK(settings.tls_ca_file.empty());
  CHECK_THAT(reader.config.effective_line(), !Contains("s3cret"));
}

TEST_CASE("broker settings: a cluster's nodes as a list, a CA file, verification off") {
  const auto ca = std::filesystem::temp_directory_path() / "notifs-broker-settings-ca.pem";
  std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n";
  Reader reader({{"RABBITMQ_URL", "amqp://a:pw@n1:5672/%2f, amqp://a:pw@n2:5672/%2f"},
                 {"RABBITMQ_CA_FILE", ca.string()},
                 {"RABBITMQ_TLS_VERIFY", "false"}});
  const auto settings = runtime::read_broker_settings(reader.config, "worker");
  std::filesystem::remove(ca);
  CHECK(reader.config.problems().empty());
  CHECK(settings.url == "amqp://a:pw@n1:5672/%2f,amqp://a:pw@n2:5672/%2f");
  CHECK(settings.tls_ca_file == ca.string());
  CHECK_FALSE(settings.tls_verify_peer);
  CHECK_FALSE(settings.tls_verify_hostname);
}

TEST_CASE("broker settings: missing URL, bad address and unreadable CA file are problems") {
  Reader missing(std::map<std::string, std::string>{});
  runtime::read_broker_settings(missing.config, "x");
  CHECK_THAT(problems_of(missing.config), Contains("RABBITMQ_URL: is required"));

  Reader bad({{"RABBITMQ_URL", "amqp://a:topsecret@n1/%2f,http://n2"},
              {"RABBITMQ_CA_FILE", "/nonexistent/ca.pem"},
              {"UPSTREAM_CA_FILE", "/nonexistent/upstream.pem"}});
  runtime::read_broker_settings(bad.config, "x");
  CHECK(runtime::read_ca_file(bad.config, "UPSTREAM_CA_FILE") == "/nonexistent/upstream.pem");
  const auto problems = problems_of(bad.config);
  CHECK_THAT(problems, Contains("RABBITMQ_URL"));
  CHECK_THAT(problems, Contains("RABBITMQ_CA_FILE: cannot be read"));
  CHECK_THAT(problems, Contains("UPSTREAM_CA_FILE: cannot be read"));
  CHECK_THAT(problems, !Contains("topsecret"));
}
