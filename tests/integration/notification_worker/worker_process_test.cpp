// The real notification_worker binary under load, killed with SIGKILL or stopped with
// SIGTERM mid-way (issue 6): every notification ends delivered, nothing recorded as sent
// goes out again, and a graceful stop loses and duplicates nothing.
//
// The binary declares the contract's topology without a prefix, so each test gives it (and
// the in-process gateway) a RabbitMQ vhost of its own: the shared broker and the other
// tests never see these queues.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "integration/notification_worker/worker_fixture.hpp"
#include "notifs/messaging/common/request_id.hpp"

using namespace std::chrono_literals;
using notifs::test_support::SmtpSink;
using notifs::worker_test::received_per_notification;
using notifs::worker_test::WorkerFixture;

namespace amqp_test = notifs::amqp_test;

namespace {

constexpr int kNotifications = 240;
constexpr int kConcurrency = 24;  // WORKER_CONCURRENCY: the most that can be mid-send
constexpr auto kStopTimeout = 15s;

// A vhost of its own on the test broker, deleted (with everything in it) at scope exit.
class TestVhost {
 public:
  TestVhost() : name_("t-worker-" + notifs::messaging::common::generate_uuid_v4()) {
    amqp_test::rabbitmqctl({"add_vhost", name_});
    amqp_test::rabbitmqctl({"set_permissions", "-p", name_, "guest", ".*", ".*", ".*"});
    url_ = amqp_test::rabbitmq_url();
    const auto slash = url_.rfind('/');
    REQUIRE(slash != std::string::npos);
    url_ = url_.substr(0, slash + 1) + name_;
  }
  ~TestVhost() { amqp_test::run_rabbitmqctl({"delete_vhost", name_}); }
  TestVhost(const TestVhost&) = delete;
  TestVhost& operator=(const TestVhost&) = delete;

  const std::string& url() const { return url_; }

 private:
  std::string name_;
  std::string url_;
};

notifs::gateway_test::GatewayOptions gateway_in(const TestVhost& vhost) {
  notifs::gateway_test::GatewayOptions options;
  options.rabbitmq_url = vhost.url();
  options.topology.emplace();  // the binary's: the contract's, unprefixed
  return options;
}

// notification_worker as a child process with exactly the environment given, its output in
// a file. The destructor kills and reaps it, so a failed assertion leaves nothing running.
class WorkerProcess {
 public:
  WorkerProcess(const std::map<std::string, std::string>& environment, std::filesystem::path log)
      : log_(std::move(log)) {
    std::vector<std::string> env;
    for (const auto& [name, value] : environment) env.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (auto& entry : env) envp.push_back(entry.data());
    envp.push_back(nullptr);
    std::string path = NOTIFS_TEST_WORKER_BIN;
    std::string flag = "--channel";
    std::string channel = "email";
    char* argv[] = {path.data(), flag.data(), channel.data(), nullptr};
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    const auto log_path = log_.string();
    ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                       O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    const int spawned = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv, envp.data());
    ::posix_spawn_file_actions_destroy(&actions);
    if (spawned != 0) {
      pid_ = -1;
      FAIL("cannot spawn " << path << ": " << std::strerror(spawned));
    }
  }

  ~WorkerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  void signal(int number) { REQUIRE(::kill(pid_, number) == 0); }

  // The raw wait status once the child exits within `within`.
  std::optional<int> wait_exit(std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (pid_ > 0) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_status_ = status;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(10ms);
    }
    return exit_status_;
  }
  bool running() { return !wait_exit(0ms).has_value(); }

  // For failure messages: the first warnings and errors the process logged (the cause is
  // usually among them, not at the end) and the last lines it wrote.
  std::string log_tail(std::size_t bytes = 3000) const {
    std::ifstream file(log_, std::ios::binary);
    std::string line;
    std::string warnings;
    std::string text;
    int kept = 0;
    while (std::getline(file, line)) {
      if (kept < 20 && (line.find("[warning]") != std::string::npos ||
                        line.find("[error]") != std::string::npos)) {
        warnings += line + "\n";
        ++kept;
      }
      text += line + "\n";
    }
    return "first warnings and errors:\n" + warnings + "...\nlast lines:\n" +
           (text.size() > bytes ? text.substr(text.size() - bytes) : text);
  }

 private:
  std::filesystem::path log_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// Everything one process test needs around the binary.
