#include "detail/asio.hpp"

#include "notifs/messaging/http/server.hpp"

#include <csignal>
#include <random>
#include <stdexcept>
#include <system_error>
#include <thread>

#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "http/server_core.hpp"
#include "http/server_session.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace notifs::messaging::http {

namespace detail {

namespace {

ServerSettings sanitized(ServerSettings settings) {
  settings.io_threads = std::max<std::size_t>(settings.io_threads, 1);
  settings.blocking_threads = std::max<std::size_t>(settings.blocking_threads, 1);
  return settings;
}

}  // namespace

ServerCore::ServerCore(ServerSettings settings_in, Router router_in,
                       std::shared_ptr<prometheus::Registry> registry_in)
    : settings(sanitized(std::move(settings_in))),
      router(std::move(router_in)),
      registry(registry_in ? std::move(registry_in) : std::make_shared<prometheus::Registry>()),
      metrics(*registry, settings.service_name),
      log(common::logger("http")),
      blocking_pool(settings.blocking_threads),
      ioc(static_cast<int>(settings.io_threads)) {}

std::uint64_t ServerCore::register_session(std::weak_ptr<Session> session) {
  std::lock_guard lock(sessions_mutex_);
  const auto id = next_session_id_++;
  sessions_.emplace(id, std::move(session));
  return id;
}

void ServerCore::unregister_session(std::uint64_t id) {
  std::lock_guard lock(sessions_mutex_);
  sessions_.erase(id);
  if (sessions_.empty()) {
    sessions_empty_.notify_all();
  }
}

std::size_t ServerCore::session_count() const {
  std::lock_guard lock(sessions_mutex_);
  return sessions_.size();
}

std::vector<std::shared_ptr<Session>> ServerCore::live_sessions() const {
  std::lock_guard lock(sessions_mutex_);
  std::vector<std::shared_ptr<Session>> live;
  live.reserve(sessions_.size());
  for (const auto& [id, weak] : sessions_) {
    if (auto session = weak.lock()) {
      live.push_back(std::move(session));
    }
  }
  return live;
}

bool ServerCore::wait_for_no_sessions(std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(sessions_mutex_);
  return sessions_empty_.wait_until(lock, deadline, [this] { return sessions_.empty(); });
}

}  // namespace detail

namespace {

using detail::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// Seconds a client should wait before asking again after a 503 from /ready.
constexpr const char* kReadyRetryAfter = "5";
// After shutdown_grace, force-closed sessions still need their aborted handlers to run.
constexpr std::chrono::seconds kForcedCloseWait{2};
// Accept failures such as EMFILE repeat at once; retrying in a tight loop would pin a core.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

[[noreturn]] void throw_system_error(const boost::system::error_code& ec,
                                     const std::string& what) {
  throw std::system_error(ec.value(), std::system_category(), what);
}

nlohmann::json dependency_json(const std::string& name, const DependencyStatus& status) {
  return {{"name", name}, {"ok", status.ok}, {"state", status.state}, {"detail", status.detail}};
}

DependencyStatus run_check(const ReadinessCheck& check) {
  try {
    return check();
  } catch (const std::exception& error) {
    return DependencyStatus{false, "down", std::string("check failed: ") + error.what()};
  } catch (...) {
    return DependencyStatus{false, "down", "check failed"};
  }
}

// Collects the answers of the readiness checks, which run in parallel on the worker pool,
// and answers once the last one is in.
class ReadinessRound {
 public:
  ReadinessRound(std::size_t count, Responder responder)
      : results_(count), remaining_(count), responder_(std::move(responder)) {}

  // True for the call that stored the last result: that caller answers.
  bool complete(std::size_t index, DependencyStatus status) {
    std::lock_guard lock(mutex_);
    results_[index] = std::move(status);
    return --remaining_ == 0;
  }
  // Only after complete() returned true: no writer is left.
  const std::vector<DependencyStatus>& results() const { return results_; }
  const Responder& responder() const { return responder_; }

