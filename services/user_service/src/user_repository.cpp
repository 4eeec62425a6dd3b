#include "user_repository.hpp"

#include <utility>

#include <pqxx/pqxx>

#include "notifs/storage/sql_time.hpp"

namespace notifs::user_service {

namespace {

// The columns every statement returning a user selects, in the order row_to_user reads
// them. PostgreSQL formats the timestamps (RFC 3339, UTC, milliseconds) and the token
// array (as JSON), so the service never parses its own date or array formats.
#define NOTIFS_USER_COLUMNS                                                          \
  "id::text, name, email, locale, array_to_json(push_tokens)::text, email_enabled, " \
  "push_enabled, "                                                                   \
  NOTIFS_SQL_RFC3339_MS("created_at") ", " NOTIFS_SQL_RFC3339_MS("updated_at")

// Shown (truncated to milliseconds) strictly later than the previous value even when
// two writes fall in one millisecond, so that a client comparing updated_at always sees
// a write.
#define NOTIFS_NEXT_UPDATED_AT       \
  "GREATEST(statement_timestamp(), " \
  "date_trunc('milliseconds', updated_at) + interval '1 millisecond')"

constexpr const char* kInsert = "user_insert";
constexpr const char* kSelect = "user_select";
constexpr const char* kUpdate = "user_update";
constexpr const char* kDelete = "user_delete";
constexpr const char* kList = "user_list";
constexpr const char* kSetPreferences = "user_set_preferences";
constexpr const char* kLockTokens = "user_lock_tokens";
constexpr const char* kAppendToken = "user_append_token";
constexpr const char* kRemoveToken = "user_remove_token";
constexpr const char* kExists = "user_exists";

// Every column a user row needs, counted from `first`.
User row_to_user(const pqxx::row& row, pqxx::row::size_type first = 0) {
  User user;
  user.id = row[first + 0].as<std::string>();
  user.name = row[first + 1].as<std::string>();
  user.email = row[first + 2].as<std::string>();
  user.locale = row[first + 3].as<std::string>();
  const auto tokens = nlohmann::json::parse(row[first + 4].c_str());
  user.push_tokens.reserve(tokens.size());
  for (const auto& token : tokens) {
    user.push_tokens.push_back(token.get<std::string>());
  }
  user.preferences.email = row[first + 5].as<bool>();
  user.preferences.push = row[first + 6].as<bool>();
  user.created_at = row[first + 7].as<std::string>();
  user.updated_at = row[first + 8].as<std::string>();
  return user;
}

// A PostgreSQL array literal of text, every element quoted so that no token can be read
// as NULL, a nested array or a separator: {"a","b\"c"}.
std::string text_array_literal(const std::vector<std::string>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) {
      out += ',';
    }
    out += '"';
    for (const char c : items[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
      }
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

// libpqxx 6 binds a null `const char*` as SQL NULL: the way an absent PATCH field says
// "keep the current value" to COALESCE.
const char* nullable(const std::optional<std::string>& text) {
  return text ? text->c_str() : nullptr;
}
const char* nullable(std::optional<bool> flag) {
  if (!flag) {
    return nullptr;
  }
  return *flag ? "true" : "false";
}

std::optional<User> single_user(const pqxx::result& result) {
  if (result.empty()) {
    return std::nullopt;
  }
  return row_to_user(result[0]);
}

}  // namespace

void UserRepository::prepare_statements(pqxx::connection_base& connection) {
  connection.prepare(kInsert,
                     "INSERT INTO users (name, email, locale, push_tokens, email_enabled, "
                     "push_enabled, created_at, updated_at) "
                     "VALUES ($1, $2, $3, $4::text[], $5, $6, statement_timestamp(), "
                     "statement_timestamp()) "
                     "RETURNING " NOTIFS_USER_COLUMNS);
  connection.prepare(kSelect, "SELECT " NOTIFS_USER_COLUMNS " FROM users WHERE id = $1::uuid");
  connection.prepare(kUpdate,
                     "UPDATE users SET "
                     "name = COALESCE($2, name), "
                     "email = COALESCE($3, email), "
                     "locale = COALESCE($4, locale), "
                     "push_tokens = COALESCE($5::text[], push_tokens), "
                     "email_enabled = COALESCE($6::boolean, email_enabled), "
                     "push_enabled = COALESCE($7::boolean, push_enabled), "
                     "updated_at = " NOTIFS_NEXT_UPDATED_AT
                     " WHERE id = $1::uuid RETURNING " NOTIFS_USER_COLUMNS);
  connection.prepare(kDelete, "DELETE FROM users WHERE id = $1::uuid RETURNING id");
  // One statement, one snapshot: the count and the page agree, and a page past the end
  // still yields the total (one row whose user columns are NULL).
  connection.prepare(kList,
                     "SELECT total.n, page.* FROM (SELECT count(*) AS n FROM users) AS total "
                     "LEFT JOIN LATERAL (SELECT " NOTIFS_USER_COLUMNS
                     ", created_at AS sort_created_at, id AS sort_id FROM users "
                     // Qualified: a bare `id` here would name the id::text output column.
                     "ORDER BY users.created_at, users.id LIMIT $1 OFFSET $2) AS page ON true "
                     "ORDER BY page.sort_created_at, page.sort_id");
  connection.prepare(kSetPreferences,
                     "UPDATE users SET email_enabled = $2, push_enabled = $3, "
                     "updated_at = " NOTIFS_NEXT_UPDATED_AT
                     " WHERE id = $1::uuid RETURNING " NOTIFS_USER_COLUMNS);
  // Locks the row so that concurrent adds of different tokens cannot both pass the
  // count check, nor two adds of one token both append it.
  connection.prepare(kLockTokens,
                     "SELECT $2 = ANY(push_tokens), cardinality(push_tokens) FROM users "
                     "WHERE id = $1::uuid FOR UPDATE");
  connection.prepare(kAppendToken,
                     "UPDATE users SET push_tokens = array_append(push_tokens, $2), "
                     "updated_at = " NOTIFS_NEXT_UPDATED_AT
                     " WHERE id = $1::uuid RETURNING " NOTIFS_USER_COLUMNS);
  connection.prepare(
      kRemoveToken,
      "UPDATE users SET push_tokens = array_remove(push_tokens, $2), "
      "updated_at = " NOTIFS_NEXT_UPDATED_AT
      " WHERE id = $1::uuid AND $2 = ANY(push_tokens) RETURNING " NOTIFS_USER_COLUMNS);
  connection.prepare(kExists, "SELECT 1 FROM users WHERE id = $1::uuid");
}

User UserRepository::create(const NewUser& user) {
  const std::string tokens = text_array_literal(user.push_tokens);
  try {
    return pool_.run([&](pqxx::connection_base& connection) {
      pqxx::work tx(connection);
      const auto result = tx.exec_prepared(kInsert, user.name, user.email, user.locale, tokens,
                                           user.preferences.email, user.preferences.push);
      tx.commit();
      return row_to_user(result.at(0));
    });
  } catch (const pqxx::unique_violation&) {
    // The only unique key a client controls is lower(email); ids come from
    // gen_random_uuid().
    throw EmailTaken();
  }
}

std::optional<User> UserRepository::find(const std::string& id) {
  return pool_.run([&](pqxx::connection_base& connection) {
    // One statement needs no BEGIN/COMMIT: a nontransaction is one round trip.
    pqxx::nontransaction tx(connection);
    return single_user(tx.exec_prepared(kSelect, id));
  });
}

std::optional<User> UserRepository::update(const std::string& id, const UserPatch& patch) {
  std::optional<std::string> tokens;
  if (patch.push_tokens) {
    tokens = text_array_literal(*patch.push_tokens);
  }
  try {
    return pool_.run([&](pqxx::connection_base& connection) {
      pqxx::work tx(connection);
      auto user = single_user(tx.exec_prepared(
          kUpdate, id, nullable(patch.name), nullable(patch.email), nullable(patch.locale),
          nullable(tokens), nullable(patch.email_enabled), nullable(patch.push_enabled)));
      tx.commit();
      return user;
    });
  } catch (const pqxx::unique_violation&) {
    throw EmailTaken();
  }
}

bool UserRepository::remove(const std::string& id) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    const bool removed = !tx.exec_prepared(kDelete, id).empty();
    tx.commit();
    return removed;
  });
}

