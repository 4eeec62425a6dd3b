#pragma once

// A real SMTP server for tests: Postfix's smtp-sink on a loopback port picked at run time,
// writing each received message to a file of its own in a temporary folder. The destructor
// kills and reaps the process and removes the folder, so a failed assertion leaves nothing
// behind.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace notifs::test_support {

// A loopback port nothing listens on right now (bound to port 0, then closed). Another
// process may take it before the caller does; callers that listen retry.
std::uint16_t free_loopback_port();

class SmtpSink {
 public:
  // `options` go before the address (e.g. {"-f", "RCPT", "-B", "550 5.1.1 No such user"});
  // see `man smtp-sink`. Starts the server and waits until it accepts connections; FAILs
  // the test when it cannot.
  explicit SmtpSink(std::vector<std::string> options = {});
  ~SmtpSink();

  SmtpSink(const SmtpSink&) = delete;
  SmtpSink& operator=(const SmtpSink&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url() const;  // smtp://127.0.0.1:PORT
  const std::filesystem::path& dir() const { return dir_; }

  // The captured transactions, each as smtp-sink writes it: its own X-Mail-Args,
  // X-Rcpt-Args and Received lines, then the message with LF line ends (the sink drops
  // the CRs). Waits up to `within` for at least `expected` files.
  std::vector<std::string> messages(std::size_t expected,
                                    std::chrono::milliseconds within = std::chrono::seconds(5)) const;
  std::size_t message_count() const;
  // Whether the process is still running.
  bool running();
  // SMTP sessions (connections) that have ended so far, from smtp-sink's -c counters
  // (always on); the fixture's own readiness probe is not counted.
  std::size_t sessions_ended() const;

 private:
  bool start(const std::vector<std::string>& options);
  void stop();

  std::filesystem::path root_;  // holds dir_ and smtp-sink's stdout
  std::filesystem::path dir_;
  std::uint16_t port_ = 0;
  pid_t pid_ = -1;
};

// A TCP listener that completes connections (the kernel's backlog) and never says a word:
// what a hung mail server looks like to a client.
class SilentServer {
 public:
  SilentServer();
  ~SilentServer();
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  std::uint16_t port() const { return port_; }
  // Whether a client has connected (waits in the backlog) within `within`.
  bool wait_for_connection(std::chrono::milliseconds within) const;

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace notifs::test_support
