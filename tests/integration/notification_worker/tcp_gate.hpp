#pragma once

// A server that is down, then comes back: a loopback port that refuses connections until
// open(), then relays each connection to a real server on another loopback port. The port
// is bound from the start without listening (the kernel answers a connect with a reset, as
// for a closed port), so nothing else can take it between the two phases.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>

namespace notifs::test_support {

class TcpGate {
 public:
  explicit TcpGate(std::uint16_t target_port);
  ~TcpGate();  // closes every relayed connection and joins
  TcpGate(const TcpGate&) = delete;
  TcpGate& operator=(const TcpGate&) = delete;

  std::uint16_t port() const { return port_; }
  // Starts listening and relaying. Once is enough; later calls do nothing.
  void open();
  // Connections accepted (and relayed) so far.
  std::size_t connections() const { return accepted_.load(); }

 private:
  void run();

  std::uint16_t target_port_;
  std::uint16_t port_ = 0;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  std::once_flag opened_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> accepted_{0};
  std::thread thread_;
};

}  // namespace notifs::test_support
