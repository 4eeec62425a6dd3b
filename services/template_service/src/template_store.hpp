#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "notifs/runtime/pagination.hpp"
#include "notifs/storage/pg_pool.hpp"
#include "template_model.hpp"
#include "template_validation.hpp"

namespace notifs::template_service {

// A stored version together with what it was found as.
struct FoundVersion {
  TemplateVersion stored;
  std::int32_t latest_version = 0;  // newest version of stored.locale, at the time of reading
};

struct TemplateSummary {
  std::string code;
  Channel channel = Channel::email;
  std::vector<std::pair<std::string, std::int32_t>> locales;  // (locale, latest_version), by locale
  std::string created_at;
  std::string updated_at;
};

struct TemplatePage {
  std::vector<TemplateSummary> items;
  std::int64_t total = 0;
};

struct VersionSummary {
  std::string locale;
  std::int32_t version = 0;
  std::string created_at;
};

struct VersionPage {
  std::vector<VersionSummary> items;
  std::int64_t total = 0;
};

// All of template_service's SQL. Every statement is prepared once per connection by
// prepare_statements (install it as PgPoolSettings::on_connect); parameters are always
// bound, never spliced into SQL. Reads are one statement each (no BEGIN/COMMIT); writes
// run in a transaction that locks the code's row, which serializes concurrent creates and
// new versions of one code (so two concurrent PUTs get different numbers).
//
// Every method blocks on the database: call it from a worker thread. Throws TemplateError
// for what contradicts the stored state, messaging::http::HttpError 400 for fields that do
// not suit the code's channel, storage::StorageUnavailable / StorageInDoubt when
// PostgreSQL cannot answer. Thread-safe (the pool is).
class TemplateStore {
 public:
  explicit TemplateStore(storage::PgPool& pool) : pool_(pool) {}

  static void prepare_statements(pqxx::connection_base& connection);

  // Version 1 of (code, locale). TemplateError template_exists when the code already has
  // that locale, channel_mismatch when the code belongs to the other channel.
  TemplateVersion create(const NewTemplate& input);
  // The next version of (code, locale). TemplateError template_not_found when the code is
  // unknown or has no version of that locale yet, channel_mismatch when `input` names the
  // other channel.
  TemplateVersion add_version(const std::string& code, const NewVersion& input);
  // The newest (or the named) version of `locale`, or of en when `locale` has none.
  // TemplateError template_not_found (unknown code, or neither locale has a version),
  // version_not_found (the locale exists but not that version).
  FoundVersion find(const std::string& code, const std::string& locale,
                    std::optional<std::int32_t> version);
  // Ordered by code.
  TemplatePage list(std::optional<Channel> channel, const runtime::PageRequest& page);
  // Ordered by locale, then newest version first. template_not_found for an unknown code.
  VersionPage list_versions(const std::string& code, const std::optional<std::string>& locale,
                            const runtime::PageRequest& page);

 private:
  storage::PgPool& pool_;
};

}  // namespace notifs::template_service
