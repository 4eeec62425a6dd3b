#include "push_sender.hpp"

#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker {

namespace http = messaging::http;

namespace {

constexpr std::size_t kDetailLimit = 300;

// Status events carry the detail; keep it one bounded line whatever the provider sent.
std::string one_line(std::string text) {
  for (auto& c : text) {
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  }
  if (text.size() > kDetailLimit) {
    text.resize(kDetailLimit);
    text += "...";
  }
  return text;
}

// Device tokens identify a person's phone: logs get a prefix, enough to correlate.
std::string masked(std::string_view token) {
  constexpr std::size_t kShown = 6;
  if (token.size() <= kShown) return std::string(token.size(), '*');
  return std::string(token.substr(0, kShown)) + "...";
}

// The fields of an FCM v1 error body that decide what happened:
// {"error": {"code", "message", "status", "details": [{"@type": "...FcmError", "errorCode"}]}}.
struct FcmError {
  bool present = false;
  std::string status;      // google.rpc code name: "NOT_FOUND", "INVALID_ARGUMENT", ...
  std::string error_code;  // FCM's own: "UNREGISTERED", "SENDER_ID_MISMATCH", ...
  std::string message;
};

std::string string_field(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

FcmError parse_fcm_error(const std::string& body) {
  FcmError out;
  const auto json = nlohmann::json::parse(body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return out;
  const auto error = json.find("error");
  if (error == json.end() || !error->is_object()) return out;
  out.status = string_field(*error, "status");
  out.message = string_field(*error, "message");
  if (const auto details = error->find("details"); details != error->end() && details->is_array()) {
    for (const auto& detail : *details) {
      if (!detail.is_object()) continue;
      out.error_code = string_field(detail, "errorCode");
      if (!out.error_code.empty()) break;
    }
  }
  out.present = !out.status.empty() || !out.error_code.empty();
  return out;
}

std::string describe(unsigned status, const FcmError& error) {
  std::string text = "HTTP " + std::to_string(status);
  if (!error.error_code.empty()) {
    text += " " + error.error_code;
  } else if (!error.status.empty()) {
    text += " " + error.status;
  }
  if (!error.message.empty()) text += ": " + error.message;
  return one_line(std::move(text));
}

// Splits "http(s)://authority/path?query" into the client's base URL and the request target.
std::pair<std::string, std::string> split_url(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    throw std::invalid_argument("push provider URL has no scheme: " + url);
  }
  const auto scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw std::invalid_argument("push provider URL must be http:// or https://: " + url);
  }
  const auto path_start = url.find('/', scheme_end + 3);
  if (path_start == std::string::npos || path_start == scheme_end + 3) {
    throw std::invalid_argument(
        "push provider URL needs a host and the endpoint path (e.g. /v1/projects/P/messages:send): " +
        url);
  }
  return {url.substr(0, path_start), url.substr(path_start)};
}

}  // namespace

std::vector<std::string> PushResult::unregistered_tokens() const {
  std::vector<std::string> out;
  for (const auto& report : tokens) {
    if (report.outcome.unregistered) out.push_back(report.token);
  }
  return out;
}

std::vector<std::string> PushResult::pending_tokens() const {
  std::vector<std::string> out;
  for (const auto& report : tokens) {
    if (report.outcome.result.outcome == SendOutcome::transient) out.push_back(report.token);
  }
  return out;
}

