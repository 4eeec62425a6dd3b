#include "integration/notification_worker/tcp_gate.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace notifs::test_support {
namespace {

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  return address;
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

struct Pair {
  int client = -1;
  int upstream = -1;
};

}  // namespace

TcpGate::TcpGate(std::uint16_t target_port) : target_port_(target_port) {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(listener_ >= 0);
  sockaddr_in address = loopback(0);
  REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  port_ = ntohs(address.sin_port);
  REQUIRE(::pipe2(wake_, O_CLOEXEC) == 0);
}

TcpGate::~TcpGate() {
  stopping_ = true;
  const char byte = 0;
  [[maybe_unused]] const auto written = ::write(wake_[1], &byte, 1);
  if (thread_.joinable()) {
    thread_.join();
  }
  ::close(listener_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpGate::open() {
  std::call_once(opened_, [this] {
    REQUIRE(::listen(listener_, 64) == 0);
    thread_ = std::thread([this] { run(); });
  });
}

void TcpGate::run() {
  std::vector<Pair> pairs;
  const auto close_pair = [](Pair& pair) {
    ::close(pair.client);
    ::close(pair.upstream);
    pair.client = pair.upstream = -1;
  };
  while (!stopping_) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
    std::vector<std::pair<std::size_t, bool>> owners;  // pair index, whether the client side
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      if (pairs[i].client < 0) {
        continue;
      }
      fds.push_back({pairs[i].client, POLLIN, 0});
      owners.emplace_back(i, true);
      fds.push_back({pairs[i].upstream, POLLIN, 0});
      owners.emplace_back(i, false);
    }
    if (::poll(fds.data(), fds.size(), 100) <= 0) {
      continue;
    }
    if ((fds[0].revents & POLLIN) != 0) {
      break;  // the destructor's wake-up
    }
    if ((fds[1].revents & POLLIN) != 0) {
      const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in target = loopback(target_port_);
        if (upstream >= 0 &&
            ::connect(upstream, reinterpret_cast<sockaddr*>(&target), sizeof target) == 0) {
          pairs.push_back({client, upstream});
          ++accepted_;
        } else {
          ::close(client);
          if (upstream >= 0) {
            ::close(upstream);
          }
        }
      }
    }
    for (std::size_t k = 2; k < fds.size(); ++k) {
      if (fds[k].revents == 0) {
        continue;
      }
      Pair& pair = pairs[owners[k - 2].first];
      if (pair.client < 0) {
        continue;  // closed earlier in this round
      }
      const bool from_client = owners[k - 2].second;
      char buffer[16384];
      const ssize_t n = ::read(from_client ? pair.client : pair.upstream, buffer, sizeof buffer);
      if (n <= 0 || !write_all(from_client ? pair.upstream : pair.client, buffer,
                               static_cast<std::size_t>(n))) {
        close_pair(pair);  // one side ended: end the other, as a server going away would
      }
    }
  }
  for (auto& pair : pairs) {
    if (pair.client >= 0) {
      close_pair(pair);
    }
  }
}

}  // namespace notifs::test_support
