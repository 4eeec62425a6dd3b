#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "notifs/runtime/database_service.hpp"
#include "user_repository.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::user_service {

// user_service as one object: its PostgreSQL pool (with its prepared statements), its
// migrations, and its HTTP API on runtime::DatabaseService (which adds /health, /ready,
// /metrics, SERVICE_TOKEN auth and 503 for an unavailable database). Tests run it
// in-process on port 0; main() runs it until a signal.
//
// Thread-safety: construct, start, stop and destroy from one control thread. start()
// blocks until the migrations are applied (waiting up to startup_timeout for PostgreSQL).
class UserServiceApp {
 public:
  UserServiceApp(runtime::DatabaseServiceSettings settings,
                 std::shared_ptr<prometheus::Registry> registry);
  ~UserServiceApp();
  UserServiceApp(const UserServiceApp&) = delete;
  UserServiceApp& operator=(const UserServiceApp&) = delete;

  // Throws what runtime::DatabaseService::start throws.
  void start();
  std::uint16_t port() const;
  // Idempotent.
  void stop();
  // start() unless started, then serve until SIGINT/SIGTERM; returns the exit code.
  int run_until_signal(const std::function<void()>& on_started = {});

 private:
  runtime::DatabaseService service_;
  UserRepository repository_;
  bool started_ = false;
};

}  // namespace notifs::user_service