PushResult aggregate_push(std::vector<TokenReport> tokens) {
  PushResult out;
  out.tokens = std::move(tokens);
  const auto total = out.tokens.size();
  if (total == 0) {
    out.result = SendResult::permanent_failure("no push tokens");
    return out;
  }
  std::size_t delivered = 0;
  std::size_t transient = 0;
  std::size_t unregistered = 0;
  bool transient_fault = false;
  const SendResult* first_transient = nullptr;
  const SendResult* first_permanent = nullptr;
  for (const auto& report : out.tokens) {
    const auto& result = report.outcome.result;
    if (report.outcome.unregistered) ++unregistered;
    switch (result.outcome) {
      case SendOutcome::delivered:
        ++delivered;
        break;
      case SendOutcome::transient:
        ++transient;
        transient_fault = transient_fault || result.provider_fault;
        if (first_transient == nullptr) first_transient = &result;
        break;
      case SendOutcome::permanent:
        if (first_permanent == nullptr) first_permanent = &result;
        break;
    }
  }
  const auto of_total = [total](std::size_t n) {
    return std::to_string(n) + " of " + std::to_string(total) + " tokens";
  };
  std::string unregistered_note =
      unregistered > 0 ? " (" + std::to_string(unregistered) + " unregistered)" : std::string();
  if (transient > 0) {
    out.result = SendResult::transient_failure(
        of_total(transient) + " pending" + unregistered_note + ": " + first_transient->detail,
        transient_fault);
  } else if (delivered > 0) {
    out.result = SendResult::delivered_ok("delivered to " + of_total(delivered) + unregistered_note);
  } else if (total == 1) {
    out.result = SendResult::permanent_failure(first_permanent->detail);
  } else {
    out.result = SendResult::permanent_failure("all " + std::to_string(total) + " tokens failed" +
                                               unregistered_note + ", first: " +
                                               first_permanent->detail);
  }
  return out;
}

