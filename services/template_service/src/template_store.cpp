#include "template_store.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include <stdexcept>
#include <utility>

#include "notifs/storage/sql_time.hpp"

namespace notifs::template_service {

namespace {

constexpr const char* kInsertTemplate = "templates_insert";
constexpr const char* kLockTemplate = "templates_lock";
constexpr const char* kTouchTemplate = "templates_touch";
constexpr const char* kInsertVersion = "template_versions_insert";
constexpr const char* kLatestVersion = "template_versions_latest";
constexpr const char* kFind = "templates_find";
constexpr const char* kList = "templates_list";
constexpr const char* kListVersions = "template_versions_list";

Channel channel_of(const pqxx::field& field) {
  const auto channel = channel_from_string(field.c_str());
  if (!channel) {
    // The table's CHECK constraint makes this impossible; say what was found if not.
    throw std::runtime_error("templates.channel holds an unknown channel: " +
                             std::string(field.c_str()));
  }
  return *channel;
}

std::optional<std::string> optional_text(const pqxx::field& field) {
  if (field.is_null()) {
    return std::nullopt;
  }
  return std::string(field.c_str(), field.size());
}

std::string text(const pqxx::field& field) { return std::string(field.c_str(), field.size()); }

std::optional<std::string> if_channel(Channel channel, Channel wanted, const std::string& value) {
  if (channel != wanted) {
    return std::nullopt;
  }
  return value;
}

// Inserts version `number` of (code, locale) and returns it; nullopt when that version
// already exists.
std::optional<TemplateVersion> insert_version(pqxx::work& tx, const std::string& code,
                                              Channel channel, const std::string& locale,
                                              std::int32_t number, const TemplateContent& content) {
  const auto result = tx.exec_prepared(
      kInsertVersion, code, locale, number, if_channel(channel, Channel::email, content.subject),
      content.body, channel == Channel::email ? content.html_body : std::nullopt,
      if_channel(channel, Channel::push, content.title));
  if (result.empty()) {
    return std::nullopt;
  }
  TemplateVersion stored;
  stored.code = code;
  stored.channel = channel;
  stored.locale = locale;
  stored.version = number;
  stored.content = content;
  if (channel == Channel::email) {
    stored.content.title.clear();
  } else {
    stored.content.subject.clear();
    stored.content.html_body.reset();
  }
  stored.created_at = text(result[0][0]);
  return stored;
}

std::string mismatch_message(const std::string& code, Channel stored) {
  return "template '" + code + "' is a " + std::string(to_string(stored)) + " template";
}

}  // namespace

void TemplateStore::prepare_statements(pqxx::connection_base& connection) {
  connection.prepare(kInsertTemplate,
                     "INSERT INTO templates (code, channel) VALUES ($1, $2) "
                     "ON CONFLICT (code) DO NOTHING RETURNING channel");
  connection.prepare(kLockTemplate, "SELECT channel FROM templates WHERE code = $1 FOR UPDATE");
  connection.prepare(kTouchTemplate, "UPDATE templates SET updated_at = now() WHERE code = $1");
  connection.prepare(kInsertVersion,
                     "INSERT INTO template_versions "
                     "(code, locale, version, subject, body, html_body, title) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                     "ON CONFLICT (code, locale, version) DO NOTHING "
                     "RETURNING " NOTIFS_SQL_RFC3339_MS("created_at"));
  connection.prepare(kLatestVersion,
                     "SELECT max(version) FROM template_versions WHERE code = $1 AND locale = $2");
  // The locale that answers is the one asked for when it has a version 1 (every locale
  // that exists has one: versions start at 1 and are never deleted), else en. Then the
  // named version of it, or its newest. No row: unknown code; no locale: neither exists;
  // no version: that locale lacks the named one.
  connection.prepare(
      kFind,
      "WITH t AS (SELECT channel FROM templates WHERE code = $1), "
      "l AS (SELECT locale FROM template_versions "
      "      WHERE code = $1 AND version = 1 AND locale IN ($2, 'en') "
      "      ORDER BY locale = $2 DESC LIMIT 1) "
      "SELECT t.channel, l.locale, "
      "  (SELECT max(m.version) FROM template_versions m "
      "   WHERE m.code = $1 AND m.locale = l.locale), "
      "  v.version, v.subject, v.body, v.html_body, v.title, " NOTIFS_SQL_RFC3339_MS("v.created_at") " "
      "FROM t LEFT JOIN l ON true "
      "LEFT JOIN LATERAL (SELECT * FROM template_versions v "
      "  WHERE v.code = $1 AND v.locale = l.locale AND ($3::integer IS NULL OR v.version = $3) "
      "  ORDER BY v.version DESC LIMIT 1) v ON true");
  // The total rides along with the page (a LEFT JOIN keeps it when the page is empty), so
  // a list is one statement and one consistent snapshot.
  connection.prepare(
      kList,
      "WITH filtered AS (SELECT * FROM templates WHERE ($1::text IS NULL OR channel = $1)), "
      "total AS (SELECT count(*) AS n FROM filtered), "
      "page AS (SELECT * FROM filtered ORDER BY code LIMIT $2 OFFSET $3) "
      "SELECT total.n, page.code, page.channel, " NOTIFS_SQL_RFC3339_MS("page.created_at") ", "
      NOTIFS_SQL_RFC3339_MS("page.updated_at") ", "
      "  (SELECT coalesce(json_agg(json_build_array(x.locale, x.latest) ORDER BY x.locale), '[]') "
      "   FROM (SELECT locale, max(version) AS latest FROM template_versions v "
      "         WHERE v.code = page.code GROUP BY locale) x) "
      "FROM total LEFT JOIN page ON true ORDER BY page.code");
  connection.prepare(
      kListVersions,
      "WITH filtered AS (SELECT locale, version, created_at FROM template_versions "
      "                  WHERE code = $1 AND ($2::text IS NULL OR locale = $2)), "
      "total AS (SELECT count(*) AS n FROM filtered), "
      "page AS (SELECT * FROM filtered ORDER BY locale, version DESC LIMIT $3 OFFSET $4) "
      "SELECT EXISTS (SELECT 1 FROM templates WHERE code = $1), total.n, page.locale, "
      "  page.version, " NOTIFS_SQL_RFC3339_MS("page.created_at") " "
      "FROM total LEFT JOIN page ON true ORDER BY page.locale, page.version DESC");
}

TemplateVersion TemplateStore::create(const NewTemplate& input) {
  auto stored = pool_.run([&](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    // A concurrent create of the same code waits here for the first one's COMMIT, then
    // finds the row; either way the code's row is locked for the rest of the transaction.
    auto channel_row =
        tx.exec_prepared(kInsertTemplate, input.code, std::string(to_string(input.channel)));
    const bool new_code = !channel_row.empty();
    if (!new_code) {
      channel_row = tx.exec_prepared(kLockTemplate, input.code);
    }
    if (channel_row.empty()) {
      // Inserted and deleted by someone else in between: nothing deletes templates, but
      // say so rather than dereference nothing.
      throw std::runtime_error("template row vanished while creating " + input.code);
    }
    const Channel stored_channel = channel_of(channel_row[0][0]);
    if (stored_channel != input.channel) {
      throw TemplateError(
          TemplateError::Kind::channel_mismatch,
          mismatch_message(input.code, stored_channel) + "; a code belongs to one channel");
    }
    auto version = insert_version(tx, input.code, input.channel, input.locale, 1, input.content);
    if (!version) {
      throw TemplateError(TemplateError::Kind::template_exists,
                          "template '" + input.code + "' already has locale '" + input.locale +
                              "'; add a version with PUT /api/v1/templates/" + input.code);
    }
    if (!new_code) {
      tx.exec_prepared(kTouchTemplate, input.code);
    }
    tx.commit();
    return std::move(*version);
  });
  return stored;
}

TemplateVersion TemplateStore::add_version(const std::string& code, const NewVersion& input) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::work tx(connection);
    // The row lock makes concurrent PUTs of one code take turns, so each reads the
    // newest number the previous one wrote.
    const auto channel_row = tx.exec_prepared(kLockTemplate, code);
    if (channel_row.empty()) {
      throw TemplateError(
          TemplateError::Kind::template_not_found,
          "template '" + code + "' does not exist; create it with POST /api/v1/templates");
    }
    const Channel channel = channel_of(channel_row[0][0]);
    if (input.channel && *input.channel != channel) {
      throw TemplateError(
          TemplateError::Kind::channel_mismatch,
          mismatch_message(code, channel) + ", not " + std::string(to_string(*input.channel)));
    }
    const TemplateContent content = content_for_channel(channel, input.content);
    const auto latest = tx.exec_prepared(kLatestVersion, code, input.locale);
    if (latest.empty() || latest[0][0].is_null()) {
      throw TemplateError(TemplateError::Kind::template_not_found,
                          "template '" + code + "' has no locale '" + input.locale +
                              "' yet; create its version 1 with POST /api/v1/templates");
    }
    const auto next = latest[0][0].as<std::int32_t>() + 1;
    auto version = insert_version(tx, code, channel, input.locale, next, content);
    if (!version) {
      // Impossible under the row lock; a conflict would mean the lock did not hold.
      throw std::runtime_error("version " + std::to_string(next) + " of " + code + "/" +
                               input.locale + " appeared under the row lock");
    }
    tx.exec_prepared(kTouchTemplate, code);
    tx.commit();
    return std::move(*version);
  });
}

