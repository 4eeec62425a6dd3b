#include "push_token_registry.hpp"

#include <exception>
#include <memory>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/percent_encoding.hpp"

namespace notifs::worker {

namespace http = messaging::http;

namespace {

constexpr std::size_t kTokenPrefixChars = 8;

auto log() { return messaging::common::logger("notification_worker"); }

// A device token is a credential to reach someone's phone: logs get its first characters
// only, and nothing that could break a log line.
std::string token_prefix(std::string_view token) {
  std::string out;
  for (std::size_t i = 0; i < token.size() && i < kTokenPrefixChars; ++i) {
    const auto byte = static_cast<unsigned char>(token[i]);
    out.push_back(byte > 0x20 && byte < 0x7F ? token[i] : '?');
  }
  return out + "...";
}

// user_service's error code in a 404 envelope, or "" when the body is not one.
std::string error_code(const std::string& body) {
  const auto envelope = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!envelope.is_object()) {
    return {};
  }
  const auto error = envelope.find("error");
  if (error == envelope.end() || !error->is_object()) {
    return {};
  }
  const auto code = error->find("code");
  return code != error->end() && code->is_string() ? code->get<std::string>() : std::string{};
}

// Whether the answer means the token is no longer the user's. A 404 counts only with
// user_service's own codes: a 404 from a wrong base URL ("route not found") would
// otherwise report every removal as done while none happens.
bool removal_confirmed(const http::ClientResponse& response, std::string& why) {
  if (response.status >= 200 && response.status < 300) {
    return true;
  }
  if (response.status == 404) {
    const auto code = error_code(response.body);
    if (code == "push_token_not_found" || code == "user_not_found") {
      return true;
    }
    why = "answered 404 with code '" + code + "'";
    return false;
  }
  why = "answered " + std::to_string(response.status);
  return false;
}

}  // namespace

PushTokenRegistry::PushTokenRegistry(http::ServiceClient& users) : users_(users) {}

void PushTokenRegistry::remove(const std::string& user_id, const std::string& token, Done done) {
  // Both go into the path encoded, and the user id into logs in that form too (a UUID reads
  // the same), so no input can forge a log line.
  auto user = http::percent_encode(user_id);
  http::ClientRequest request;
  request.method = http::Method::delete_;
  request.target = "/api/v1/users/" + user + "/push_tokens/" + http::percent_encode(token);
  // Shared with the error path below: async_call takes the callback before it can throw.
  auto reply = std::make_shared<Done>(std::move(done));
  auto finish = [upstream = users_.settings().name, user, prefix = token_prefix(token),
                 reply](http::ClientResult result) {
    bool removed = false;
    std::string why;
    if (!result) {
      why = result.error.message();
      if (!result.detail.empty()) {
        why += " (" + result.detail + ")";
      }
    } else {
      removed = removal_confirmed(result.response, why);
    }
    if (removed) {
      log()->info("push token removed user_id={} token={}", user, prefix);
    } else {
      log()->warn("push token removal failed upstream={} user_id={} token={} err={}", upstream,
                  user, prefix, why);
    }
    if (*reply) {
      (*reply)(removed);
    }
  };
  try {
    users_.async_call(std::move(request), {}, std::move(finish));
  } catch (const std::exception& error) {
    // Only a request that cannot be sent throws; best effort still answers the caller.
    log()->warn("push token removal not sent user_id={} token={} err={}", user, token_prefix(token),
                error.what());
    if (*reply) {
      (*reply)(false);
    }
  }
}

}  // namespace notifs::worker
