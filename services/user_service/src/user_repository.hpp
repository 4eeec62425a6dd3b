#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "notifs/storage/pg_pool.hpp"
#include "user.hpp"
#include "user_validation.hpp"

namespace notifs::user_service {

// Another user already has this email (compared case-insensitively).
class EmailTaken : public std::runtime_error {
 public:
  EmailTaken() : std::runtime_error("email is taken") {}
};

// The user already has kMaxPushTokens tokens.
class TooManyPushTokens : public std::runtime_error {
 public:
  TooManyPushTokens() : std::runtime_error("too many push tokens") {}
};

struct UserPage {
  std::vector<User> users;
  std::int64_t total = 0;  // users in the table, for the page meta
};

struct PushTokenAdded {
  User user;
  bool added = false;  // false: the user already had it, nothing changed
};

struct PushTokenRemoval {
  enum class Outcome { removed, user_not_found, token_not_found };
  Outcome outcome = Outcome::user_not_found;
  User user;  // after the removal (only when removed)
};

// All of user_service's SQL. Every statement is prepared once per connection by
// prepare_statements (install it as PgPoolSettings::on_connect); parameters are always
// bound, never spliced into SQL. Reads run without BEGIN/COMMIT (one statement, one
// round trip); writes run in a transaction, so that a COMMIT lost with the connection is
// reported as storage::StorageInDoubt rather than silently retried.
//
// Ids are canonical lowercase UUIDs (see parse_user_id). Every method blocks on the
// database: call it from a worker thread. Throws storage::StorageUnavailable /
// StorageInDoubt when PostgreSQL cannot answer. Thread-safe (the pool is).
class UserRepository {
 public:
  explicit UserRepository(storage::PgPool& pool) : pool_(pool) {}

  static void prepare_statements(pqxx::connection_base& connection);

  // Throws EmailTaken.
  User create(const NewUser& user);
  std::optional<User> find(const std::string& id);
  // nullopt: no such user. Throws EmailTaken.
  std::optional<User> update(const std::string& id, const UserPatch& patch);
  // false: no such user.
  bool remove(const std::string& id);
  // Ordered by (created_at, id), so pages do not shift between requests.
  UserPage list(std::int64_t limit, std::int64_t offset);
  std::optional<User> replace_preferences(const std::string& id, const Preferences& preferences);
  // nullopt: no such user. Throws TooManyPushTokens.
  std::optional<PushTokenAdded> add_push_token(const std::string& id, const std::string& token);
  PushTokenRemoval remove_push_token(const std::string& id, const std::string& token);

 private:
  storage::PgPool& pool_;
};

}  // namespace notifs::user_service
