#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "notifs/messaging/http/message.hpp"

namespace notifs::messaging::http {

// One problem with one field of a request: {"field": "user_id", "problem": "must be a UUID"}.
struct FieldProblem {
  std::string field;
  std::string problem;
};

// Pagination meta of a list response, per CONTRACT.md.
struct PageMeta {
  std::int64_t total = 0;
  std::int64_t limit = 20;
  std::int64_t page = 1;

  nlohmann::json to_json() const;
};

// The contract's envelope: {"success", "data", "error", "message", "meta"}.
nlohmann::json success_envelope(nlohmann::json data, std::string message = "ok",
                                nlohmann::json meta = nullptr);
nlohmann::json error_envelope(std::string_view code, std::string message,
                              const std::vector<FieldProblem>& details = {});

Response ok_response(unsigned status, nlohmann::json data, std::string message = "ok",
                     nlohmann::json meta = nullptr);
Response error_response(unsigned status, std::string_view code, std::string message,
                        const std::vector<FieldProblem>& details = {});

// Thrown by a handler to answer with a contract error; the server turns it into the
// envelope. Anything else a handler throws is a bug in the handler and becomes a logged
// 500 `internal_error`, never a crash or a hang.
class HttpError : public std::runtime_error {
 public:
  HttpError(unsigned status, std::string code, std::string message,
            std::vector<FieldProblem> details = {});

  unsigned status() const { return status_; }
  const std::string& code() const { return code_; }
  const std::vector<FieldProblem>& details() const { return details_; }
  // Extra headers for the answer, e.g. Retry-After on 503 and 429.
  Headers& headers() { return headers_; }
  const Headers& headers() const { return headers_; }

  Response to_response() const;

 private:
  unsigned status_;
  std::string code_;
  std::vector<FieldProblem> details_;
  Headers headers_;
};

// Parses a JSON request body; throws HttpError 400 `invalid_json` with the parser's
// position, or 400 `validation_failed` when the top level is not an object.
nlohmann::json parse_json_object(const Request& request);

}  // namespace notifs::messaging::http
