// Graceful shutdown of a real server process (tests/fakes/bin/test_http_server): what a
// container runtime sees when it sends SIGTERM during a rolling update.
#include "integration/http_server_client.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

extern char** environ;

using namespace std::chrono_literals;
using notifs::tests::make_request;
using notifs::tests::RawClient;

namespace {

// The child server with its stdout on a pipe. The destructor kills and reaps it, so a
// failed assertion never leaves a server running.
class ChildServer {
 public:
  ChildServer() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::string path = NOTIFS_TEST_HTTP_SERVER_BIN;
    std::string port = "0";
    char* argv[] = {path.data(), port.data(), nullptr};
    const int spawned = ::posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv, environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (spawned != 0) {
      pid_ = -1;
      FAIL("cannot spawn " << path << ": " << std::strerror(spawned));
    }
  }

  ~ChildServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (drain_.joinable()) {
      drain_.join();  // the pipe reached EOF with the child's exit
    }
    if (out_ >= 0) {
      ::close(out_);
    }
  }

  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  // Reads stdout until "listening PORT"; then keeps draining it so that the child's log
  // lines never fill the pipe and block it.
  std::optional<std::uint16_t> wait_for_port(std::chrono::milliseconds within) {
    std::string seen;
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd pfd{out_, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) {
        continue;
      }
      char chunk[4096];
      const auto got = ::read(out_, chunk, sizeof chunk);
      if (got <= 0) {
        return std::nullopt;  // the child died before listening
      }
      seen.append(chunk, static_cast<std::size_t>(got));
      // Log lines share stdout; the announcement is a line of its own.
      auto at = seen.rfind("\nlistening ");
      at = seen.rfind("listening ", 0) == 0 ? 0 : (at == std::string::npos ? at : at + 1);
      const auto end = at == std::string::npos ? at : seen.find('\n', at);
      if (end != std::string::npos) {
        const auto port = std::stoul(seen.substr(at + 10, end - at - 10));
        drain_ = std::thread([fd = out_] {
          char sink[4096];
          while (::read(fd, sink, sizeof sink) > 0) {
          }
        });
        return static_cast<std::uint16_t>(port);
      }
    }
    return std::nullopt;
  }

  void signal(int number) { REQUIRE(::kill(pid_, number) == 0); }

  // The raw wait status once the child exits within `within`.
  std::optional<int> wait_exit(std::chrono::milliseconds within) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const auto reaped = ::waitpid(pid_, &status, WNOHANG);
      if (reaped == pid_) {
        pid_ = -1;
        return status;
      }
      std::this_thread::sleep_for(10ms);
    }
    return std::nullopt;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::thread drain_;
};

bool connection_refused(std::uint16_t port) {
  try {
    RawClient probe(port);
    return false;
  } catch (const std::exception&) {
    return true;
  }
}

}  // namespace

TEST_CASE("SIGTERM: in-flight requests finish, new connections are refused, exit 0", "[http][server][integration][shutdown]") {
  ChildServer child;
  const auto port = child.wait_for_port(10s);
  REQUIRE(port);

  // A keep-alive connection that has been served and now sits idle.
  RawClient idle(*port);
  REQUIRE(idle.send(make_request("GET", "/slow?ms=0")));
  const auto warmup = idle.read();
  REQUIRE(warmup);
  REQUIRE(warmup->status == 200);
  REQUIRE(warmup->keep_alive);

  RawClient slow(*port);
  REQUIRE(slow.send(make_request("GET", "/slow?ms=1000")));
  std::this_thread::sleep_for(200ms);  // the request is now on the server's worker pool

  const auto signalled_at = std::chrono::steady_clock::now();
  child.signal(SIGTERM);

  bool refused = false;
  for (int attempt = 0; attempt < 150 && !refused; ++attempt) {
    refused = connection_refused(*port);
    if (!refused) {
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK(refused);

  const auto response = slow.read();
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(response->json()["data"]["slept_ms"] == 1000);
  CHECK_FALSE(response->keep_alive);
  CHECK(idle.wait_closed(3s));

  const auto status = child.wait_exit(15s);
  REQUIRE(status);
  INFO("killed by signal " << (WIFSIGNALED(*status) ? WTERMSIG(*status) : 0));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  // The slow request needed ~0.8 s more; the default grace is 20 s.
  CHECK(std::chrono::steady_clock::now() - signalled_at < 5s);
}

TEST_CASE("SIGINT with only idle connections exits at once", "[http][server][integration][shutdown]") {
  ChildServer child;
  const auto port = child.wait_for_port(10s);
  REQUIRE(port);
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 5; ++i) {
    idle.push_back(std::make_unique<RawClient>(*port));
    REQUIRE(idle.back()->send(make_request("POST", "/echo", {{"Content-Type", "application/json"}},
                                           R"({"i":1})")));
    const auto response = idle.back()->read();
    REQUIRE(response);
    CHECK(response->json()["data"]["i"] == 1);
  }
  idle.push_back(std::make_unique<RawClient>(*port));  // connected, never asked anything

  const auto signalled_at = std::chrono::steady_clock::now();
  child.signal(SIGINT);
  const auto status = child.wait_exit(15s);
  REQUIRE(status);
  INFO("killed by signal " << (WIFSIGNALED(*status) ? WTERMSIG(*status) : 0));
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  CHECK(std::chrono::steady_clock::now() - signalled_at < 3s);
  for (auto& client : idle) {
    CHECK(client->wait_closed(1s));
  }
}