class ProcessSetup {
 public:
  ProcessSetup() : fixture_(gateway_in(vhost_)), sink_({"-w", "1"}) {
    // Each SMTP transaction waits 1 s for the server's go-ahead after DATA, so sends stay
    // in flight long enough for a signal to find some mid-send. (A delay after the end of
    // the message instead would serialize the worker: libcurl waits for that reply
    // blocking the whole multi handle.)
    std::string pattern =
        (std::filesystem::temp_directory_path() / "notifs-worker-process-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    logs_ = pattern;
  }
  ~ProcessSetup() {
    std::error_code ignored;
    std::filesystem::remove_all(logs_, ignored);
  }

  WorkerFixture& fixture() { return fixture_; }
  const SmtpSink& sink() const { return sink_; }

  std::unique_ptr<WorkerProcess> start_worker(const std::string& label) {
    auto& gateway = fixture_.gateway();
    const std::map<std::string, std::string> environment = {
        {"PORT", std::to_string(notifs::test_support::free_loopback_port())},
        {"LOG_LEVEL", "info"},
        {"LOG_FORMAT", "text"},
        {"RABBITMQ_URL", vhost_.url()},
        {"DATABASE_URL", fixture_.ledger_schema("email").url()},
        {"TEMPLATE_SERVICE_URL", "http://127.0.0.1:" + std::to_string(gateway.templates().port())},
        {"SERVICE_TOKEN", notifs::gateway_test::kServiceToken},
        {"SMTP_URL", sink_.url()},
        {"SMTP_FROM", notifs::worker_test::kSmtpFrom},
        {"SMTP_MAX_CONNECTIONS", std::to_string(kConcurrency)},
        {"SMTP_TIMEOUT_MS", "10000"},
        {"WORKER_CONCURRENCY", std::to_string(kConcurrency)},
        {"WORKER_STOP_TIMEOUT_MS",
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(kStopTimeout).count())},
    };
    return std::make_unique<WorkerProcess>(environment, logs_ / (label + ".log"));
  }

  // POSTs the load for one user; returns the notification ids.
  std::vector<std::string> post_load() {
    auto& gateway = fixture_.gateway();
    user_ = gateway.create_user();
    std::vector<std::string> ids;
    for (int i = 0; i < kNotifications; ++i) {
      ids.push_back(gateway.accept_notification(user_));
    }
    return ids;
  }

  // The gateway's count of the user's notifications in `status`.
  int count_in_gateway(const std::string& status) {
    const auto response = fixture_.gateway().get("/api/v1/notifications?user_id=" + user_ +
                                                 "&status=" + status + "&limit=1");
    INFO(response.body);
    REQUIRE(response.status == 200);
    return response.json()["meta"]["total"].get<int>();
  }

  // Waits until every notification is delivered or failed in the gateway; FAILs with the
  // worker's log when it does not, or when the worker exits meanwhile.
  void wait_all_final(WorkerProcess& worker, std::chrono::milliseconds within) {
    int final_count = 0;
    const bool done = amqp_test::wait_until(
        [&] {
          if (!worker.running()) FAIL("the worker exited; its log:\n" << worker.log_tail());
          final_count = count_in_gateway("delivered") + count_in_gateway("failed");
          return final_count == kNotifications;
        },
        within, 250ms);
    if (!done) {
      FAIL("only " << final_count << " of " << kNotifications << " notifications final after "
                   << within.count() << " ms; the worker's log:\n" << worker.log_tail());
    }
  }

  // Waits until the sink holds at least `count` complete messages (FAILs like the above).
  void wait_received(WorkerProcess& worker, int count, std::chrono::milliseconds within) {
    int total = 0;
    const bool done = amqp_test::wait_until(
        [&] {
          if (!worker.running()) FAIL("the worker exited; its log:\n" << worker.log_tail());
          total = 0;
          for (const auto& [id, copies] : received_per_notification(sink_)) total += copies;
          return total >= count;
        },
        within, 100ms);
    if (!done) {
      FAIL("only " << total << " emails received after " << within.count()
                   << " ms; the worker's log:\n" << worker.log_tail());
    }
  }

  std::set<std::string> recorded() {
    const auto ids = fixture_.ledger_schema("email").query_column(
        "SELECT notification_id::text FROM sent_notifications");
    return {ids.begin(), ids.end()};
  }

 private:
  TestVhost vhost_;
  WorkerFixture fixture_;
  SmtpSink sink_;
  std::filesystem::path logs_;
  std::string user_;
};

}  // namespace

