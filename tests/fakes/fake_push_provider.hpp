#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "notifs/messaging/http/message.hpp"

namespace notifs::fakes {

// One answer of the fake push provider, in the FCM HTTP v1 shapes.
struct PushReply {
  unsigned status = 200;
  std::string body;                        // sent as is (JSON)
  std::optional<std::string> retry_after;  // Retry-After header value

  static PushReply ok();  // 200 {"name": "projects/<project>/messages/<n>"}
  static PushReply rate_limited(std::string retry_after_seconds);  // 429 QUOTA_EXCEEDED + Retry-After
  static PushReply server_error(unsigned status = 500);            // INTERNAL / UNAVAILABLE
  static PushReply unregistered();                     // 404 NOT_FOUND, errorCode UNREGISTERED
  static PushReply invalid_argument(std::string message);  // 400 INVALID_ARGUMENT
  // Any status with a body that is not an FCM error (a proxy's page, a wrong path).
  static PushReply plain(unsigned status, std::string body);
};

// One request as the fake received it.
struct RecordedPush {
  std::string method;
  std::string target;
  messaging::http::Headers headers;
  std::string body;
  std::string token;  // message.token from the body; empty when the body does not have one
};

// A local FCM-style push provider for tests: our HttpServer on 127.0.0.1, port 0, serving
// POST /v1/projects/{project}/messages:send.
//
// Each request is recorded, then answered by the first scripted reply for its token (see
// script_for_token), else the next reply of the general script (FIFO), else the default
// (200 unless set). Per-token scripts make answers deterministic when a sender sends
// several tokens at once.
//
// Thread-safe: the test scripts and inspects while the server's io threads serve.
class FakePushProvider {
 public:
  explicit FakePushProvider(std::string project = "fake-project");
  ~FakePushProvider();
  FakePushProvider(const FakePushProvider&) = delete;
  FakePushProvider& operator=(const FakePushProvider&) = delete;

  std::uint16_t port() const;
  // The whole endpoint, as PUSH_PROVIDER_URL names it.
  std::string url() const;

  void push(PushReply reply);
  void script_for_token(const std::string& token, PushReply reply);
  void set_default(PushReply reply);

  std::vector<RecordedPush> requests() const;
  std::size_t request_count() const;
  // Requests whose message.token is `token`.
  std::size_t request_count(const std::string& token) const;
  bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace notifs::fakes