std::string fcm_request_body(const PushMessage& message, std::string_view token) {
  nlohmann::json data = nlohmann::json::object();
  for (const auto& [key, value] : message.data) data[key] = value;
  data["notification_id"] = message.notification_id;
  nlohmann::json body = {
      {"message",
       {{"token", std::string(token)},
        {"notification", {{"title", message.title}, {"body", message.body}}},
        {"data", std::move(data)}}}};
  // Replace rather than throw on invalid UTF-8: a bad byte in a rendered template must not
  // crash the io thread; the provider will answer what it makes of it.
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

TokenOutcome classify_push_response(const http::ClientResult& result) {
  if (result.error) {
    const bool ours = result.error == http::ClientErrc::shutting_down;
    std::string detail = "push provider unreachable: " + result.error.message();
    if (!result.detail.empty()) detail += ": " + result.detail;
    auto outcome = SendResult::transient_failure(one_line(std::move(detail)), !ours);
    // Nothing left this process when the client's breaker refused the call, nor when its
    // only attempt failed to connect (refused, DNS, TLS handshake). After several attempts
    // the last one's connect failure says nothing about the earlier ones: one of them may
    // have timed out after the provider took the request.
    outcome.nothing_sent = result.error == http::ClientErrc::circuit_open ||
                           (result.error == http::ClientErrc::connect_failed &&
                            result.response.attempts <= 1);
    return {std::move(outcome), false};
  }
  const auto status = result.response.status;
  if (status >= 200 && status < 300) {
    std::string name;
    const auto json = nlohmann::json::parse(result.response.body, nullptr, false);
    if (!json.is_discarded() && json.is_object()) name = string_field(json, "name");
    return {SendResult::delivered_ok(one_line(name.empty() ? "HTTP " + std::to_string(status) : name)),
            false};
  }
  const auto error = parse_fcm_error(result.response.body);
  const auto detail = describe(status, error);
  const bool gone = error.error_code == "UNREGISTERED" || error.status == "UNREGISTERED" ||
                    (status == 404 && error.status == "NOT_FOUND");
  if (gone) return {SendResult::permanent_failure(detail), true};
  if (status == 404) {
    return {SendResult::transient_failure(
                detail + " (no FCM error in the answer: is the provider URL right?)", true),
            false};
  }
  if (status == 408 || status == 429) return {SendResult::transient_failure(detail, false), false};
  if (status >= 500) return {SendResult::transient_failure(detail, true), false};
  if ((status == 401 || status == 403) && error.error_code != "SENDER_ID_MISMATCH") {
    // Our credentials were refused: nothing wrong with the message, and another provider
    // (or a rotated token) can take it.
    return {SendResult::transient_failure(detail, true), false};
  }
  if (status >= 400) return {SendResult::permanent_failure(detail), false};
  return {SendResult::transient_failure(detail + " (unexpected answer)", true), false};
}

PushSender::PushSender(PushSenderSettings settings, std::shared_ptr<prometheus::Registry> registry,
                       const messaging::common::Clock& clock)
    : name_(settings.name) {
  auto [base_url, target] = split_url(settings.url);
  target_ = std::move(target);
  auto client = std::move(settings.client);
  client.name = settings.name;
  client.base_url = std::move(base_url);
  client.service_token = std::move(settings.token);
  client_ = std::make_unique<http::ServiceClient>(std::move(client), std::move(registry), clock);
}

PushSender::~PushSender() = default;

void PushSender::send(const PushDelivery& delivery, Callback callback) {
  if (!delivery.message) throw std::invalid_argument("push delivery without a message");
  http::ClientRequest request;
  request.method = http::Method::post;
  request.target = target_;
  request.body = fcm_request_body(*delivery.message, delivery.token);
  // Each token's request gets its own X-Request-ID (the client makes one): a provider that
  // de-duplicates on it must not take the second token's request for a retry of the first.
  http::CallContext context{{}, delivery.message->traceparent};
  client_->async_call(
      std::move(request), std::move(context),
      [callback = std::move(callback), name = name_, message = delivery.message,
       token = delivery.token](http::ClientResult result) {
        auto outcome = classify_push_response(result);
        if (outcome.result.outcome != SendOutcome::delivered) {
          messaging::common::logger("worker")->info(
              "push not delivered provider={} notification_id={} token={} attempts={} "
              "unregistered={} err={}",
              name, message->notification_id, masked(token), result.response.attempts,
              outcome.unregistered, outcome.result.detail);
        }
        callback(std::move(outcome));
      });
}

void PushSender::send_all(std::shared_ptr<const PushMessage> message, AllCallback callback) {
  send_to_each_token(
      std::move(message),
      [this](const PushDelivery& delivery, Callback done) { send(delivery, std::move(done)); },
      std::move(callback));
}

const std::string& PushSender::name() const { return name_; }

messaging::resilience::BreakerState PushSender::breaker_state() const {
  return client_->breaker_state();
}

void send_to_each_token(std::shared_ptr<const PushMessage> message,
                        const TokenSendFunction& send_one, PushSender::AllCallback done) {
  struct FanOut {
    std::mutex mutex;
    std::vector<TokenReport> reports;
    std::size_t left = 0;
    PushSender::AllCallback done;
  };
  if (!message) throw std::invalid_argument("send_to_each_token without a message");
  auto state = std::make_shared<FanOut>();
  state->done = std::move(done);

  // The same device listed twice would get the notification twice.
  std::vector<std::string> tokens;
  std::set<std::string_view> seen;
  for (const auto& token : message->tokens) {
    if (seen.insert(token).second) tokens.push_back(token);
  }
  if (tokens.empty()) {
    state->done(aggregate_push({}));
    return;
  }
  state->reports.resize(tokens.size());
  state->left = tokens.size();
  for (std::size_t i = 0; i < tokens.size(); ++i) state->reports[i].token = tokens[i];

  for (std::size_t i = 0; i < tokens.size(); ++i) {
    auto settled = std::make_shared<std::atomic<bool>>(false);
    auto complete = [state, i, settled](TokenOutcome outcome) {
      if (settled->exchange(true)) return;  // a send function that called back twice
      bool last = false;
      {
        std::lock_guard lock(state->mutex);
        state->reports[i].outcome = std::move(outcome);
        last = --state->left == 0;
      }
      if (last) state->done(aggregate_push(std::move(state->reports)));
    };
    if (tokens[i].empty()) {
      complete({SendResult::permanent_failure("empty device token"), false});
      continue;
    }
    try {
      send_one(PushDelivery{message, tokens[i]}, complete);
    } catch (const std::exception& error) {
      complete({SendResult::transient_failure(
                    one_line(std::string("push send could not start: ") + error.what()), true),
                false});
    }
  }
}

}  // namespace notifs::worker