TEST_CASE("worker e2e process: after kill -9 under load every notification ends delivered and nothing recorded is sent again") {
  ProcessSetup setup;
  const auto ids = setup.post_load();

  auto first = setup.start_worker("first");
  setup.wait_received(*first, kNotifications / 4, 60s);
  first->signal(SIGKILL);
  const auto killed = first->wait_exit(10s);
  REQUIRE(killed);
  CHECK(WIFSIGNALED(*killed));

  // What was recorded and received when the process died: nothing runs that could change
  // the record now.
  const auto recorded_at_kill = setup.recorded();
  const auto received_at_kill = received_per_notification(setup.sink());
  INFO(recorded_at_kill.size() << " recorded and " << received_at_kill.size()
                               << " received when killed");
  REQUIRE(!recorded_at_kill.empty());
  REQUIRE(recorded_at_kill.size() < ids.size());  // killed mid-way

  auto second = setup.start_worker("second");
  setup.wait_all_final(*second, 90s);
  CHECK(setup.count_in_gateway("delivered") == kNotifications);

  const auto received = received_per_notification(setup.sink());
  int twice = 0;
  for (const auto& id : ids) {
    INFO(id);
    const auto copies = received.count(id) == 1 ? received.at(id) : 0;
    CHECK(copies >= 1);  // every notification reached the server
    CHECK(copies <= 2);
    if (recorded_at_kill.count(id) == 1) {
      // Recorded as sent: no copy arrived after the record.
      CHECK(received_at_kill.count(id) == 1);
      CHECK(copies == received_at_kill.at(id));
      CHECK(copies == 1);
    }
    twice += copies > 1 ? 1 : 0;
  }
  // Only what was mid-send when the process died can have gone out twice.
  CHECK(twice <= kConcurrency);
  CHECK(received.size() == ids.size());
  CHECK(setup.recorded().size() == ids.size());
  second->signal(SIGTERM);
  CHECK(second->wait_exit(kStopTimeout + 5s).has_value());
}

TEST_CASE("worker e2e process: SIGTERM under load drains in-flight sends and exits 0 with nothing lost or sent twice") {
  ProcessSetup setup;
  const auto ids = setup.post_load();

  auto first = setup.start_worker("first");
  setup.wait_received(*first, kNotifications / 4, 60s);
  const auto signalled = std::chrono::steady_clock::now();
  first->signal(SIGTERM);
  const auto stopped = first->wait_exit(kStopTimeout + 10s);
  REQUIRE(stopped);
  INFO("first worker's log:\n" << first->log_tail());
  const auto took = std::chrono::steady_clock::now() - signalled;
  INFO("killed by signal " << (WIFSIGNALED(*stopped) ? WTERMSIG(*stopped) : 0));
  CHECK(WIFEXITED(*stopped));
  CHECK(WEXITSTATUS(*stopped) == 0);
  CHECK(took < kStopTimeout);

  // The drain finished every send it had started and recorded it: what the server has is
  // exactly what the ledger says, once each.
  const auto recorded_at_stop = setup.recorded();
  const auto received_at_stop = received_per_notification(setup.sink());
  INFO(recorded_at_stop.size() << " recorded and " << received_at_stop.size()
                               << " received when stopped");
  REQUIRE(recorded_at_stop.size() < ids.size());  // stopped mid-way
  std::set<std::string> received_ids;
  for (const auto& [id, copies] : received_at_stop) {
    INFO(id);
    CHECK(copies == 1);
    received_ids.insert(id);
  }
  CHECK(received_ids == recorded_at_stop);

  auto second = setup.start_worker("second");
  setup.wait_all_final(*second, 90s);
  CHECK(setup.count_in_gateway("delivered") == kNotifications);
  const auto received = received_per_notification(setup.sink());
  CHECK(received.size() == ids.size());
  for (const auto& id : ids) {
    INFO(id);
    CHECK(received.count(id) == 1);
    if (received.count(id) == 1) CHECK(received.at(id) == 1);
  }
  second->signal(SIGTERM);
  const auto second_stopped = second->wait_exit(kStopTimeout + 5s);
  REQUIRE(second_stopped);
  INFO("second worker's log:\n" << second->log_tail());
  CHECK(WIFEXITED(*second_stopped));
  CHECK(WEXITSTATUS(*second_stopped) == 0);
}
