#include "integration/notification_worker/smtp_sink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include <catch2/catch.hpp>

extern char** environ;

namespace notifs::test_support {
namespace {

using namespace std::chrono_literals;

int loopback_socket(std::uint16_t port, bool listen_on_it, std::uint16_t* bound_port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  if (listen_on_it) {
    REQUIRE(::bind(fd, generic, sizeof address) == 0);
    REQUIRE(::listen(fd, 16) == 0);
  } else if (::connect(fd, generic, sizeof address) != 0) {
    ::close(fd);
    return -1;
  }
  if (bound_port != nullptr) {
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, generic, &length) == 0);
    *bound_port = ntohs(address.sin_port);
  }
  return fd;
}

// smtp-sink lives in /usr/sbin, which is not always on a test runner's PATH.
std::string smtp_sink_binary() {
  for (const char* candidate : {"/usr/sbin/smtp-sink", "/usr/bin/smtp-sink"}) {
    if (::access(candidate, X_OK) == 0) {
      return candidate;
    }
  }
  FAIL("smtp-sink not found: install Debian's postfix package");
  return {};
}

std::size_t sessions_counted(const std::filesystem::path& root);

}  // namespace

std::uint16_t free_loopback_port() {
  std::uint16_t port = 0;
  const int fd = loopback_socket(0, true, &port);
  ::close(fd);
  return port;
}

SmtpSink::SmtpSink(std::vector<std::string> options) {
  std::string pattern = (std::filesystem::temp_directory_path() / "notifs-smtp-sink-XXXXXX").string();
  REQUIRE(::mkdtemp(pattern.data()) != nullptr);
  root_ = pattern;
  dir_ = root_ / "mail";
  std::filesystem::create_directory(dir_);
  // The port is free when picked but may be taken before smtp-sink binds it: try again.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (start(options)) {
      return;
    }
  }
  std::filesystem::remove_all(root_);
  FAIL("smtp-sink did not start listening on 127.0.0.1");
}

SmtpSink::~SmtpSink() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(root_, ignored);
}

bool SmtpSink::start(const std::vector<std::string>& options) {
  port_ = free_loopback_port();
  std::vector<std::string> args = {smtp_sink_binary()};
  if (::geteuid() == 0) {
    // smtp-sink refuses to run as root unless told which user to become.
    const passwd* user = ::getpwuid(0);
    args.insert(args.end(), {"-u", user != nullptr ? user->pw_name : "root"});
  }
  args.emplace_back("-c");  // session counters on stdout: how tests see connection reuse
  args.insert(args.end(), options.begin(), options.end());
  // One file per transaction: DIR/<minute>.<random hex>.
  args.insert(args.end(), {"-d", (dir_ / "%M.").string(), "127.0.0.1:" + std::to_string(port_), "256"});
  std::vector<char*> argv;
  for (auto& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  ::posix_spawn_file_actions_init(&actions);
  const auto counters = (root_ / "stdout").string();
  ::posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, counters.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int spawned = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    pid_ = -1;
    FAIL("cannot spawn smtp-sink: " << std::strerror(spawned));
  }
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!running()) {
      return false;  // it could not bind: the port went to someone else
    }
    const int fd = loopback_socket(port_, false, nullptr);
    if (fd >= 0) {
      ::close(fd);
      // The probe is a session too; sessions_ended() leaves it out once it is counted.
      const auto deadline_probe = std::chrono::steady_clock::now() + 2s;
      while (sessions_counted(root_) == 0 && std::chrono::steady_clock::now() < deadline_probe) {
        std::this_thread::sleep_for(5ms);
      }
      return true;
    }
    std::this_thread::sleep_for(10ms);
  }
  stop();
  return false;
}

void SmtpSink::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
}

bool SmtpSink::running() {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

namespace {

std::size_t sessions_counted(const std::filesystem::path& root) {
  std::ifstream file(root / "stdout", std::ios::binary);
  std::ostringstream content;
  content << file.rdbuf();
  // Lines like "sess=3 quit=3 mesg=5", separated by CRs; the last one is current.
  const auto text = content.str();
  const auto at = text.rfind("sess=");
  if (at == std::string::npos) {
    return 0;
  }
  return std::stoul(text.substr(at + 5));
}

}  // namespace

std::size_t SmtpSink::sessions_ended() const {
  const auto count = sessions_counted(root_);
  return count > 0 ? count - 1 : 0;  // minus the readiness probe
}

std::string SmtpSink::url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }

std::size_t SmtpSink::message_count() const {
  std::size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    count += entry.is_regular_file() ? 1 : 0;
  }
  return count;
}

std::vector<std::string> SmtpSink::messages(std::size_t expected,
                                            std::chrono::milliseconds within) const {
  // smtp-sink answers 250 to the final dot before the test looks, but the file system may
  // show the file a moment later: wait for the count, then for each file's closing line.
  const auto deadline = std::chrono::steady_clock::now() + within;
  std::vector<std::string> out;
  for (;;) {
    out.clear();
    bool complete = true;
    for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
      std::ifstream file(entry.path(), std::ios::binary);
      std::ostringstream content;
      content << file.rdbuf();
      out.push_back(content.str());
      complete = complete && out.back().ends_with("\n\n");
    }
    if ((out.size() >= expected && complete) || std::chrono::steady_clock::now() >= deadline) {
      return out;
    }
    std::this_thread::sleep_for(20ms);
  }
}

SilentServer::SilentServer() { fd_ = loopback_socket(0, true, &port_); }

bool SilentServer::wait_for_connection(std::chrono::milliseconds within) const {
  // A listening socket polls readable once a completed connection waits to be accepted.
  pollfd pfd{fd_, POLLIN, 0};
  return ::poll(&pfd, 1, static_cast<int>(within.count())) == 1;
}

SilentServer::~SilentServer() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

}  // namespace notifs::test_support
