#include "notifs/messaging/http/router.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <optional>
#include <stdexcept>

#include <boost/container/small_vector.hpp>

#include "http/server_errors.hpp"
#include "http/server_uri.hpp"
#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace notifs::messaging::http {

// ---------------------------------------------------------------------------------------
// Responder

struct Responder::State {
  explicit State(std::shared_ptr<detail::ResponseSink> s) : sink(std::move(s)) {}
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  // The last copy is gone: if nobody answered, the client would wait forever.
  ~State() {
    if (sent.exchange(true) || !sink) {
      return;
    }
    try {
      common::logger("http")->error("handler dropped its responder without answering");
      sink->deliver(error_response(500, "internal_error", "the handler did not answer"));
    } catch (...) {
      // A destructor must not throw; the server's handler timeout still answers.
    }
  }

  std::shared_ptr<detail::ResponseSink> sink;
  std::atomic<bool> sent{false};
};

Responder::Responder(std::shared_ptr<detail::ResponseSink> sink)
    : state_(std::make_shared<State>(std::move(sink))) {}

void Responder::send(Response response) const {
  if (!state_ || state_->sent.exchange(true) || !state_->sink) {
    return;
  }
  state_->sink->deliver(std::move(response));
}

// ---------------------------------------------------------------------------------------
// Router

namespace {

struct Segment {
  std::string text;  // the literal, or the parameter's name
  bool is_param = false;
};

// "/a/b/" and "/a/b" are the same path; "/" has no segments.
std::string_view trim_slashes(std::string_view path) {
  if (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  if (!path.empty() && path.back() == '/') {
    path.remove_suffix(1);
  }
  return path;
}

template <typename Fn>
void for_each_segment(std::string_view path, Fn&& fn) {
  path = trim_slashes(path);
  if (path.empty()) {
    return;
  }
  while (true) {
    const auto slash = path.find('/');
    fn(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      return;
    }
    path.remove_prefix(slash + 1);
  }
}

std::vector<Segment> parse_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    throw std::invalid_argument("route pattern must start with '/': " + std::string(pattern));
  }
  std::vector<Segment> segments;
  for_each_segment(pattern, [&](std::string_view text) {
    const bool braced = text.size() >= 2 && text.front() == '{' && text.back() == '}';
    const std::string_view inner = braced ? text.substr(1, text.size() - 2) : text;
    if (inner.empty() || inner.find_first_of("{}") != std::string_view::npos) {
      throw std::invalid_argument("bad segment '" + std::string(text) +
                                  "' in route pattern: " + std::string(pattern));
    }
    segments.push_back(Segment{std::string(inner), braced});
  });
  return segments;
}

// A request path split into decoded segments. A segment without an escape (nearly all)
// is viewed in place; only escaped ones are decoded into `owned`, reserved up front so the
// views into it stay valid. Paths of up to 8 segments take no allocation at all.
struct DecodedPath {
  boost::container::small_vector<std::string_view, 8> segments;
  std::vector<std::string> owned;
};

// Splits the still-encoded path first and decodes each segment after, so that an encoded
// slash (%2F) stays inside its segment instead of creating a new one.
std::optional<DecodedPath> decode_segments(std::string_view path) {
  DecodedPath result;
  std::size_t escaped = 0;
  for_each_segment(path, [&](std::string_view text) {
    escaped += text.find('%') != std::string_view::npos ? 1 : 0;
  });
  result.owned.reserve(escaped);
  bool valid = true;
  for_each_segment(path, [&](std::string_view text) {
    if (!valid) {
      return;
    }
    if (text.find('%') == std::string_view::npos) {
      result.segments.push_back(text);
      return;
    }
    auto decoded = detail::percent_decode(text, false);
    if (!decoded) {
      valid = false;
      return;
    }
    result.owned.push_back(std::move(*decoded));
    result.segments.push_back(result.owned.back());
  });
  if (!valid) {
    return std::nullopt;
  }
  return result;
}

bool segments_match(const std::vector<Segment>& pattern, const DecodedPath& path) {
  if (pattern.size() != path.segments.size()) {
    return false;
  }
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i].is_param ? path.segments[i].empty() : pattern[i].text != path.segments[i]) {
      return false;
    }
  }
  return true;
}

// Of two patterns matching the same path, the one with a literal where the other has a
// parameter, at the first place they differ, wins: "/users/me" beats "/users/{id}".
bool more_specific(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (a[i].is_param != b[i].is_param) {
      return !a[i].is_param;
    }
  }
  return false;
}

bool same_shape(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.is_param == y.is_param && (x.is_param || x.text == y.text);
  });
}

Response call_sync(const SyncHandler& handler, const Request& request,
                   const Router::ErrorTranslator& translator) {
  try {
    return handler(request);
  } catch (const std::exception& error) {
    if (translator) {
      try {
        if (auto translated = translator(error)) {
          return std::move(*translated);
        }
      } catch (...) {
        // A translator that throws is a bug of its own: fall back to the default table.
      }
    }
    return detail::response_for_current_exception(request);
  } catch (...) {
    return detail::response_for_current_exception(request);
  }
}

}  // namespace

