// user_service's request parsers, fed what its routes feed them: a body through
// http::parse_json_object, or a path segment. Each either returns a value that passes the
// single checks it is built from or throws HttpError 400; nothing else.
//
// Input: one selector byte (which parser, modulo 6), then the body or path segment.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "user_validation.hpp"

namespace us = notifs::user_service;
namespace http = notifs::messaging::http;
using notifs::fuzz::check;

namespace {

void check_tokens(const std::vector<std::string>& tokens) {
  check(tokens.size() <= us::kMaxPushTokens, "at most kMaxPushTokens tokens");
  std::set<std::string> seen;
  for (const auto& token : tokens) {
    check(!us::push_token_problem(token), "every accepted token passes push_token_problem",
          token);
    check(seen.insert(token).second, "duplicate tokens are collapsed", token);
  }
}

void check_uuid(const std::string& id) {
  check(us::is_uuid(id) && id.find_first_of("ABCDEF") == std::string::npos,
        "parse_user_id returns a lower-case UUID", id);
}

void run(unsigned selector, const std::string& text) {
  http::Request request;
  request.method = http::Method::post;
  request.body = text;
  switch (selector % 6) {
    case 0: {
      const auto user = us::parse_new_user(http::parse_json_object(request));
      check(!us::name_problem(user.name), "new user: name valid", user.name);
      check(!us::email_problem(user.email), "new user: email valid", user.email);
      check(!us::locale_problem(user.locale), "new user: locale valid", user.locale);
      check(user.email.size() <= us::kMaxEmailBytes, "new user: email within 254 bytes");
      check_tokens(user.push_tokens);
      break;
    }
    case 1: {
      const auto patch = us::parse_user_patch(http::parse_json_object(request));
      check(patch.name || patch.email || patch.locale || patch.push_tokens ||
                patch.email_enabled || patch.push_enabled,
            "an empty patch is refused");
      check(!patch.name || !us::name_problem(*patch.name), "patch: name valid");
      check(!patch.email || !us::email_problem(*patch.email), "patch: email valid");
      check(!patch.locale || !us::locale_problem(*patch.locale), "patch: locale valid");
      if (patch.push_tokens) {
        check_tokens(*patch.push_tokens);
      }
      break;
    }
    case 2:
      us::parse_preferences_replacement(http::parse_json_object(request));
      break;
    case 3: {
      const auto token = us::parse_push_token_body(http::parse_json_object(request));
      check(!us::push_token_problem(token), "token body: token valid", token);
      break;
    }
    case 4:
      check_uuid(us::parse_user_id(text));
      break;
    default: {
      const auto token = us::parse_push_token_param(text);
      check(!us::push_token_problem(token), "token param: token valid", token);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const std::string text(notifs::fuzz::as_text(data + 1, size - 1));
  try {
    run(data[0], text);
  } catch (const http::HttpError& error) {
    check(error.status() == 400, "user_service parsers throw only 400s");
  } catch (...) {
    notifs::fuzz::fail_unexpected("user_service parser");
  }
  return 0;
}