 private:
  std::mutex mutex_;
  std::vector<DependencyStatus> results_;
  std::size_t remaining_;
  Responder responder_;
};

Response readiness_response(const std::vector<std::pair<std::string, ReadinessCheck>>& checks,
                            const std::vector<DependencyStatus>& results, bool stopping) {
  nlohmann::json dependencies = nlohmann::json::array();
  std::vector<FieldProblem> problems;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    const auto& status = results[i];
    dependencies.push_back(dependency_json(checks[i].first, status));
    if (!status.ok) {
      problems.push_back(FieldProblem{
          checks[i].first, status.detail.empty() ? status.state : status.state + ": " + status.detail});
    }
  }
  if (stopping) {
    problems.push_back(FieldProblem{"server", "shutting down"});
  }
  if (problems.empty()) {
    return ok_response(200, {{"status", "ready"}, {"dependencies", std::move(dependencies)}},
                       "ready");
  }
  // The contract's error envelope, plus the full dependency list in `data`: an operator
  // reading a 503 needs to see what is up as much as what is down.
  // ordered_json keeps the envelope's fields in the contract's order, like error_response.
  const auto error = error_envelope("not_ready", "a dependency is unavailable", problems);
  nlohmann::ordered_json envelope;
  envelope["success"] = false;
  envelope["data"] = {{"status", stopping ? "shutting_down" : "not_ready"},
                      {"dependencies", nlohmann::ordered_json(dependencies)}};
  envelope["error"] = nlohmann::ordered_json(error["error"]);
  envelope["message"] = error["message"];
  envelope["meta"] = nullptr;
  auto response = Response::json(
      503, envelope.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  response.headers.set("Retry-After", kReadyRetryAfter);
  return response;
}

void add_builtin_routes(detail::ServerCore& core) {
  auto& router = core.router;
  const auto absent = [&router](std::string_view path) {
    return router.match(Method::get, path).kind != Router::MatchKind::found;
  };
  if (absent("/health")) {
    router.add(
        Method::get, "/health",
        [](const Request&) { return ok_response(200, {{"status", "ok"}}, "alive"); },
        Execution::io, Access::open);
  }
  if (absent("/metrics")) {
    router.add(Method::get, "/metrics", [&core](const Request&) {
      for (const auto& hook : core.scrape_hooks) {
        hook();
      }
      Response response;
      response.status = 200;
      response.content_type = "text/plain; version=0.0.4";
      response.body = prometheus::TextSerializer().Serialize(core.registry->Collect());
      return response;
    }, Execution::io, Access::open);
  }
  if (absent("/ready")) {
    router.add_async(Method::get, "/ready", [&core](Request&&, Responder responder) {
      const bool stopping = core.stopping.load();
      if (core.checks.empty()) {
        responder.send(readiness_response(core.checks, {}, stopping));
        return;
      }
      auto round = std::make_shared<ReadinessRound>(core.checks.size(), std::move(responder));
      for (std::size_t i = 0; i < core.checks.size(); ++i) {
        detail::asio::post(core.blocking_pool, [&core, round, i] {
          if (round->complete(i, run_check(core.checks[i].second))) {
            round->responder().send(
                readiness_response(core.checks, round->results(), core.stopping.load()));
          }
        });
      }
    }, Access::open);
  }
}

}  // namespace

struct HttpServer::Impl {
  enum class State { created, running, stopping, stopped };

  Impl(ServerSettings settings, Router router, std::shared_ptr<prometheus::Registry> registry)
      : core(std::make_unique<detail::ServerCore>(std::move(settings), std::move(router),
                                                  std::move(registry))),
        acceptor(detail::asio::make_strand(core->ioc)),
        accept_retry(acceptor.get_executor()) {}

  void do_accept() {
    acceptor.async_accept(detail::asio::make_strand(core->ioc),
                          [this](boost::system::error_code ec, detail::SessionSocket socket) {
                            on_accept(ec, std::move(socket));
                          });
  }

