#include "user_service_app.hpp"

#include <utility>

#include "migrations.hpp"
#include "user_routes.hpp"

namespace notifs::user_service {

namespace {

// Prepared statements live per connection, so they go in on_connect: a connection that
// replaces one lost to a PostgreSQL restart prepares them again before it is lent.
runtime::DatabaseServiceSettings with_prepared_statements(
    runtime::DatabaseServiceSettings settings) {
  auto previous = std::move(settings.database.on_connect);
  settings.database.on_connect = [previous =
                                      std::move(previous)](pqxx::connection_base& connection) {
    if (previous) {
      previous(connection);
    }
    UserRepository::prepare_statements(connection);
  };
  return settings;
}

}  // namespace

UserServiceApp::UserServiceApp(runtime::DatabaseServiceSettings settings,
                               std::shared_ptr<prometheus::Registry> registry)
    : service_(with_prepared_statements(std::move(settings)), std::move(registry), migrations(),
               "user_service"),
      repository_(service_.pool()) {}

// The routes hold repository_, which dies before service_: stop serving first.
UserServiceApp::~UserServiceApp() {
  if (started_) {
    stop();
  }
}

void UserServiceApp::start() {
  messaging::http::Router router;
  add_user_routes(router, repository_);
  service_.start(std::move(router));
  started_ = true;
}

std::uint16_t UserServiceApp::port() const { return service_.port(); }

void UserServiceApp::stop() { service_.stop(); }

int UserServiceApp::run_until_signal(const std::function<void()>& on_started) {
  if (!started_) {
    start();
  }
  return service_.run_until_signal(on_started);
}

}  // namespace notifs::user_service
