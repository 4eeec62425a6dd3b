#include "user_routes.hpp"

#include <string>
#include <utility>

#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/pagination.hpp"
#include "user_validation.hpp"

namespace notifs::user_service {

namespace http = messaging::http;
using http::Execution;
using http::Method;
using http::Request;
using http::Response;

namespace {

constexpr std::string_view kUsers = "/api/v1/users";
constexpr std::string_view kUser = "/api/v1/users/{id}";
constexpr std::string_view kPreferences = "/api/v1/users/{id}/preferences";
constexpr std::string_view kPushTokens = "/api/v1/users/{id}/push_tokens";
constexpr std::string_view kPushToken = "/api/v1/users/{id}/push_tokens/{token}";

[[noreturn]] void user_not_found(const std::string& id) {
  throw http::HttpError(404, "user_not_found", "no user with id " + id);
}

[[noreturn]] void email_taken() {
  throw http::HttpError(409, "email_taken", "another user already has this email",
                        {{"email", "is already taken"}});
}

User found_or_404(std::optional<User> user, const std::string& id) {
  if (!user) {
    user_not_found(id);
  }
  return std::move(*user);
}

nlohmann::json push_tokens_json(const User& user) {
  return nlohmann::json{{"id", user.id}, {"push_tokens", user.push_tokens}};
}

std::string user_id(const Request& request) { return parse_user_id(request.path_param("id")); }

}  // namespace

void add_user_routes(http::Router& router, UserRepository& repository) {
  UserRepository* users = &repository;

  router.add(
      Method::post, kUsers,
      [users](const Request& request) {
        const auto input = parse_new_user(http::parse_json_object(request));
        try {
          return http::ok_response(201, to_json(users->create(input)), "user created");
        } catch (const EmailTaken&) {
          email_taken();
        }
      },
      Execution::blocking);

  router.add(
      Method::get, kUsers,
      [users](const Request& request) {
        const auto page_request = runtime::parse_page_request(request);
        const auto page = users->list(page_request.limit, page_request.offset());
        nlohmann::json data = nlohmann::json::array();
        for (const auto& user : page.users) {
          data.push_back(to_json(user));
        }
        const http::PageMeta meta{page.total, page_request.limit, page_request.page};
        return http::ok_response(200, std::move(data), "ok", meta.to_json());
      },
      Execution::blocking);

  router.add(
      Method::get, kUser,
      [users](const Request& request) {
        const auto id = user_id(request);
        return http::ok_response(200, to_json(found_or_404(users->find(id), id)));
      },
      Execution::blocking);

  router.add(
      Method::patch, kUser,
      [users](const Request& request) {
        const auto id = user_id(request);
        const auto patch = parse_user_patch(http::parse_json_object(request));
        try {
          return http::ok_response(200, to_json(found_or_404(users->update(id, patch), id)),
                                   "user updated");
        } catch (const EmailTaken&) {
          email_taken();
        }
      },
      Execution::blocking);

  router.add(
      Method::delete_, kUser,
      [users](const Request& request) {
        const auto id = user_id(request);
        if (!users->remove(id)) {
          user_not_found(id);
        }
        return http::ok_response(200, nlohmann::json{{"id", id}, {"deleted", true}},
                                 "user deleted");
      },
      Execution::blocking);

  router.add(
      Method::get, kPreferences,
      [users](const Request& request) {
        const auto id = user_id(request);
        return http::ok_response(200, to_json(found_or_404(users->find(id), id).preferences));
      },
      Execution::blocking);

  router.add(
      Method::put, kPreferences,
      [users](const Request& request) {
        const auto id = user_id(request);
        const auto preferences = parse_preferences_replacement(http::parse_json_object(request));
        const auto user = found_or_404(users->replace_preferences(id, preferences), id);
        return http::ok_response(200, to_json(user.preferences), "preferences updated");
      },
      Execution::blocking);

  router.add(
      Method::post, kPushTokens,
      [users](const Request& request) {
        const auto id = user_id(request);
        const auto token = parse_push_token_body(http::parse_json_object(request));
        std::optional<PushTokenAdded> result;
        try {
          result = users->add_push_token(id, token);
        } catch (const TooManyPushTokens&) {
          throw http::HttpError(
              409, "too_many_push_tokens",
              "the user already has " + std::to_string(kMaxPushTokens) + " push tokens",
              {{"token", "cannot be added: remove a token first"}});
        }
        if (!result) {
          user_not_found(id);
        }
        return result->added
                   ? http::ok_response(201, push_tokens_json(result->user), "push token added")
                   : http::ok_response(200, push_tokens_json(result->user),
                                       "push token already registered");
      },
      Execution::blocking);

  router.add(
      Method::delete_, kPushToken,
      [users](const Request& request) {
        const auto id = user_id(request);
        const auto token = parse_push_token_param(request.path_param("token"));
        auto removal = users->remove_push_token(id, token);
        switch (removal.outcome) {
          case PushTokenRemoval::Outcome::removed:
            break;
          case PushTokenRemoval::Outcome::user_not_found:
            user_not_found(id);
          case PushTokenRemoval::Outcome::token_not_found:
            throw http::HttpError(404, "push_token_not_found", "the user has no such push token");
        }
        return http::ok_response(200, push_tokens_json(removal.user), "push token removed");
      },
      Execution::blocking);
}

}  // namespace notifs::user_service