FoundVersion TemplateStore::find(const std::string& code, const std::string& locale,
                                 std::optional<std::int32_t> version) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    const auto result = tx.exec_prepared(kFind, code, locale, version);
    if (result.empty()) {
      throw TemplateError(TemplateError::Kind::template_not_found,
                          "template '" + code + "' does not exist");
    }
    const auto row = result[0];
    if (row[1].is_null()) {
      throw TemplateError(TemplateError::Kind::template_not_found,
                          "template '" + code + "' has no version in locale '" + locale +
                              "' nor in '" + std::string(kDefaultLocale) + "'");
    }
    if (row[3].is_null()) {
      throw TemplateError(TemplateError::Kind::version_not_found,
                          "template '" + code + "' has no version " +
                              std::to_string(version.value_or(0)) + " in locale '" + text(row[1]) +
                              "'");
    }
    FoundVersion found;
    auto& stored = found.stored;
    stored.code = code;
    stored.channel = channel_of(row[0]);
    stored.locale = text(row[1]);
    found.latest_version = row[2].as<std::int32_t>();
    stored.version = row[3].as<std::int32_t>();
    stored.content.subject = optional_text(row[4]).value_or("");
    stored.content.body = text(row[5]);
    stored.content.html_body = optional_text(row[6]);
    stored.content.title = optional_text(row[7]).value_or("");
    stored.created_at = text(row[8]);
    return found;
  });
}

