#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace notifs::storage {

class PgPool;

// One schema change. Versions are positive and strictly increasing; a migration once
// applied never changes (its checksum is recorded and compared at every start).
struct Migration {
  int version = 0;
  std::string name;  // e.g. "create_users"
  std::string sql;   // one or more statements, run in one transaction
};

// Something is wrong with the migrations themselves (not with the connection): an
// applied migration's text changed, versions out of order, a statement failed.
class MigrationError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct MigrationReport {
  std::vector<int> applied;  // versions applied by this call, in order
  int current_version = 0;   // the newest version recorded after the call
};

// Applies, in version order, every migration not yet recorded in the table
// `schema_migrations` of the connection's current schema (search_path), each in its own
// transaction together with its record. The whole run holds a session-level advisory
// lock derived from `lock_name` and the current schema, so replicas starting together
// apply each migration exactly once: the second waits, then finds nothing left to do.
// A recorded version this binary does not know (a newer replica migrated first) is
// logged and tolerated. Blocking. Throws MigrationError or StorageUnavailable.
MigrationReport apply_migrations(PgPool& pool, std::span<const Migration> migrations,
                                 std::string_view lock_name);

// A stable 64-bit checksum of a migration's text (FNV-1a), as recorded.
std::uint64_t migration_checksum(std::string_view sql);

}  // namespace notifs::storage
