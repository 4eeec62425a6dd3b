#include "notifs/runtime/storage_errors.hpp"

#include <string>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "notifs/storage/pg_pool.hpp"

namespace notifs::runtime {

namespace http = messaging::http;

namespace {

std::string_view reason_name(storage::StorageUnavailable::Reason reason) {
  switch (reason) {
    case storage::StorageUnavailable::Reason::pool_exhausted:
      return "pool_exhausted";
    case storage::StorageUnavailable::Reason::connect_failed:
      return "connect_failed";
    case storage::StorageUnavailable::Reason::connection_lost:
      return "connection_lost";
    case storage::StorageUnavailable::Reason::timeout:
      return "timeout";
  }
  return "unknown";
}

http::Response unavailable(std::string message) {
  auto response = http::error_response(503, "database_unavailable", std::move(message));
  // A second is enough for a busy pool to free a connection and short enough for a
  // restarted server; clients back off further on their own if it still fails.
  response.headers.set("Retry-After", "1");
  return response;
}

}  // namespace

std::optional<http::Response> translate_storage_error(const std::exception& error) {
  if (const auto* down = dynamic_cast<const storage::StorageUnavailable*>(&error)) {
    const auto reason = down->reason();
    messaging::common::logger("pg")->warn("answering 503 database_unavailable reason={} err={}",
                                          reason_name(reason), down->what());
    if (reason == storage::StorageUnavailable::Reason::pool_exhausted) {
      return unavailable("The database is busy; please retry shortly.");
    }
    return unavailable("The database is unavailable right now; please retry shortly.");
  }
  if (const auto* doubt = dynamic_cast<const storage::StorageInDoubt*>(&error)) {
    messaging::common::logger("pg")->warn(
        "answering 503 database_unavailable reason=commit_in_doubt err={}", doubt->what());
    return unavailable(
        "The database connection was lost while saving; the change may or may not have been "
        "applied. Retrying the same request is safe.");
  }
  return std::nullopt;
}

}  // namespace notifs::runtime
