#pragma once

#include "detail/asio.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <spdlog/spdlog.h>

#include "http/server_metrics.hpp"
#include "notifs/messaging/common/random.hpp"
#include "notifs/messaging/http/router.hpp"
#include "notifs/messaging/http/server.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::messaging::http::detail {

namespace asio = messaging::detail::asio;
namespace beast = messaging::detail::beast;
namespace bhttp = messaging::detail::bhttp;
using tcp = messaging::detail::tcp;

class Session;

// What every connection of one server shares. Sessions hold a plain reference: the
// io_context is the last member, so it is destroyed first and takes every session (owned
// by its pending handlers) with it while the rest is still alive.
class ServerCore {
 public:
  ServerCore(ServerSettings settings, Router router,
             std::shared_ptr<prometheus::Registry> registry);
  ServerCore(const ServerCore&) = delete;
  ServerCore& operator=(const ServerCore&) = delete;

  // Returns the id to unregister with. A session registered after stop began is told so
  // by `stopping` (set before the snapshot of live_sessions() is taken).
  std::uint64_t register_session(std::weak_ptr<Session> session);
  void unregister_session(std::uint64_t id);
  std::size_t session_count() const;
  std::vector<std::shared_ptr<Session>> live_sessions() const;
  // Waits until no session is left or the deadline passes; true when none is left.
  bool wait_for_no_sessions(std::chrono::steady_clock::time_point deadline) const;

  // Read-only while serving.
  const ServerSettings settings;
  Router router;
  const std::shared_ptr<prometheus::Registry> registry;
  ServerMetrics metrics;
  common::DefaultRandom random;
  const std::shared_ptr<spdlog::logger> log;
  std::atomic<bool> stopping{false};
  std::vector<std::pair<std::string, ReadinessCheck>> checks;  // read-only once started
  std::vector<std::function<void()>> scrape_hooks;             // read-only once started

 private:
  mutable std::mutex sessions_mutex_;
  mutable std::condition_variable sessions_empty_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Session>> sessions_;
  std::uint64_t next_session_id_ = 1;

 public:
  // Declared last, destroyed first (see the class comment). The pool runs blocking
  // handlers and readiness checks; their answers are posted back to a session's strand.
  asio::thread_pool blocking_pool;
  asio::io_context ioc;
};

}  // namespace notifs::messaging::http::detail