TemplatePage TemplateStore::list(std::optional<Channel> channel, const runtime::PageRequest& page) {
  std::optional<std::string> channel_text;
  if (channel) {
    channel_text = std::string(to_string(*channel));
  }
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    const auto result = tx.exec_prepared(kList, channel_text, page.limit, page.offset());
    TemplatePage out;
    for (const auto& row : result) {
      out.total = row[0].as<std::int64_t>();
      if (row[1].is_null()) {
        continue;  // the page is past the end: only the total came back
      }
      TemplateSummary summary;
      summary.code = text(row[1]);
      summary.channel = channel_of(row[2]);
      summary.created_at = text(row[3]);
      summary.updated_at = text(row[4]);
      for (const auto& pair : nlohmann::json::parse(row[5].c_str())) {
        summary.locales.emplace_back(pair.at(0).get<std::string>(), pair.at(1).get<std::int32_t>());
      }
      out.items.push_back(std::move(summary));
    }
    return out;
  });
}

VersionPage TemplateStore::list_versions(const std::string& code,
                                         const std::optional<std::string>& locale,
                                         const runtime::PageRequest& page) {
  return pool_.run([&](pqxx::connection_base& connection) {
    pqxx::nontransaction tx(connection);
    const auto result = tx.exec_prepared(kListVersions, code, locale, page.limit, page.offset());
    if (result.empty() || !result[0][0].as<bool>()) {
      throw TemplateError(TemplateError::Kind::template_not_found,
                          "template '" + code + "' does not exist");
    }
    VersionPage out;
    for (const auto& row : result) {
      out.total = row[1].as<std::int64_t>();
      if (row[2].is_null()) {
        continue;
      }
      out.items.push_back({text(row[2]), row[3].as<std::int32_t>(), text(row[4])});
    }
    return out;
  });
}

}  // namespace notifs::template_service
