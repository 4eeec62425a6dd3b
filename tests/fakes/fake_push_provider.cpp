#include "fakes/fake_push_provider.hpp"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

#include <nlohmann/json.hpp>

#include "notifs/messaging/http/router.hpp"
#include "notifs/messaging/http/server.hpp"

namespace notifs::fakes {

namespace http = messaging::http;

namespace {

// FCM v1's error body: a google.rpc.Status plus an FcmError detail when FCM has a code.
std::string fcm_error(unsigned code, const std::string& status, const std::string& message,
                      const std::string& error_code = {}) {
  nlohmann::json error = {{"code", code}, {"message", message}, {"status", status}};
  if (!error_code.empty()) {
    error["details"] = nlohmann::json::array(
        {{{"@type", "type.googleapis.com/google.firebase.fcm.v1.FcmError"}, {"errorCode", error_code}}});
  }
  return nlohmann::json{{"error", error}}.dump();
}

}  // namespace

PushReply PushReply::ok() { return PushReply{200, {}, std::nullopt}; }

PushReply PushReply::rate_limited(std::string retry_after_seconds) {
  return PushReply{429,
                   fcm_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for this device",
                             "QUOTA_EXCEEDED"),
                   std::move(retry_after_seconds)};
}

PushReply PushReply::server_error(unsigned status) {
  return PushReply{status,
                   fcm_error(status, status == 503 ? "UNAVAILABLE" : "INTERNAL",
                             "The service is temporarily unavailable",
                             status == 503 ? "UNAVAILABLE" : "INTERNAL"),
                   std::nullopt};
}

PushReply PushReply::unregistered() {
  return PushReply{404, fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED"),
                   std::nullopt};
}

PushReply PushReply::invalid_argument(std::string message) {
  return PushReply{400, fcm_error(400, "INVALID_ARGUMENT", message, "INVALID_ARGUMENT"),
                   std::nullopt};
}

PushReply PushReply::plain(unsigned status, std::string body) {
  return PushReply{status, std::move(body), std::nullopt};
}

struct FakePushProvider::Impl {
  std::string project;

  mutable std::mutex mutex;
  mutable std::condition_variable arrived;
  std::map<std::string, std::deque<PushReply>> by_token;
  std::deque<PushReply> script;
  PushReply fallback = PushReply::ok();
  std::vector<RecordedPush> recorded;
  std::uint64_t message_ids = 0;

  std::unique_ptr<http::HttpServer> server;

  http::Response answer(const http::Request& request) {
    RecordedPush push;
    push.method = std::string(http::to_string(request.method));
    push.target = request.target;
    push.headers = request.headers;
    push.body = request.body;
    const auto json = nlohmann::json::parse(request.body, nullptr, false);
    if (!json.is_discarded() && json.is_object() && json.contains("message") &&
        json["message"].is_object() && json["message"].contains("token") &&
        json["message"]["token"].is_string()) {
      push.token = json["message"]["token"].get<std::string>();
    }

    PushReply reply;
    {
      std::lock_guard lock(mutex);
      if (auto it = by_token.find(push.token); it != by_token.end() && !it->second.empty()) {
        reply = std::move(it->second.front());
        it->second.pop_front();
      } else if (!script.empty()) {
        reply = std::move(script.front());
        script.pop_front();
      } else {
        reply = fallback;
      }
      if (reply.status == 200 && reply.body.empty()) {
        reply.body = nlohmann::json{{"name", "projects/" + project + "/messages/" +
                                                 std::to_string(++message_ids)}}
                         .dump();
      }
      recorded.push_back(std::move(push));
    }
    arrived.notify_all();

    http::Response response;
    response.status = reply.status;
    response.body = std::move(reply.body);
    if (reply.retry_after) response.headers.set("Retry-After", *reply.retry_after);
    return response;
  }
};

FakePushProvider::FakePushProvider(std::string project) : impl_(std::make_unique<Impl>()) {
  impl_->project = std::move(project);
  http::Router router;
  router.add(http::Method::post, "/v1/projects/{project}/messages:send",
             [impl = impl_.get()](const http::Request& request) { return impl->answer(request); });
  http::ServerSettings settings;
  settings.service_name = "fake-push-provider";
  settings.address = "127.0.0.1";
  settings.port = 0;
  settings.io_threads = 1;
  settings.blocking_threads = 1;
  settings.shutdown_grace = std::chrono::milliseconds(2000);
  impl_->server = std::make_unique<http::HttpServer>(settings, std::move(router), nullptr);
  impl_->server->start();
}

FakePushProvider::~FakePushProvider() { impl_->server->stop(); }

std::uint16_t FakePushProvider::port() const { return impl_->server->port(); }

std::string FakePushProvider::url() const {
  return "http://127.0.0.1:" + std::to_string(port()) + "/v1/projects/" + impl_->project +
         "/messages:send";
}

void FakePushProvider::push(PushReply reply) {
  std::lock_guard lock(impl_->mutex);
  impl_->script.push_back(std::move(reply));
}

void FakePushProvider::script_for_token(const std::string& token, PushReply reply) {
  std::lock_guard lock(impl_->mutex);
  impl_->by_token[token].push_back(std::move(reply));
}

void FakePushProvider::set_default(PushReply reply) {
  std::lock_guard lock(impl_->mutex);
  impl_->fallback = std::move(reply);
}

std::vector<RecordedPush> FakePushProvider::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded;
}

std::size_t FakePushProvider::request_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded.size();
}

std::size_t FakePushProvider::request_count(const std::string& token) const {
  std::lock_guard lock(impl_->mutex);
  std::size_t count = 0;
  for (const auto& push : impl_->recorded) count += push.token == token ? 1 : 0;
  return count;
}

bool FakePushProvider::wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->arrived.wait_for(lock, timeout, [&] { return impl_->recorded.size() >= count; });
}

}  // namespace notifs::fakes
