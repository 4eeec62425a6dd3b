#include "render_client.hpp"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/runtime/digest.hpp"

namespace notifs::worker {

namespace http = messaging::http;
using nlohmann::json;
using runtime::JoinResult;

namespace {

using Handle = std::shared_ptr<const RenderedTemplate>;
using Reason = std::shared_ptr<const std::string>;

constexpr std::size_t kMaxTemplateCodeChars = 64;

auto log() { return messaging::common::logger("notification_worker"); }

// What one upstream render produced, shared by every caller coalesced on it.
struct Fetched {
  RenderStatus status = RenderStatus::unavailable;
  Handle content;      // rendered
  std::string reason;  // unrenderable, unavailable
};

Fetched unavailable(std::string reason) {
  return Fetched{RenderStatus::unavailable, nullptr, std::move(reason)};
}

Fetched unrenderable(std::string reason) {
  return Fetched{RenderStatus::unrenderable, nullptr, std::move(reason)};
}

RenderResult result_of(RenderStatus status, Handle content, std::string reason) {
  RenderResult result;
  result.status = status;
  result.content = std::move(content);
  result.reason = std::move(reason);
  return result;
}

// template_service refuses any other code with a 400; checked here too because the code
// goes into the request path as it is.
bool is_template_code(std::string_view text) {
  return !text.empty() && text.size() <= kMaxTemplateCodeChars &&
         std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
                  c == '-';
         });
}

std::string quoted(const std::string& code) { return "template '" + code + "'"; }

// Failed renders are remembered for the cache's negative_ttl (a broken template met by a
// whole campaign costs one call per negative_ttl, not one per message) and never served
// stale: a fix publishes a new version, which the next fetch after negative_ttl renders.
runtime::LookupCacheSettings refusal_settings(runtime::LookupCacheSettings cache) {
  cache.ttl = cache.negative_ttl > std::chrono::milliseconds::zero() ? cache.negative_ttl
                                                                     : std::chrono::milliseconds{0};
  cache.stale_ttl = std::chrono::milliseconds{0};
  cache.negative_ttl = std::chrono::milliseconds{0};
  if (cache.ttl == std::chrono::milliseconds::zero()) {
    cache.max_entries = 0;
  }
  return cache;
}

// The cache and flight key. The header's ideal key is (code, locale, version used,
// variables), but the version used is only known once template_service has answered, so
// the key is (code, requested locale, digest of the variables) and the version travels in
// the cached value. Versions are immutable, so a cached render is a correct render of the
// version it names; the ttl bounds how long a newly published version waits. nlohmann
// keeps object members sorted, so the digest does not depend on the order the gateway's
// client wrote them in. The code is [a-z0-9_.-] (checked before), so ':' ends it.
std::string cache_key(const contract::NotificationJob& job) {
  const json keyed = json::array({job.locale, job.variables});
  const auto digest = runtime::sha256(keyed.dump(-1, ' ', false, json::error_handler_t::replace));
  return job.template_code + ":" + runtime::to_hex(digest);
}

struct ErrorBody {
  std::string code;
  std::string message;
  std::vector<std::string> fields;    // error.details[].field
  std::vector<std::string> problems;  // "field problem", for reasons
};

ErrorBody parse_error(const std::string& body) {
  ErrorBody out;
  const auto envelope = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!envelope.is_object()) {
    return out;
  }
  if (const auto message = envelope.find("message");
      message != envelope.end() && message->is_string()) {
    out.message = message->get<std::string>();
  }
  const auto error = envelope.find("error");
  if (error == envelope.end() || !error->is_object()) {
    return out;
  }
  if (const auto code = error->find("code"); code != error->end() && code->is_string()) {
    out.code = code->get<std::string>();
  }
  if (const auto details = error->find("details"); details != error->end() && details->is_array()) {
    for (const auto& detail : *details) {
      if (!detail.is_object()) {
        continue;
      }
      const auto field = detail.find("field");
      const auto problem = detail.find("problem");
      if (field != detail.end() && field->is_string()) {
        out.fields.push_back(field->get<std::string>());
        out.problems.push_back(field->get<std::string>() +
                               (problem != detail.end() && problem->is_string()
                                    ? " " + problem->get<std::string>()
                                    : std::string{}));
      }
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) {
    out += (out.empty() ? "" : ", ") + item;
  }
  return out;
}

// "validation_failed: the render body is invalid (locale must be ...)".
std::string describe(const ErrorBody& error) {
  std::string out = error.code.empty() ? std::string("no error code") : error.code;
  if (!error.message.empty()) {
    out += ": " + error.message;
  }
  if (!error.problems.empty()) {
    out += " (" + join(error.problems) + ")";
  }
  return out;
}

bool read_string(const json& object, const char* name, std::string& out, std::string& error) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_string()) {
    error = std::string(name) + " is missing or not a string";
    return false;
  }
  out = it->get<std::string>();
  return true;
}

