#include "http/server_errors.hpp"

#include <exception>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"

namespace notifs::messaging::http::detail {

namespace {

Response internal_error() {
  return error_response(500, "internal_error", "the server failed to handle the request");
}

}  // namespace

Response response_for_current_exception(const Request& request) noexcept {
  try {
    try {
      throw;
    } catch (const HttpError& error) {
      return error.to_response();
    } catch (const std::exception& error) {
      common::logger("http")->error(
          "handler threw method={} target={} request_id={} error={}", to_string(request.method),
          request.target, request.request_id, error.what());
      return internal_error();
    } catch (...) {
      common::logger("http")->error("handler threw a non-exception method={} request_id={}",
                                    to_string(request.method), request.request_id);
      return internal_error();
    }
  } catch (...) {
    // Building the answer itself failed (out of memory): a bare 500 still beats a hang.
    Response response;
    response.status = 500;
    return response;
  }
}

}  // namespace notifs::messaging::http::detail
