#pragma once

#include <string>

// Timestamps leave PostgreSQL already formatted as the API shows them, RFC 3339 in UTC
// with milliseconds ("2026-11-29T19:20:00.123Z"), so no service parses or formats time
// zones itself.

// For SQL written as string literals: NOTIFS_SQL_RFC3339_MS("created_at").
#define NOTIFS_SQL_RFC3339_MS_TAIL " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define NOTIFS_SQL_RFC3339_MS(column) "to_char(" column NOTIFS_SQL_RFC3339_MS_TAIL

namespace notifs::storage {

// The same for SQL assembled at start from constants (never from input).
inline std::string rfc3339_ms_sql(const std::string& column) {
  return "to_char(" + column + NOTIFS_SQL_RFC3339_MS_TAIL;
}

}  // namespace notifs::storage