// The envelope data of a 2xx render answer; nullopt with `error` set when it is not the
// shape template_route's render promises.
std::optional<RenderedTemplate> parse_rendered(const std::string& body, const std::string& code,
                                               std::string& error) {
  const auto envelope = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!envelope.is_object() || !envelope.contains("data") || !envelope["data"].is_object()) {
    error = "the answer is not an envelope with a data object";
    return std::nullopt;
  }
  const json& data = envelope["data"];
  RenderedTemplate out;
  if (!read_string(data, "code", out.code, error) ||
      !read_string(data, "channel", out.channel, error) ||
      !read_string(data, "locale", out.locale, error)) {
    error = "data." + error;
    return std::nullopt;
  }
  if (out.code != code) {
    error = "data.code is '" + out.code + "', not the code asked for";
    return std::nullopt;
  }
  const auto version = data.find("version");
  if (version == data.end() || !version->is_number_integer() || version->get<std::int64_t>() < 1 ||
      version->get<std::int64_t>() > std::numeric_limits<int>::max()) {
    error = "data.version is missing or not a positive integer";
    return std::nullopt;
  }
  out.version = version->get<int>();
  const auto rendered = data.find("rendered");
  if (rendered == data.end() || !rendered->is_object()) {
    error = "data.rendered is missing or not an object";
    return std::nullopt;
  }
  if (out.channel == "email") {
    if (!read_string(*rendered, "subject", out.subject, error) ||
        !read_string(*rendered, "body", out.body, error)) {
      error = "data.rendered." + error;
      return std::nullopt;
    }
    const auto html = rendered->find("html_body");
    if (html != rendered->end() && !html->is_null()) {
      if (!html->is_string()) {
        error = "data.rendered.html_body is not a string or null";
        return std::nullopt;
      }
      out.html_body = html->get<std::string>();
    }
  } else if (out.channel == "push") {
    if (!read_string(*rendered, "title", out.title, error) ||
        !read_string(*rendered, "body", out.body, error)) {
      error = "data.rendered." + error;
      return std::nullopt;
    }
  } else {
    error = "data.channel '" + out.channel + "' is neither email nor push";
    return std::nullopt;
  }
  return out;
}

// One table from template_service's answers to what a notification can make of them.
Fetched interpret(const http::ClientResult& result, const std::string& upstream,
                  const std::string& code) {
  if (!result) {
    std::string reason = upstream + " unavailable: " + result.error.message();
    if (!result.detail.empty()) {
      reason += " (" + result.detail + ")";
    }
    return unavailable(std::move(reason));
  }
  const auto& response = result.response;
  const unsigned status = response.status;
  if (status >= 200 && status < 300) {
    std::string error;
    auto rendered = parse_rendered(response.body, code, error);
    if (!rendered) {
      log()->warn("malformed render answer upstream={} code={} err={}", upstream, code, error);
      return unavailable(upstream + " sent a malformed render answer: " + error);
    }
    Fetched out;
    out.status = RenderStatus::rendered;
    out.content = std::make_shared<const RenderedTemplate>(std::move(*rendered));
    return out;
  }
  const auto error = parse_error(response.body);
  if (status == 404) {
    if (error.code == "template_not_found" || error.code == "version_not_found") {
      return unrenderable(quoted(code) + " cannot render: not found (" + describe(error) + ")");
    }
    // Not the service's own "no such template": a wrong base URL or a proxy. Every
    // notification would fail for good on a configuration mistake, so it is transient.
    return unavailable(upstream + " answered 404 with code '" + error.code + "'");
  }
  if (status == 422) {
    if (error.code == "missing_variables") {
      return unrenderable(quoted(code) + " cannot render: missing variables: " +
                          (error.fields.empty() ? error.message : join(error.fields)));
    }
    return unrenderable(quoted(code) + " cannot render: " + describe(error));
  }
  if (status == 401 || status == 403) {
    // Our SERVICE_TOKEN is wrong: fixing the configuration makes the same render succeed.
    return unavailable(upstream + " refused our credentials (" + std::to_string(status) + " " +
                       describe(error) + ")");
  }
  if (status == 408 || status == 429 || status >= 500) {
    return unavailable(upstream + " answered " + std::to_string(status));
  }
  if (status >= 400) {
    // 400 (a locale or code it refuses), 413 (variables over its body limit) and the like:
    // the same request can never succeed.
    return unrenderable(quoted(code) + " cannot render: " + upstream + " answered " +
                        std::to_string(status) + " " + describe(error));
  }
  return unavailable(upstream + " answered " + std::to_string(status));
}

}  // namespace

struct RenderClient::State {
  State(http::ServiceClient& templates, const messaging::common::Clock& clock,
        const RenderClientSettings& settings)
      : client(templates),
        rendered(settings.cache, clock),
        refused(refusal_settings(settings.cache), clock),
        flights(settings.flights) {}