UserPage UserRepository::list(std::int64_t limit, std::int64_t offset) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    const auto result = tx.exec_prepared(kList, limit, offset);
    UserPage page;
    page.users.reserve(result.size());
    for (const auto& row : result) {
      page.total = row[0].as<std::int64_t>();
      if (!row[1].is_null()) {
        page.users.push_back(row_to_user(row, 1));
      }
    }
    return page;
  });
}

std::optional<User> UserRepository::replace_preferences(const std::string& id,
                                                        const Preferences& preferences) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    auto user =
        single_user(tx.exec_prepared(kSetPreferences, id, preferences.email, preferences.push));
    tx.commit();
    return user;
  });
}

std::optional<PushTokenAdded> UserRepository::add_push_token(const std::string& id,
                                                             const std::string& token) {
  return pool_.run([&](pqxx::connection_base& connection) -> std::optional<PushTokenAdded> {
    pqxx::work tx(connection);
    const auto lock = tx.exec_prepared(kLockTokens, id, token);
    if (lock.empty()) {
      return std::nullopt;
    }
    if (lock[0][0].as<bool>()) {
      // Already there: nothing to write, so updated_at stays.
      auto user = single_user(tx.exec_prepared(kSelect, id));
      tx.commit();
      return PushTokenAdded{std::move(*user), false};
    }
    if (lock[0][1].as<std::size_t>() >= kMaxPushTokens) {
      throw TooManyPushTokens();
    }
    auto user = single_user(tx.exec_prepared(kAppendToken, id, token));
    tx.commit();
    return PushTokenAdded{std::move(*user), true};
  });
}

PushTokenRemoval UserRepository::remove_push_token(const std::string& id,
                                                   const std::string& token) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    PushTokenRemoval removal;
    if (auto user = single_user(tx.exec_prepared(kRemoveToken, id, token))) {
      removal.outcome = PushTokenRemoval::Outcome::removed;
      removal.user = std::move(*user);
    } else if (tx.exec_prepared(kExists, id).empty()) {
      removal.outcome = PushTokenRemoval::Outcome::user_not_found;
    } else {
      removal.outcome = PushTokenRemoval::Outcome::token_not_found;
    }
    tx.commit();
    return removal;
  });
}

}  // namespace notifs::user_service

#undef NOTIFS_USER_COLUMNS
#undef NOTIFS_NEXT_UPDATED_AT