struct Router::Impl {
  struct Entry {
    Route route;
    std::vector<Segment> segments;
  };
  // A deque keeps Route pointers handed out by match() valid as routes are added.
  std::deque<Entry> entries;
  // Shared with the adapted blocking handlers, which are created before the server sets
  // the executor.
  std::shared_ptr<BlockingExecutor> blocking = std::make_shared<BlockingExecutor>();
  // Shared with every handler for the same reason: they may be set after routes are added.
  std::shared_ptr<Guard> guard = std::make_shared<Guard>();
  std::shared_ptr<ErrorTranslator> translator = std::make_shared<ErrorTranslator>();

  void add(Method method, std::string_view pattern, AsyncHandler handler, Access access) {
    if (!handler) {
      throw std::invalid_argument("empty handler for route " + std::string(pattern));
    }
    if (access == Access::guarded) {
      handler = [guard = this->guard, handler = std::move(handler)](Request&& request,
                                                                    Responder responder) {
        if (*guard) {
          if (auto refusal = (*guard)(request)) {
            responder.send(std::move(*refusal));
            return;
          }
        }
        handler(std::move(request), std::move(responder));
      };
    }
    auto segments = parse_pattern(pattern);
    for (const auto& entry : entries) {
      if (entry.route.method == method && same_shape(entry.segments, segments)) {
        throw std::invalid_argument("duplicate route " + std::string(to_string(method)) + " " +
                                    std::string(pattern));
      }
    }
    entries.push_back(Entry{Route{method, std::string(pattern), std::move(handler), entries.size()},
                            std::move(segments)});
  }
};

Router::Router() : impl_(std::make_unique<Impl>()) {}
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

void Router::add_async(Method method, std::string_view pattern, AsyncHandler handler,
                       Access access) {
  impl_->add(method, pattern, std::move(handler), access);
}

void Router::add(Method method, std::string_view pattern, SyncHandler handler,
                 Execution execution, Access access) {
  if (!handler) {
    throw std::invalid_argument("empty handler for route " + std::string(pattern));
  }
  if (execution == Execution::io) {
    impl_->add(method, pattern,
               [handler = std::move(handler), translator = impl_->translator](
                   Request&& request, Responder responder) {
                 responder.send(call_sync(handler, request, *translator));
               },
               access);
    return;
  }
  // Shared, not copied into each task: a handler's captures can be anything.
  auto shared_handler = std::make_shared<const SyncHandler>(std::move(handler));
  impl_->add(method, pattern,
             [handler = std::move(shared_handler), executor = impl_->blocking,
              translator = impl_->translator](Request&& request, Responder responder) {
               auto task = [handler, translator, request = std::move(request), responder] {
                 responder.send(call_sync(*handler, request, *translator));
               };
               // Without a server (a router used on its own) there is no pool: run inline.
               if (*executor) {
                 (*executor)(std::move(task));
               } else {
                 task();
               }
             },
             access);
}

std::size_t Router::size() const { return impl_->entries.size(); }

void Router::set_guard(Guard guard) { *impl_->guard = std::move(guard); }

void Router::set_error_translator(ErrorTranslator translator) {
  *impl_->translator = std::move(translator);
}

void Router::set_blocking_executor(BlockingExecutor executor) {
  *impl_->blocking = std::move(executor);
}

Router::Match Router::match(Method method, std::string_view path) const {
  Match result;
  const auto decoded = decode_segments(path);
  if (!decoded) {
    return result;
  }
  const Impl::Entry* best = nullptr;
  const Impl::Entry* best_get = nullptr;
  auto consider = [](const Impl::Entry*& current, const Impl::Entry& candidate) {
    if (current == nullptr || more_specific(candidate.segments, current->segments)) {
      current = &candidate;
    }
  };
  // The methods of every matching route, one bit per Method value; turned into the 405's
  // list only when it is needed.
  unsigned allowed = 0;
  for (const auto& entry : impl_->entries) {
    if (!segments_match(entry.segments, *decoded)) {
      continue;
    }
    allowed |= 1U << static_cast<unsigned>(entry.route.method);
    if (entry.route.method == method) {
      consider(best, entry);
    } else if (method == Method::head && entry.route.method == Method::get) {
      consider(best_get, entry);
    }
  }
  if (best == nullptr) {
    best = best_get;
  }
  if (best == nullptr) {
    if (allowed != 0) {
      result.kind = MatchKind::method_not_allowed;
      if ((allowed & (1U << static_cast<unsigned>(Method::get))) != 0) {
        allowed |= 1U << static_cast<unsigned>(Method::head);
      }
      // In Method's order, each once.
      for (unsigned bit = 0; bit <= static_cast<unsigned>(Method::other); ++bit) {
        if ((allowed & (1U << bit)) != 0) {
          result.allowed.push_back(static_cast<Method>(bit));
        }
      }
    }
    return result;
  }
  result.kind = MatchKind::found;
  result.route = &best->route;
  for (std::size_t i = 0; i < best->segments.size(); ++i) {
    if (best->segments[i].is_param) {
      result.params.emplace_back(best->segments[i].text, std::string(decoded->segments[i]));
    }
  }
  return result;
}

}  // namespace notifs::messaging::http