  void on_accept(boost::system::error_code ec, detail::SessionSocket socket) {
    if (ec == detail::asio::error::operation_aborted || !acceptor.is_open()) {
      return;
    }
    if (ec) {
      core->log->warn("accept failed service={} error={}", core->settings.service_name,
                      ec.message());
      accept_retry.expires_after(kAcceptRetryDelay);
      accept_retry.async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec && acceptor.is_open()) {
          do_accept();
        }
      });
      return;
    }
    if (core->stopping.load()) {
      return;  // the socket closes as it goes out of scope
    }
    // The next accept is queued first: if setting up this connection throws (out of
    // memory), the exception ends this handler but must not end accepting.
    do_accept();
    auto session = std::make_shared<detail::Session>(*core, std::move(socket));
    if (core->session_count() >= core->settings.max_connections) {
      session->reject_overloaded();
    } else {
      session->start();
    }
  }

  // Returns true when every connection finished within the grace period.
  bool shutdown() {
    core->stopping.store(true);
    detail::asio::post(acceptor.get_executor(), [this] {
      boost::system::error_code ignored;
      acceptor.close(ignored);
      accept_retry.cancel();
    });
    for (const auto& session : core->live_sessions()) {
      session->notify_shutdown();
    }
    bool clean = core->wait_for_no_sessions(Clock::now() + core->settings.shutdown_grace);
    if (!clean) {
      const auto live = core->live_sessions();
      core->log->warn("shutdown grace over, closing connections service={} count={}",
                      core->settings.service_name, live.size());
      for (const auto& session : live) {
        session->force_close();
      }
      core->wait_for_no_sessions(Clock::now() + kForcedCloseWait);
    }
    // Blocking handlers and checks already queued run to the end while the io threads can
    // still take their answers; they must bound their own time (see server.hpp).
    core->blocking_pool.join();
    work.reset();
    core->ioc.stop();
    for (auto& thread : threads) {
      thread.join();
    }
    threads.clear();
    core->log->info("http server stopped service={} clean={}", core->settings.service_name,
                    clean);
    return clean;
  }

  std::unique_ptr<detail::ServerCore> core;
  tcp::acceptor acceptor;
  detail::asio::steady_timer accept_retry;
  std::optional<detail::asio::executor_work_guard<detail::asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;

  std::mutex state_mutex;
  std::condition_variable state_changed;
  State state = State::created;
  bool clean_stop = true;
};

HttpServer::HttpServer(ServerSettings settings, Router router,
                       std::shared_ptr<prometheus::Registry> registry)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(router), std::move(registry))) {
  add_builtin_routes(*impl_->core);
  // The routes are final from here on.
  impl_->core->metrics.prepare(impl_->core->router.size());
  impl_->core->router.set_blocking_executor([core = impl_->core.get()](std::function<void()> task) {
    detail::asio::post(core->blocking_pool, std::move(task));
  });
}

