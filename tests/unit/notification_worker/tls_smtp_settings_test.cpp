// The worker's SMTP TLS settings from the environment: SMTP_REQUIRE_TLS, SMTP_VERIFY_TLS and
// SMTP_CA_FILE reach every provider of SMTP_URL; a CA file that cannot be read refuses the
// start; the SMTP passwords never reach the printed configuration or a problem.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include <catch2/catch.hpp>

#include "notifs/runtime/config_reader.hpp"
#include "worker_settings.hpp"

namespace runtime = notifs::runtime;

namespace {

std::map<std::string, std::string> email_environment() {
  return {{"CHANNEL", "email"},
          {"DATABASE_URL", "postgresql://worker@127.0.0.1:5432/notifs"},
          {"RABBITMQ_URL", "amqp://worker:amqpsecret@127.0.0.1:5672/%2f"},
          {"TEMPLATE_SERVICE_URL", "http://127.0.0.1:4002"},
          {"SMTP_FROM", "Notifs <noreply@notifs.example>"},
          {"SMTP_URL", "smtps://mailer:Smtp1Secret@mx1.example:465,"
                       "smtp://mailer:Smtp2Secret@mx2.example:587"}};
}

struct Read {
  notifs::worker::WorkerSettings settings;
  std::string problems;
  std::string printed;
};

Read read(const std::map<std::string, std::string>& env) {
  const auto lookup = [&](std::string_view name) -> std::optional<std::string> {
    const auto found = env.find(std::string(name));
    if (found == env.end()) return std::nullopt;
    return found->second;
  };
  const char* argv[] = {"notification_worker"};
  runtime::ConfigReader config(1, argv, lookup);
  Read result;
  result.settings = notifs::worker::read_worker_settings(config);
  try {
    config.finish();
  } catch (const runtime::ConfigError& error) {
    result.problems = error.what();
  }
  result.printed = config.effective_line();
  return result;
}

// A readable file for the length of a test.
class TempFile {
 public:
  TempFile() {
    std::string pattern = (std::filesystem::temp_directory_path() / "notifs-ca.XXXXXX").string();
    const int fd = ::mkstemp(pattern.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    path_ = pattern;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

TEST_CASE("tls smtp settings: defaults verify with the system CAs and allow clear text",
          "[worker][tls][settings]") {
  const auto result = read(email_environment());
  REQUIRE(result.problems.empty());
  REQUIRE(result.settings.email.providers.size() == 2);
  for (const auto& provider : result.settings.email.providers) {
    CHECK(provider.verify_tls);
    CHECK_FALSE(provider.require_tls);
    CHECK(provider.ca_file.empty());
  }
}

TEST_CASE("tls smtp settings: SMTP_REQUIRE_TLS, SMTP_VERIFY_TLS and SMTP_CA_FILE reach every "
          "provider",
          "[worker][tls][settings]") {
  const TempFile ca;
  auto env = email_environment();
  env["SMTP_REQUIRE_TLS"] = "true";
  env["SMTP_VERIFY_TLS"] = "false";
  env["SMTP_CA_FILE"] = ca.path();
  const auto result = read(env);
  REQUIRE(result.problems.empty());
  REQUIRE(result.settings.email.providers.size() == 2);
  for (const auto& provider : result.settings.email.providers) {
    CHECK(provider.require_tls);
    CHECK_FALSE(provider.verify_tls);
    CHECK(provider.ca_file == ca.path());
  }
  CHECK_THAT(result.printed, Catch::Contains("SMTP_CA_FILE=" + ca.path()));
}

TEST_CASE("tls smtp settings: an unreadable SMTP_CA_FILE refuses the start",
          "[worker][tls][settings]") {
  auto env = email_environment();
  env["SMTP_CA_FILE"] = "/nonexistent/notifs/ca.pem";
  const auto result = read(env);
  CHECK_THAT(result.problems, Catch::Contains("SMTP_CA_FILE"));
}

TEST_CASE("tls smtp settings: SMTP passwords are never printed, also in a problem",
          "[worker][tls][settings][secrets]") {
  auto env = email_environment();
  const auto good = read(env);
  CHECK(good.problems.empty());
  env["SMTP_URL"] = "smtp://mailer:Smtp1Secret@mx1.example:25,ftp://mailer:Smtp2Secret@mx2";
  const auto bad = read(env);
  CHECK_THAT(bad.problems, Catch::Contains("SMTP_URL"));
  for (const auto* text : {&good.printed, &good.problems, &bad.printed, &bad.problems}) {
    CHECK(text->find("Smtp1Secret") == std::string::npos);
    CHECK(text->find("Smtp2Secret") == std::string::npos);
    CHECK(text->find("amqpsecret") == std::string::npos);
  }
}
