#include "directory.hpp"

#include <algorithm>
#include <cctype>
#include <exception>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/percent_encoding.hpp"

namespace notifs::api_gateway {

using runtime::LookupCache;
using runtime::JoinResult;
using runtime::SingleFlight;

namespace http = messaging::http;
using nlohmann::json;

namespace detail {

namespace {

// The envelope's `data` object of a 2xx answer, or null with `error` set.
const json* envelope_data(const json& envelope, std::string& error) {
  if (!envelope.is_object()) {
    error = "the answer is not a JSON envelope";
    return nullptr;
  }
  const auto it = envelope.find("data");
  if (it == envelope.end() || !it->is_object()) {
    error = "the envelope has no data object";
    return nullptr;
  }
  return &*it;
}

bool read_string(const json& object, const char* name, bool required, std::string& out,
                 std::string& error) {
  const auto it = object.find(name);
  if (it == object.end() || it->is_null()) {
    if (required) {
      error = std::string("data.") + name + " is missing";
      return false;
    }
    out.clear();
    return true;
  }
  if (!it->is_string()) {
    error = std::string("data.") + name + " is not a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

bool read_bool(const json& object, const char* path, const char* name, bool& out,
               std::string& error) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_boolean()) {
    error = std::string(path) + name + " is missing or not a boolean";
    return false;
  }
  out = it->get<bool>();
  return true;
}

}  // namespace

std::optional<UserSnapshot> parse_user(std::string_view body, std::string& error) {
  const auto envelope = json::parse(body, nullptr, false);
  const json* data = envelope_data(envelope, error);
  if (data == nullptr) {
    return std::nullopt;
  }
  UserSnapshot user;
  if (!read_string(*data, "id", true, user.id, error) ||
      !read_string(*data, "name", false, user.name, error) ||
      !read_string(*data, "email", false, user.email, error) ||
      !read_string(*data, "locale", false, user.locale, error)) {
    return std::nullopt;
  }
  if (const auto tokens = data->find("push_tokens"); tokens != data->end() && !tokens->is_null()) {
    if (!tokens->is_array()) {
      error = "data.push_tokens is not an array";
      return std::nullopt;
    }
    for (const auto& token : *tokens) {
      if (!token.is_string()) {
        error = "data.push_tokens holds a non-string";
        return std::nullopt;
      }
      user.push_tokens.push_back(token.get<std::string>());
    }
  }
  // No defaults for preferences: guessing "enabled" would send what a user turned off.
  const auto preferences = data->find("preferences");
  if (preferences == data->end() || !preferences->is_object()) {
    error = "data.preferences is missing or not an object";
    return std::nullopt;
  }
  if (!read_bool(*preferences, "data.preferences.", "email", user.email_enabled, error) ||
      !read_bool(*preferences, "data.preferences.", "push", user.push_enabled, error)) {
    return std::nullopt;
  }
  return user;
}

std::optional<TemplateSnapshot> parse_template(std::string_view body, std::string& error) {
  const auto envelope = json::parse(body, nullptr, false);
  const json* data = envelope_data(envelope, error);
  if (data == nullptr) {
    return std::nullopt;
  }
  TemplateSnapshot snapshot;
  if (!read_string(*data, "code", true, snapshot.code, error) ||
      !read_string(*data, "channel", true, snapshot.channel, error) ||
      !read_string(*data, "locale", true, snapshot.locale, error)) {
    return std::nullopt;
  }
  const auto version = data->find("version");
  if (version == data->end() || !version->is_number_integer() || version->get<long long>() < 1 ||
      version->get<long long>() > 0x7fffffff) {
    error = "data.version is missing or not a positive integer";
    return std::nullopt;
  }
  snapshot.version = version->get<int>();
  return snapshot;
}

}  // namespace detail

namespace {

// What one upstream fetch produced, shared by every caller coalesced on it.
template <typename Snapshot>
struct Fetched {
  enum class Kind : std::uint8_t { found, not_found, failed };
  Kind kind = Kind::failed;
  std::shared_ptr<const Snapshot> value;
  std::string reason;
};

template <typename Snapshot>
struct Side {
  using Handle = std::shared_ptr<const Snapshot>;

  Side(http::ServiceClient& upstream, const LookupCacheSettings& cache_settings,
       const SingleFlightSettings& flight_settings, const messaging::common::Clock& clock)
      : client(upstream), cache(cache_settings, clock), flights(flight_settings) {}

