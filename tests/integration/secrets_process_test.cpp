// Secrets never reach a process's output (issue 8), checked on the real binaries with their
// own configuration reading and printing: a malformed configuration is refused with one
// line that echoes no secret, and a process that runs against a broker refusing its
// password, a database that is down and upstreams that are gone prints its effective
// configuration and its failures, and answers /ready, without one. Binaries are taken
// from the build tree this test binary belongs to; notification_worker is always built
// with the tests, the other services by a full build (a missing one is reported and
// skipped).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/amqp_test_support.hpp"
#include "integration/http_server_client.hpp"
#include "integration/notification_worker/smtp_sink.hpp"
#include "integration/pg_test_support.hpp"
#include "notifs/messaging/common/request_id.hpp"

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Environment = std::map<std::string, std::string>;

namespace {

std::string random_word() {
  auto id = notifs::messaging::common::generate_uuid_v4();
  id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
  return id.substr(0, 16);
}

// <build>/services/<name>/<name>, where <build>/tests holds this test binary.
std::optional<fs::path> service_binary(const std::string& name) {
  const auto self = fs::read_symlink("/proc/self/exe");
  const auto path = self.parent_path().parent_path() / "services" / name / name;
  if (!fs::exists(path)) return std::nullopt;
  return path;
}

// A child process with exactly `environment`, stdout and stderr into one file. The
// destructor kills and reaps it.
class Child {
 public:
  Child(const fs::path& binary, const std::vector<std::string>& args, const Environment& environment)
      : log_(fs::temp_directory_path() / ("notifs-secrets-" + random_word() + ".log")) {
    std::vector<std::string> env;
    for (const auto& [name, value] : environment) env.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (auto& entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::vector<std::string> argv_text{binary.string()};
    argv_text.insert(argv_text.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& arg : argv_text) argv.push_back(arg.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const int spawned =
        ::posix_spawn(&pid_, binary.c_str(), &actions, nullptr, argv.data(), envp.data());
    ::posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      pid_ = -1;
      FAIL("cannot spawn " << binary << ": " << std::strerror(spawned));
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ignored;
    fs::remove(log_, ignored);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // The exit code once it exits within `within` (-1: killed by a signal).
  std::optional<int> wait_exit(std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(20ms);
    }
    return exit_code_;
  }

  // SIGTERM, then up to `within` for a graceful exit, then SIGKILL.
  void stop(std::chrono::milliseconds within = 20s) {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    if (!wait_exit(within) && pid_ > 0) {
      ::kill(pid_, SIGKILL);
      wait_exit(5s);
    }
  }

  std::string output() const {
    std::ifstream file(log_, std::ios::binary);
    std::ostringstream text;
    text << file.rdbuf();
    return text.str();
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
};

struct Secret {
  std::string what;
  std::string value;
};

void check_absent(const std::vector<Secret>& secrets, const std::string& where,
                  const std::string& text) {
  for (const auto& secret : secrets) {
    const auto at = text.find(secret.value);
    if (at != std::string::npos) {
      const auto from = at < 300 ? 0 : at - 300;
      FAIL_CHECK("found " << secret.what << " in " << where << ": ..." << text.substr(from, 600));
    }
  }
}

std::string get_text(std::uint16_t port, const std::string& target) {
  std::optional<notifs::tests::RawResponse> response;
  try {
    response = notifs::tests::round_trip(port, notifs::tests::make_request("GET", target));
  } catch (const std::exception&) {
    return {};  // nothing listens (yet, or any more)
  }
  if (!response) return {};
  return std::to_string(response->status) + " " + response->body;
}

// The test broker's URL with another user and password.
std::string broker_url_as(const std::string& user, const std::string& password) {
  const auto url = notifs::amqp_test::rabbitmq_url();
  const auto replaced =
      std::regex_replace(url, std::regex("amqp://[^@]*@"), "amqp://" + user + ":" + password + "@");
  REQUIRE(replaced != url);
  return replaced;
}

std::string with_db_password(const std::string& url, const std::string& password) {
  const auto replaced =
      std::regex_replace(url, std::regex("^(postgres(ql)?://[^:@/]+)@"), "$1:" + password + "@");
  REQUIRE(replaced != url);
  return replaced;
}

std::string closed_url(const std::string& scheme) {
  return scheme + "://127.0.0.1:" + std::to_string(notifs::test_support::free_loopback_port());
}

struct Service {
  std::string name;
  std::vector<std::string> args;
};

const std::vector<Service>& services() {
  static const std::vector<Service> all{{"notification_worker", {"--channel", "email"}},
                                        {"notification_worker", {"--channel", "push"}},
                                        {"api_gateway", {}},
                                        {"user_service", {}},
                                        {"template_service", {}}};
  return all;
}

// Every variable any of the processes reads, secrets distinctive; each process ignores
// the ones it does not read.
struct Secrets {
  std::string broker = "amqpPw" + random_word();
  std::string database = "pgPw" + random_word();
  std::string smtp = "smtpPw" + random_word();
  std::string push = "pushToken" + random_word();
  std::string service = "serviceToken" + random_word();
  std::string api_key_1 = "apiKeyOne" + random_word();
  std::string api_key_2 = "apiKeyTwo" + random_word();

  std::vector<Secret> list() const {
    return {{"the broker password", broker},        {"the database password", database},
            {"the SMTP password", smtp},            {"the push provider token", push},
            {"the service token", service},         {"API key 1", api_key_1},
            {"API key 2", api_key_2}};
  }
};

Environment base_environment(const Secrets& secrets) {
  Environment env;
  env["PATH"] = "/usr/bin:/bin";
  env["LOG_LEVEL"] = "debug";
  env["SERVICE_TOKEN"] = secrets.service;
  env["GATEWAY_API_KEYS"] = secrets.api_key_1 + "," + secrets.api_key_2;
  env["SMTP_FROM"] = "Notifs <noreply@notifs.example>";
  env["SMTP_URL"] = "smtp://mailer:" + secrets.smtp + "@127.0.0.1:" +
                    std::to_string(notifs::test_support::free_loopback_port());
  env["PUSH_PROVIDER_URL"] = closed_url("http");
  env["PUSH_PROVIDER_TOKEN"] = secrets.push;
  env["USER_SERVICE_URL"] = closed_url("http");
  env["TEMPLATE_SERVICE_URL"] = closed_url("http");
  env["RABBITMQ_QUEUE_TYPE"] = "classic";
  env["WORKER_STOP_TIMEOUT_MS"] = "1000";
  return env;
}

}  // namespace

TEST_CASE("secrets: a malformed configuration is refused in one line that echoes no secret",
          "[secrets]") {
  const Secrets secrets;
  auto env = base_environment(secrets);
  env["PORT"] = "not-a-port";  // a problem every process reports
  // Passwords holding characters that end a URL's authority when unescaped, so a naive
  // parser takes part of them for the host or the path.
  env["RABBITMQ_URL"] = "amqp://app:" + secrets.broker + "/x?y#z@127.0.0.1:99999/%2f";
  env["DATABASE_URL"] = "postgresql://app:" + secrets.database + "/x@127.0.0.1:notaport/db";
  env["SMTP_URL"] = "ftp://mailer:" + secrets.smtp + "@127.0.0.1:25";
  env["PUSH_PROVIDER_URL"] = "ftp://" + secrets.push + "@127.0.0.1";
  // A key too short is named by position only.
  env["GATEWAY_API_KEYS"] = secrets.api_key_1 + ",x" + secrets.api_key_2.substr(0, 3);
  int ran = 0;
  for (const auto& service : services()) {
    const auto binary = service_binary(service.name);
    if (!binary) {
      WARN(service.name << " is not built in this tree: skipped");
      continue;
    }
    ++ran;
    Child child(*binary, service.args, env);
    const auto code = child.wait_exit(15s);
    const auto output = child.output();
    INFO(service.name << " said:\n" << output);
    CHECK(code == 2);
    CHECK_THAT(output, Catch::Contains("invalid configuration"));
    CHECK_THAT(output, Catch::Contains("PORT"));
    check_absent(secrets.list(), service.name + "'s output", output);
  }
  CHECK(ran >= 2);
}

TEST_CASE("secrets: processes refused by the broker, with a database down or upstreams gone, "
          "print no secret in logs or /ready",
          "[secrets]") {
  const Secrets secrets;
  // A real broker user, so the wrong password below is refused as a wrong password.
  const std::string broker_user = "secrets-" + random_word();
  notifs::amqp_test::rabbitmqctl({"add_user", broker_user, secrets.broker + "-right"});
  struct UserCleanup {
    std::string name;
    ~UserCleanup() { notifs::amqp_test::run_rabbitmqctl({"delete_user", name}); }
  } cleanup{broker_user};

  // Each process on a schema of its own (services' migrations would meet in a shared one);
  // a database that is down for two of them.
  struct Case {
    Service service;
    bool database_down = false;
  };
  const std::vector<Case> cases{{services()[0], false}, {services()[0], true},
                                {services()[1], false}, {services()[2], false},
                                {services()[2], true},  {services()[3], false},
                                {services()[4], false}};
  int ran = 0;
  for (const auto& [service, database_down] : cases) {
    {
      const auto binary = service_binary(service.name);
      if (!binary) {
        WARN(service.name << " is not built in this tree: skipped");
        continue;
      }
      ++ran;
      const notifs::pg_test::TestSchema schema;
      auto database = with_db_password(schema.url(), secrets.database);
      if (database_down) {
        const auto moved = std::regex_replace(
            database, std::regex("@127\\.0\\.0\\.1:[0-9]+/"),
            "@127.0.0.1:" + std::to_string(notifs::test_support::free_loopback_port()) + "/");
        REQUIRE(moved != database);
        database = moved;
      }
      auto env = base_environment(secrets);
      const auto port = notifs::test_support::free_loopback_port();
      env["PORT"] = std::to_string(port);
      env["RABBITMQ_URL"] = broker_url_as(broker_user, secrets.broker);
      env["DATABASE_URL"] = database;
      const std::string where = service.name + (service.args.empty() ? "" : " " + service.args[1]) +
                                (database_down ? " (database down)" : "");
      Child child(*binary, service.args, env);
      // A few reconnect attempts, each of which may log; /ready when it serves by then.
      std::string ready;
      const auto deadline = std::chrono::steady_clock::now() + 3s;
      while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(250ms);
        if (child.wait_exit(0ms)) break;
        if (const auto answer = get_text(port, "/ready"); !answer.empty()) ready = answer;
      }
      const auto health = get_text(port, "/health");
      const auto metrics = get_text(port, "/metrics");
      child.stop(5s);
      const auto output = child.output();
      INFO(where << " said:\n" << output.substr(0, 6000) << "\n/ready: " << ready);
      // The effective configuration was printed, masked (so the output is the real one).
      CHECK_THAT(output, Catch::Contains("DATABASE_URL="));
      check_absent(secrets.list(), where + "'s output", output);
      check_absent(secrets.list(), where + "'s /ready", ready);
      check_absent(secrets.list(), where + "'s /health", health);
      check_absent(secrets.list(), where + "'s /metrics", metrics);
    }
  }
  CHECK(ran >= 3);
}
