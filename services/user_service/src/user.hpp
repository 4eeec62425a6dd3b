#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace notifs::user_service {

// Which channels a user accepts notifications on.
struct Preferences {
  bool email = true;
  bool push = true;
};

nlohmann::json to_json(const Preferences& preferences);

// One user as stored and as the API shows it. Timestamps are already RFC 3339 UTC with
// milliseconds ("2026-11-29T19:20:00.123Z"): PostgreSQL formats them in the query.
struct User {
  std::string id;  // canonical lowercase UUID
  std::string name;
  std::string email;  // as the user gave it; unique case-insensitively
  std::vector<std::string> push_tokens;
  Preferences preferences;
  std::string locale;
  std::string created_at;
  std::string updated_at;
};

// {"id","name","email","push_tokens":[],"preferences":{"email","push"},"locale",
//  "created_at","updated_at"}
nlohmann::json to_json(const User& user);

}  // namespace notifs::user_service