HttpServer::~HttpServer() {
  stop();
  // The acceptor and timer belong to the io_context inside core: release them first.
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

void HttpServer::add_readiness_check(std::string name, ReadinessCheck check) {
  std::lock_guard lock(impl_->state_mutex);
  if (impl_->state != Impl::State::created) {
    throw std::logic_error("add_readiness_check after start()");
  }
  impl_->core->checks.emplace_back(std::move(name), std::move(check));
}

void HttpServer::add_scrape_hook(std::function<void()> hook) {
  std::lock_guard lock(impl_->state_mutex);
  if (impl_->state != Impl::State::created) {
    throw std::logic_error("add_scrape_hook after start()");
  }
  impl_->core->scrape_hooks.push_back(std::move(hook));
}

void HttpServer::start() {
  std::lock_guard lock(impl_->state_mutex);
  if (impl_->state != Impl::State::created) {
    throw std::logic_error("HttpServer::start() called twice");
  }
  auto& core = *impl_->core;
  auto& acceptor = impl_->acceptor;
  const std::string where = core.settings.address + ":" + std::to_string(core.settings.port);
  boost::system::error_code ec;
  const auto address = detail::asio::ip::make_address(core.settings.address, ec);
  if (ec) {
    throw_system_error(ec, "invalid listen address " + core.settings.address);
  }
  const tcp::endpoint endpoint(address, core.settings.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) {
    // A restarted process must be able to bind while old connections sit in TIME_WAIT.
    acceptor.set_option(detail::asio::socket_base::reuse_address(true), ec);
  }
  if (!ec) {
    acceptor.bind(endpoint, ec);
  }
  if (!ec) {
    acceptor.listen(detail::asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    throw_system_error(ec, "cannot listen on " + where);
  }
  impl_->port = acceptor.local_endpoint(ec).port();

  impl_->work.emplace(core.ioc.get_executor());
  detail::asio::post(acceptor.get_executor(), [impl = impl_.get()] { impl->do_accept(); });
  try {
    for (std::size_t i = 0; i < core.settings.io_threads; ++i) {
      impl_->threads.emplace_back([&core] {
        // Handlers catch their own errors; this keeps a thread serving if one slips through.
        while (true) {
          try {
            core.ioc.run();
            return;
          } catch (const std::exception& error) {
            core.log->error("io thread caught error={}", error.what());
          }
        }
      });
    }
  } catch (...) {
    // No thread to spare (EAGAIN): the threads already started must be joined before the
    // exception leaves, or their std::thread destructors terminate the process.
    impl_->work.reset();
    core.ioc.stop();
    for (auto& thread : impl_->threads) {
      thread.join();
    }
    impl_->threads.clear();
    boost::system::error_code ignored;
    acceptor.close(ignored);
    throw;
  }
  impl_->state = Impl::State::running;
  core.log->info("http server listening service={} address={} port={} io_threads={}",
                 core.settings.service_name, core.settings.address, impl_->port,
                 core.settings.io_threads);
}

std::uint16_t HttpServer::port() const { return impl_->port; }

void HttpServer::stop() {
  {
    std::unique_lock lock(impl_->state_mutex);
    if (impl_->state == Impl::State::created) {
      impl_->state = Impl::State::stopped;
      impl_->state_changed.notify_all();
      return;
    }
    if (impl_->state == Impl::State::stopping) {
      impl_->state_changed.wait(lock, [this] { return impl_->state == Impl::State::stopped; });
      return;
    }
    if (impl_->state == Impl::State::stopped) {
      return;
    }
    impl_->state = Impl::State::stopping;
  }
  const bool clean = impl_->shutdown();
  std::lock_guard lock(impl_->state_mutex);
  impl_->clean_stop = clean;
  impl_->state = Impl::State::stopped;
  impl_->state_changed.notify_all();
}

void HttpServer::wait() {
  std::unique_lock lock(impl_->state_mutex);
  impl_->state_changed.wait(lock, [this] {
    return impl_->state == Impl::State::stopped || impl_->state == Impl::State::created;
  });
}

int HttpServer::run_until_signal(const std::function<void()>& on_started) {
  Impl* impl = impl_.get();
  // Registered before start() so that a signal arriving early is not fatal.
  detail::asio::signal_set signals(impl->core->ioc, SIGINT, SIGTERM);
  auto received = std::make_shared<int>(0);  // guarded by state_mutex
  signals.async_wait([impl, received](boost::system::error_code ec, int number) {
    if (ec) {
      return;
    }
    std::lock_guard lock(impl->state_mutex);
    *received = number;
    impl->state_changed.notify_all();
  });
  bool started = false;
  {
    std::lock_guard lock(impl->state_mutex);
    started = impl->state != Impl::State::created;
  }
  if (!started) {
    start();
  }
  if (on_started) {
    on_started();
  }
  int signal_number = 0;
  {
    // Also wakes when another thread calls stop().
    std::unique_lock lock(impl->state_mutex);
    impl->state_changed.wait(
        lock, [&] { return *received != 0 || impl->state != Impl::State::running; });
    signal_number = *received;
  }
  if (signal_number != 0) {
    impl->core->log->info("signal received, stopping service={} signal={}",
                          impl->core->settings.service_name, signal_number);
  }
  stop();
  std::lock_guard lock(impl->state_mutex);
  return impl->clean_stop ? 0 : 1;
}

}  // namespace notifs::messaging::http
