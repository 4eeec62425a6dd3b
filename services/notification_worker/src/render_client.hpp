#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "notifs/contract/notification_job.hpp"
#include "notifs/messaging/common/clock.hpp"
#include "notifs/messaging/http/service_client.hpp"
#include "notifs/runtime/lookup_cache.hpp"
#include "notifs/runtime/single_flight.hpp"

namespace notifs::worker {

// A template rendered for one notification (template_service
// POST /api/v1/templates/{code}/render, envelope data). Email templates fill subject, body
// and maybe html_body; push templates fill title and body.
struct RenderedTemplate {
  std::string code;
  std::string channel;  // "email" | "push", as the service answered
  std::string locale;   // the locale the service used (it falls back to "en")
  int version = 0;
  std::string subject;
  std::string title;
  std::string body;
  std::optional<std::string> html_body;
};

enum class RenderStatus {
  rendered,      // `content` is set
  unrenderable,  // permanent: template gone (404), missing variables (422), wrong channel
  unavailable,   // transient: template_service down, breaker open, timeout, 5xx
};

struct RenderResult {
  RenderStatus status = RenderStatus::unavailable;
  std::shared_ptr<const RenderedTemplate> content;  // set exactly when rendered
  // unrenderable/unavailable: why, for the status event and the dead letter, e.g.
  // "template 'welcome' cannot render: missing variables: name, plan" or
  // "template_service unavailable: circuit open".
  std::string reason;
};

struct RenderClientSettings {
  // Renders are cached by (code, requested locale, digest of the variables), the version
  // used kept with the render (it is only known once the service answered): the same
  // notification sent to many users with the same variables renders once. Versions are
  // immutable, so a cached render is never wrong; ttl bounds how long a newly published
  // version waits to be picked up; a render past ttl stands in (stale_ttl) only while
  // template_service fails. Unrenderable answers are remembered for negative_ttl.
  runtime::LookupCacheSettings cache{};
  runtime::SingleFlightSettings flights{};
};

// Renders notifications through template_service's render endpoint (ServiceClient: breaker,
// retries, deadline), with a cache and coalescing of concurrent identical renders.
// Thread-safe; render() never blocks and calls back exactly once, on a client thread or
// inline on a cache hit.
class RenderClient {
 public:
  using Callback = std::function<void(RenderResult result)>;

  RenderClient(messaging::http::ServiceClient& templates, const messaging::common::Clock& clock,
                   RenderClientSettings settings = {});
  ~RenderClient();
  RenderClient(const RenderClient&) = delete;
  RenderClient& operator=(const RenderClient&) = delete;

  // A render whose channel differs from job.notification_type is unrenderable.
  void render(const contract::NotificationJob& job, Callback callback);

  runtime::LookupCacheStats cache_stats() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace notifs::worker
