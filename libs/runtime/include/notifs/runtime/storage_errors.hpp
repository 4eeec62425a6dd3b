#pragma once

#include <exception>
#include <optional>

#include "notifs/messaging/http/message.hpp"

namespace notifs::runtime {

// A Router::ErrorTranslator for services on PostgreSQL: storage::StorageUnavailable and
// storage::StorageInDoubt become 503 `database_unavailable` with `Retry-After: 1` (and a
// warning log line); anything else is left to the default table (nullopt).
std::optional<messaging::http::Response> translate_storage_error(const std::exception& error);

}  // namespace notifs::runtime
