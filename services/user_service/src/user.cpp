#include "user.hpp"

namespace notifs::user_service {

nlohmann::json to_json(const Preferences& preferences) {
  return nlohmann::json{{"email", preferences.email}, {"push", preferences.push}};
}

nlohmann::json to_json(const User& user) {
  return nlohmann::json{
      {"id", user.id},
      {"name", user.name},
      {"email", user.email},
      {"push_tokens", user.push_tokens},
      {"preferences", to_json(user.preferences)},
      {"locale", user.locale},
      {"created_at", user.created_at},
      {"updated_at", user.updated_at},
  };
}

}  // namespace notifs::user_service
