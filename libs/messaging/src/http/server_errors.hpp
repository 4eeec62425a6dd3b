#pragma once

#include "notifs/messaging/http/message.hpp"

namespace notifs::messaging::http::detail {

// The one table from what a handler threw to what the client gets: HttpError keeps its
// status, code, details and headers; anything else is a handler bug, logged with the
// request id, and answered with 500 `internal_error` (no internals leak to the client).
// Call only inside a catch block.
Response response_for_current_exception(const Request& request) noexcept;

}  // namespace notifs::messaging::http::detail
