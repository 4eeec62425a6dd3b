#pragma once

#include <functional>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "notifs/messaging/http/message.hpp"

namespace notifs::messaging::http {

namespace detail {
// The session's side of a Responder; implemented privately by the server.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void deliver(Response response) = 0;
};
}  // namespace detail

// Completes one request. Copyable and callable from any thread; the first send() wins and
// later ones are ignored. If every copy is destroyed without a send(), the request is
// answered with 500 `internal_error` so that a buggy handler can never hang a client.
class Responder {
 public:
  explicit Responder(std::shared_ptr<detail::ResponseSink> sink);
  void send(Response response) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// A handler that answers later, from any thread (e.g. after a database or broker call on
// another thread). It must return quickly: it runs on an io thread.
using AsyncHandler = std::function<void(Request&& request, Responder responder)>;
// A handler that computes the answer directly. Exceptions become error envelopes
// (HttpError -> its status; anything else -> 500).
using SyncHandler = std::function<Response(const Request& request)>;

// Where a SyncHandler runs: `io` for quick, non-blocking work; `blocking` for work that
// may wait (a database query, a blocking client call) on the server's worker pool, so no
// io thread is ever held.
enum class Execution { io, blocking };

// Whether a route is subject to the router's guard. The server's built-in /health, /ready
// and /metrics are `open`: probes and scrapers carry no credentials.
enum class Access { guarded, open };

// Maps method + path pattern to handlers. Patterns are literal segments and `{name}`
// parameters: "/api/v1/users/{id}/push_tokens/{token}". A trailing slash is ignored.
// Built before the server starts, then read-only (so lock-free) while it runs.
class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Throws std::invalid_argument for a malformed pattern or a duplicate method + pattern.
  void add_async(Method method, std::string_view pattern, AsyncHandler handler,
                 Access access = Access::guarded);
  void add(Method method, std::string_view pattern, SyncHandler handler,
           Execution execution = Execution::io, Access access = Access::guarded);

  struct Route {
    Method method;
    std::string pattern;
    AsyncHandler handler;  // sync handlers are adapted to this form
    std::size_t index = 0;  // order of add(), 0-based: lets a server keep per-route tables
  };
  // Number of routes; every Route::index is below it.
  std::size_t size() const;

  enum class MatchKind { found, method_not_allowed, not_found };
  struct Match {
    MatchKind kind = MatchKind::not_found;
    const Route* route = nullptr;
    std::vector<std::pair<std::string, std::string>> params;
    std::vector<Method> allowed;  // for 405's Allow header
  };
  // HEAD is answered by the GET route of the same path when there is no HEAD route.
  // `path` is the path as sent, still percent-encoded: it is split at '/' first and each
  // segment decoded after, so "%2F" stays inside a parameter. A bad escape: not_found.
  // When several patterns match, a literal segment beats a parameter ("/users/me" over
  // "/users/{id}"). `allowed` (405 only) includes HEAD when GET is allowed.
  Match match(Method method, std::string_view path) const;

  // Runs before the handler of every guarded route, on the io thread (so it must not
  // block): a Response it returns is sent instead of calling the handler (e.g. a 401 when
  // the service token is missing). Routes added with Access::open, such as the server's
  // built-in /health, /ready and /metrics, skip it. Set before the server starts.
  using Guard = std::function<std::optional<Response>(const Request& request)>;
  void set_guard(Guard guard);

  // Maps an exception a SyncHandler threw to a response before the default table
  // (HttpError -> its status, anything else -> 500) is consulted: lets a service turn a
  // library's error (e.g. "database unavailable") into its 503 in one place. Return
  // nullopt to leave an exception to the default table. Set before the server starts.
  using ErrorTranslator = std::function<std::optional<Response>(const std::exception& error)>;
  void set_error_translator(ErrorTranslator translator);

  // Lets the server run blocking handlers on its worker pool; set by the server at start.
  using BlockingExecutor = std::function<void(std::function<void()>)>;
  void set_blocking_executor(BlockingExecutor executor);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::messaging::http
