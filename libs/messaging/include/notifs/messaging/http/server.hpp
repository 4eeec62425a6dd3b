#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "notifs/messaging/http/router.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::messaging::http {

struct ServerSettings {
  std::string service_name = "service";         // label of metrics and logs
  std::string address = "0.0.0.0";              // listen address
  std::uint16_t port = 8080;                    // 0 picks a free port (read it back with port())
  std::size_t io_threads = 2;                   // threads running the io_context
  std::size_t blocking_threads = 4;             // worker pool for Execution::blocking and /ready
  std::size_t body_limit = 64 * 1024;           // larger bodies get 413
  std::size_t header_limit = 8 * 1024;          // larger header blocks get 431
  std::size_t max_connections = 10000;          // beyond this, new connections get 503 and close
  std::chrono::milliseconds request_timeout{10000};  // to receive one whole request (slowloris bound)
  std::chrono::milliseconds idle_timeout{60000};     // a keep-alive connection with no request
  std::chrono::milliseconds handler_timeout{30000};  // a handler that never answers gets 503
  std::chrono::milliseconds write_timeout{10000};    // to send one response to a slow reader
  std::chrono::milliseconds shutdown_grace{20000};   // in-flight requests get this long at stop
};

// One dependency as /ready reports it.
struct DependencyStatus {
  bool ok = false;
  std::string state;   // "up", "down", "open", "half_open", ...
  std::string detail;  // a short reason when not ok
};
// A readiness check runs on the worker pool, never on an io thread; it must bound its own
// time (a short timeout), since /ready waits for all checks.
using ReadinessCheck = std::function<DependencyStatus()>;

// The HTTP/1.1 server every process runs (Beast on a pool of io threads).
//
// Built-in routes: GET /health (200 while the process runs), GET /ready (200 only when
// every readiness check is ok; the body lists each), GET /metrics (the registry in
// Prometheus text format). Every response carries X-Request-ID and the contract's JSON
// envelope; malformed requests get 400, oversized headers 431, oversized bodies 413,
// non-JSON bodies 415, unknown paths 404, wrong methods 405 with Allow.
//
// Thread-safety: configure (routes, checks) before start(); start/stop/wait from one
// control thread. stop() and the destructor block until connections are drained.
class HttpServer {
 public:
  HttpServer(ServerSettings settings, Router router,
             std::shared_ptr<prometheus::Registry> registry);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  void add_readiness_check(std::string name, ReadinessCheck check);
  // Runs on the io thread before each GET /metrics is serialized, so that figures kept
  // elsewhere (a cache's counters) can be copied into the registry. Must be quick.
  void add_scrape_hook(std::function<void()> hook);

  // Binds and starts serving on the io threads; returns at once. Throws std::system_error
  // when the address cannot be bound. A server starts once: it cannot be restarted.
  void start();
  // The bound port (useful with port 0).
  std::uint16_t port() const;
  // Graceful stop: stop accepting, close idle keep-alive connections, let in-flight
  // requests finish (their responses say Connection: close), then stop the threads.
  // Connections still busy after shutdown_grace are closed. Blocking handlers and
  // readiness checks already queued are waited for, so they must bound their own time.
  // Idempotent.
  void stop();
  // Blocks until the server has stopped.
  void wait();
  // start() (unless already started), then serve until SIGINT or SIGTERM, then stop().
  // `on_started` runs once the server listens and the signals are caught (e.g. to print
  // port()): a signal sent after it never kills the process with the default action.
  // Returns 0 after a clean stop, 1 when connections had to be closed at the end of
  // shutdown_grace.
  int run_until_signal(const std::function<void()>& on_started = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::messaging::http