  http::ServiceClient& client;
  LookupCache<Handle> cache;
  SingleFlight<std::string, Fetched<Snapshot>> flights;
};

bool equal_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace

struct Directory::State {
  State(http::ServiceClient& user_client, http::ServiceClient& template_client,
        const messaging::common::Clock& clock, const DirectorySettings& settings)
      : users(user_client, settings.users, settings.flights, clock),
        templates(template_client, settings.templates, settings.flights, clock) {}

  Side<UserSnapshot> users;
  Side<TemplateSnapshot> templates;
  std::atomic<std::uint64_t> upstream_fetches{0};
  std::atomic<std::uint64_t> coalesced{0};
  std::atomic<std::uint64_t> stale_served{0};
  std::atomic<std::uint64_t> unavailable{0};
  std::atomic<std::uint64_t> overflows{0};

  // Answers one caller from a fetch's outcome, its own stale value standing in for a failure.
  template <typename Snapshot>
  void deliver(const Fetched<Snapshot>& fetched, const std::shared_ptr<const Snapshot>& stale,
               const Callback<Lookup<Snapshot>>& callback) {
    using Kind = typename Fetched<Snapshot>::Kind;
    switch (fetched.kind) {
      case Kind::found:
        callback(Lookup<Snapshot>::found(fetched.value));
        return;
      case Kind::not_found:
        callback(Lookup<Snapshot>::not_found());
        return;
      case Kind::failed:
        break;
    }
    if (stale) {
      stale_served.fetch_add(1, std::memory_order_relaxed);
      callback(Lookup<Snapshot>::found(stale, true, fetched.reason));
      return;
    }
    unavailable.fetch_add(1, std::memory_order_relaxed);
    callback(Lookup<Snapshot>::unavailable(fetched.reason));
  }

  // Turns the client's result into a fetch outcome. `parse` yields the snapshot of a 2xx
  // body or nullopt with the problem in its error argument.
  template <typename Snapshot, typename Parse>
  static Fetched<Snapshot> interpret(const http::ClientResult& result, const std::string& upstream,
                                     std::string_view not_found_code, const Parse& parse) {
    using Kind = typename Fetched<Snapshot>::Kind;
    Fetched<Snapshot> out;
    if (!result) {
      out.reason = upstream + " unavailable: " + result.error.message();
      if (!result.detail.empty()) {
        out.reason += " (" + result.detail + ")";
      }
      return out;
    }
    const auto& response = result.response;
    if (response.status >= 200 && response.status < 300) {
      std::string error;
      auto snapshot = parse(response.body, error);
      if (!snapshot) {
        out.reason = upstream + " sent a malformed answer: " + error;
        return out;
      }
      out.kind = Kind::found;
      out.value = std::make_shared<const Snapshot>(std::move(*snapshot));
      return out;
    }
    if (response.status == 404) {
      const auto envelope = json::parse(response.body, nullptr, false);
      std::string code;
      if (envelope.is_object()) {
        const auto error = envelope.find("error");
        if (error != envelope.end() && error->is_object()) {
          const auto found = error->find("code");
          if (found != error->end() && found->is_string()) {
            code = found->get<std::string>();
          }
        }
      }
      if (code == not_found_code) {
        out.kind = Kind::not_found;
        return out;
      }
      out.reason = upstream + " answered 404 with code '" + code + "'";
      return out;
    }
    out.reason = upstream + " answered " + std::to_string(response.status);
    return out;
  }

