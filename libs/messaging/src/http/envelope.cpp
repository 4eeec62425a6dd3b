#include "notifs/messaging/http/envelope.hpp"

#include "notifs/messaging/common/json_depth.hpp"

#include <algorithm>
#include <string>
#include <utility>

namespace notifs::messaging::http {

namespace {

// nlohmann's parser is iterative, but dump() and most code that walks a document recurse;
// a 64 KiB body of '[' would be 65536 frames deep. Real payloads are a few levels deep.
constexpr std::size_t kMaxJsonDepth = 64;


// Bodies echo client input (field names, values); invalid UTF-8 must not turn an error
// answer into an exception, so it is replaced rather than thrown on.
std::string serialize(const nlohmann::json& document) {
  return document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

nlohmann::json PageMeta::to_json() const {
  const std::int64_t total_pages = (limit > 0 && total > 0) ? (total + limit - 1) / limit : 0;
  return nlohmann::json{
      {"total", total},
      {"limit", limit},
      {"page", page},
      {"total_pages", total_pages},
      {"has_next", page < total_pages},
      {"has_previous", page > 1},
  };
}

nlohmann::json success_envelope(nlohmann::json data, std::string message, nlohmann::json meta) {
  nlohmann::json envelope = nlohmann::json::object();
  envelope["success"] = true;
  envelope["data"] = std::move(data);
  envelope["error"] = nullptr;
  envelope["message"] = std::move(message);
  envelope["meta"] = std::move(meta);
  return envelope;
}

nlohmann::json error_envelope(std::string_view code, std::string message,
                              const std::vector<FieldProblem>& details) {
  nlohmann::json problems = nlohmann::json::array();
  for (const auto& problem : details) {
    problems.push_back({{"field", problem.field}, {"problem", problem.problem}});
  }
  nlohmann::json envelope = nlohmann::json::object();
  envelope["success"] = false;
  envelope["data"] = nullptr;
  envelope["error"] = {{"code", std::string(code)}, {"details", std::move(problems)}};
  envelope["message"] = std::move(message);
  envelope["meta"] = nullptr;
  return envelope;
}

namespace {

// Whether `text` can go between JSON quotes as it is: printable ASCII without '"' or '\\'.
// Most messages, codes and field names are, and skip building a json value to escape.
bool is_plain_json_text(std::string_view text) {
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e || c == '"' || c == '\\') {
      return false;
    }
  }
  return true;
}

void append_json_string(std::string& out, std::string_view text) {
  if (is_plain_json_text(text)) {
    out += '"';
    out += text;
    out += '"';
    return;
  }
  out += serialize(nlohmann::json(std::string(text)));
}

void append_json(std::string& out, const nlohmann::json& value) {
  if (value.is_null()) {
    out += "null";
    return;
  }
  out += serialize(value);
}

// The wire form keeps the contract's field order ({"success", "data", "error", "message",
// "meta"}), which is what a person reading a response expects to see first; nlohmann::json
// would sort the keys. Written directly rather than through an envelope object: this runs
// for every response.
std::string success_body(const nlohmann::json& data, std::string_view message,
                         const nlohmann::json& meta) {
  std::string out;
  out.reserve(96);
  out += R"({"success":true,"data":)";
  append_json(out, data);
  out += R"(,"error":null,"message":)";
  append_json_string(out, message);
  out += R"(,"meta":)";
  append_json(out, meta);
  out += '}';
  return out;
}

// Same bytes as serializing error_envelope(): inside "error" the keys are in nlohmann's
// sorted order ("code", "details"; "field", "problem"), as they always were on the wire.
std::string error_body(std::string_view code, std::string_view message,
                       const std::vector<FieldProblem>& details) {
  std::string out;
  out.reserve(128);
  out += R"({"success":false,"data":null,"error":{"code":)";
  append_json_string(out, code);
  out += R"(,"details":[)";
  bool first = true;
  for (const auto& problem : details) {
    out += first ? R"({"field":)" : R"(,{"field":)";
    first = false;
    append_json_string(out, problem.field);
    out += R"(,"problem":)";
    append_json_string(out, problem.problem);
    out += '}';
  }
  out += R"(]},"message":)";
  append_json_string(out, message);
  out += R"(,"meta":null})";
  return out;
}

}  // namespace

Response ok_response(unsigned status, nlohmann::json data, std::string message,
                     nlohmann::json meta) {
  return Response::json(status, success_body(data, message, meta));
}

Response error_response(unsigned status, std::string_view code, std::string message,
                        const std::vector<FieldProblem>& details) {
  return Response::json(status, error_body(code, message, details));
}

HttpError::HttpError(unsigned status, std::string code, std::string message,
                     std::vector<FieldProblem> details)
    : std::runtime_error(std::move(message)),
      status_(status),
      code_(std::move(code)),
      details_(std::move(details)) {}

Response HttpError::to_response() const {
  Response response = error_response(status_, code_, what(), details_);
  for (const auto& [name, value] : headers_) {
    response.headers.add(name, value);
  }
  return response;
}

nlohmann::json parse_json_object(const Request& request) {
  if (request.body.empty()) {
    throw HttpError(400, "invalid_json", "request body is empty; a JSON object is required");
  }
  if (common::json_nesting_depth(request.body, kMaxJsonDepth) > kMaxJsonDepth) {
    throw HttpError(400, "invalid_json",
                    "request body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  }
  nlohmann::json document;
  try {
    document = nlohmann::json::parse(request.body);
  } catch (const nlohmann::json::parse_error& error) {
    // error.byte is the 1-based position where parsing stopped; the library's own
    // message repeats the input, which we do not echo.
    throw HttpError(400, "invalid_json",
                    "request body is not valid JSON (at byte " + std::to_string(error.byte) + ")");
  } catch (const nlohmann::json::exception&) {
    // The parser also throws out_of_range for a number beyond double's range (1e400):
    // still the client's malformed input, never a 500.
    throw HttpError(400, "invalid_json",
                    "request body is not valid JSON (a number is out of range)");
  }
  if (!document.is_object()) {
    throw HttpError(400, "validation_failed", "request body must be a JSON object",
                    {{"body", std::string("must be a JSON object, got ") + document.type_name()}});
  }
  return document;
}

}  // namespace notifs::messaging::http