  http::ServiceClient& client;
  runtime::LookupCache<Handle> rendered;
  runtime::LookupCache<Reason> refused;
  runtime::SingleFlight<std::string, Fetched> flights;

  // Answers one caller. A cached render may be of the other channel's template (a code
  // belongs to one channel, and an email and a push job may name the same code), so the
  // check is per caller. A stale render stands in for an upstream failure: it is a correct
  // render of the version it names.
  static void deliver(const Fetched& fetched, const Handle& stale, const std::string& channel,
                      const Callback& callback) {
    switch (fetched.status) {
      case RenderStatus::rendered:
        answer_rendered(fetched.content, channel, callback);
        return;
      case RenderStatus::unrenderable:
        callback(result_of(RenderStatus::unrenderable, nullptr, fetched.reason));
        return;
      case RenderStatus::unavailable:
        break;
    }
    if (stale) {
      answer_rendered(stale, channel, callback);
      return;
    }
    callback(result_of(RenderStatus::unavailable, nullptr, fetched.reason));
  }

  static void answer_rendered(const Handle& content, const std::string& channel,
                              const Callback& callback) {
    if (content->channel != channel) {
      callback(result_of(RenderStatus::unrenderable, nullptr,
                         quoted(content->code) + " is a " + content->channel + " template; a " +
                             channel + " notification cannot use it"));
      return;
    }
    callback(result_of(RenderStatus::rendered, content, {}));
  }

  void render(const std::shared_ptr<State>& self, const contract::NotificationJob& job,
              Callback callback) {
    if (!callback) {
      throw std::invalid_argument("template renderer: render() needs a callback");
    }
    const auto& code = job.template_code;
    if (!is_template_code(code)) {
      callback(result_of(RenderStatus::unrenderable, nullptr,
                         "template code '" + code + "' is not a valid template code"));
      return;
    }
    auto key = cache_key(job);
    auto cached = rendered.lookup(key);
    if (cached.fresh()) {
      answer_rendered(*cached.value, job.notification_type, callback);
      return;
    }
    if (auto reason = refused.lookup(key); reason.fresh()) {
      callback(result_of(RenderStatus::unrenderable, nullptr, **reason.value));
      return;
    }
    Handle stale = cached.stale() ? std::move(*cached.value) : nullptr;
    // Waiters live in this State's SingleFlight, so they point at it rather than own it.
    const auto joined = flights.join(
        key, [stale, channel = job.notification_type, callback](const Fetched& fetched) {
          deliver(fetched, stale, channel, callback);
        });
    if (joined == JoinResult::queued) {
      return;
    }
    if (joined == JoinResult::overflow) {
      deliver(unavailable("template render refused: too many notifications waiting for " +
                          quoted(code)),
              stale, job.notification_type, callback);
      return;
    }

    json body = {{"variables", job.variables}};
    if (!job.locale.empty()) {
      body["locale"] = job.locale;
    }
    http::ClientRequest request;
    request.method = http::Method::post;
    request.target = "/api/v1/templates/" + code + "/render";
    request.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    // The render is a pure function of its input, so every attempt may be sent again.
    request.retryable = true;
    http::CallContext context;
    context.request_id = job.notification_id;
    try {
      client.async_call(
          std::move(request), std::move(context), [self, key, code](http::ClientResult result) {
            auto fetched = interpret(result, self->client.settings().name, code);
            try {
              if (fetched.status == RenderStatus::rendered) {
                self->rendered.put(key, fetched.content);
                self->refused.erase(key);
              } else if (fetched.status == RenderStatus::unrenderable) {
                self->refused.put(key, std::make_shared<const std::string>(fetched.reason));
                // A stale render of a template now gone must not be served.
                self->rendered.erase(key);
              }
            } catch (const std::exception& error) {
              // The answer still serves the callers waiting on it.
              log()->warn("render cache store failed code={} err={}", code, error.what());
            }
            self->flights.complete(key, fetched);
          });
    } catch (const std::exception& error) {
      // The leader must complete what it joined, or every waiter on the key hangs.
      flights.complete(
          key, unavailable(client.settings().name + " render could not start: " + error.what()));
    }
  }
};

RenderClient::RenderClient(http::ServiceClient& templates,
                                   const messaging::common::Clock& clock,
                                   RenderClientSettings settings)
    : state_(std::make_shared<State>(templates, clock, settings)) {}

RenderClient::~RenderClient() {
  try {
    state_->flights.complete_all(unavailable("template renderer shutting down"));
  } catch (const std::exception& error) {
    log()->warn("template renderer shutdown: a render callback threw err={}", error.what());
  }
}

void RenderClient::render(const contract::NotificationJob& job, Callback callback) {
  state_->render(state_, job, std::move(callback));
}

runtime::LookupCacheStats RenderClient::cache_stats() const { return state_->rendered.stats(); }

}  // namespace notifs::worker