  template <typename Snapshot, typename Parse>
  void find(const std::shared_ptr<State>& self, Side<Snapshot>& side, std::string key,
            std::string target, std::string request_id, Callback<Lookup<Snapshot>> callback,
            std::string_view not_found_code, Parse parse) {
    if (!callback) {
      throw std::invalid_argument("directory: a lookup needs a callback");
    }
    auto cached = side.cache.lookup(key);
    if (cached.fresh()) {
      callback(Lookup<Snapshot>::found(std::move(*cached.value)));
      return;
    }
    if (cached.absent()) {
      callback(Lookup<Snapshot>::not_found());
      return;
    }
    std::shared_ptr<const Snapshot> stale = cached.stale() ? std::move(*cached.value) : nullptr;
    // Waiters live in this State's SingleFlight, so they point at it rather than own it.
    const auto joined = side.flights.join(
        key, [this, stale, callback](const Fetched<Snapshot>& fetched) {
          deliver(fetched, stale, callback);
        });
    if (joined == JoinResult::queued) {
      coalesced.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (joined == JoinResult::overflow) {
      overflows.fetch_add(1, std::memory_order_relaxed);
      Fetched<Snapshot> refused;
      refused.reason = side.client.settings().name + " lookup refused: too many callers waiting for key";
      deliver(refused, stale, callback);
      return;
    }
    upstream_fetches.fetch_add(1, std::memory_order_relaxed);
    http::ClientRequest request;
    request.method = http::Method::get;
    request.target = std::move(target);
    http::CallContext context;
    context.request_id = std::move(request_id);
    try {
      side.client.async_call(
          std::move(request), std::move(context),
          [self, &side, key, not_found_code, parse](http::ClientResult result) {
            auto fetched = interpret<Snapshot>(result, side.client.settings().name,
                                               not_found_code, parse);
            using Kind = typename Fetched<Snapshot>::Kind;
            try {
              if (fetched.kind == Kind::found) {
                side.cache.put(key, fetched.value);
              } else if (fetched.kind == Kind::not_found) {
                side.cache.put_absent(key);
              }
            } catch (const std::exception& error) {
              // The answer is still good for the callers waiting on it; only caching failed.
              messaging::common::logger("api_gateway")
                  ->warn("directory cache store failed key={} err={}", key, error.what());
            }
            side.flights.complete(key, fetched);
          });
    } catch (const std::exception& error) {
      // The leader must complete what it joined, or every waiter on the key hangs.
      Fetched<Snapshot> failed;
      failed.reason = side.client.settings().name + " call could not start: " + error.what();
      side.flights.complete(key, failed);
    }
  }
};

Directory::Directory(http::ServiceClient& users, http::ServiceClient& templates,
                     const messaging::common::Clock& clock, DirectorySettings settings)
    : state_(std::make_shared<State>(users, templates, clock, settings)) {}

Directory::~Directory() {
  try {
    Fetched<UserSnapshot> user_shutdown;
    user_shutdown.reason = "directory shutting down";
    state_->users.flights.complete_all(user_shutdown);
  } catch (const std::exception& error) {
    messaging::common::logger("api_gateway")
        ->warn("directory shutdown: a user lookup callback threw err={}", error.what());
  }
  try {
    Fetched<TemplateSnapshot> template_shutdown;
    template_shutdown.reason = "directory shutting down";
    state_->templates.flights.complete_all(template_shutdown);
  } catch (const std::exception& error) {
    messaging::common::logger("api_gateway")
        ->warn("directory shutdown: a template lookup callback threw err={}", error.what());
  }
}

void Directory::find_user(std::string id, std::string request_id, Callback<UserLookup> callback) {
  auto target = "/api/v1/users/" + http::percent_encode(id);
  const auto parse = [id](std::string_view body, std::string& error) {
    auto user = detail::parse_user(body, error);
    // An answer about another user must never be cached under this id.
    if (user && !equal_ignoring_case(user->id, id)) {
      error = "data.id is '" + user->id + "', not the id asked for";
      return std::optional<UserSnapshot>{};
    }
    return user;
  };
  std::string key = id;
  state_->find(state_, state_->users, std::move(key), std::move(target), std::move(request_id),
               std::move(callback), "user_not_found", parse);
}

void Directory::find_template(std::string code, std::string locale, std::string request_id,
                              Callback<TemplateLookup> callback) {
  auto target = "/api/v1/templates/" + http::percent_encode(code);
  if (!locale.empty()) {
    target += "?locale=" + http::percent_encode(locale);
  }
  // The target names code and locale unambiguously (both are encoded), so it is the key.
  std::string key = target;
  const auto parse = [code](std::string_view body, std::string& error) {
    auto found = detail::parse_template(body, error);
    if (found && found->code != code) {
      error = "data.code is '" + found->code + "', not the code asked for";
      return std::optional<TemplateSnapshot>{};
    }
    return found;
  };
  state_->find(state_, state_->templates, std::move(key), std::move(target),
               std::move(request_id), std::move(callback), "template_not_found", parse);
}

DirectoryStats Directory::stats() const {
  DirectoryStats out;
  out.users = state_->users.cache.stats();
  out.templates = state_->templates.cache.stats();
  out.upstream_fetches = state_->upstream_fetches.load(std::memory_order_relaxed);
  out.coalesced = state_->coalesced.load(std::memory_order_relaxed);
  out.stale_served = state_->stale_served.load(std::memory_order_relaxed);
  out.unavailable = state_->unavailable.load(std::memory_order_relaxed);
  out.overflows = state_->overflows.load(std::memory_order_relaxed);
  return out;
}

}  // namespace notifs::api_gateway
