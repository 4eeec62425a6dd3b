#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace notifs::messaging::http {

enum class Method { get, head, post, put, patch, delete_, options, other };
std::string_view to_string(Method method);
Method method_from_string(std::string_view text);

// Header fields in arrival order; names compare case-insensitively.
class Headers {
 public:
  // The first value of `name`, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  // Replaces every value of `name` with one value.
  void set(std::string name, std::string value);
  void add(std::string name, std::string value);
  void remove(std::string_view name);
  bool contains(std::string_view name) const { return get(name).has_value(); }

  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  std::size_t size() const { return fields_.size(); }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

bool iequals(std::string_view a, std::string_view b);

// One parsed request as a handler sees it. The server owns the parsing; the handler gets a
// fully read, size-checked body.
struct Request {
  Method method = Method::get;
  std::string target;  // as sent: path plus query
  std::string path;    // percent-decoded path, without the query
  std::vector<std::pair<std::string, std::string>> query;        // decoded, in order
  std::vector<std::pair<std::string, std::string>> path_params;  // filled by the router
  Headers headers;
  std::string body;
  std::string request_id;   // the caller's valid X-Request-ID, or a new one
  std::string traceparent;  // the caller's trace continued with this hop's span
  std::string remote_address;

  std::optional<std::string_view> query_param(std::string_view name) const;
  // The value of a `{name}` segment of the matched route; empty when absent.
  std::string_view path_param(std::string_view name) const;
};

struct Response {
  unsigned status = 200;
  Headers headers;
  std::string body;
  std::string content_type = "application/json";

  // A response whose body is the contract's envelope, already serialized.
  static Response json(unsigned status, std::string body);
};

}  // namespace notifs::messaging::http
