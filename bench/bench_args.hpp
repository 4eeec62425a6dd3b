#pragma once

// Command-line pieces the HTTP load programs share (http_rate_bench, worker_e2e_bench).
// Each throws UsageError with the problem; the program prints it with its own usage.

#include <cmath>
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace notifs::bench {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline double positive_number(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  double parsed = 0;
  try {
    parsed = std::stod(value, &used);
  } catch (const std::logic_error&) {
    throw UsageError(flag + " needs a number, got " + value);
  }
  if (used != value.size() || !(parsed > 0) || !std::isfinite(parsed)) {
    throw UsageError(flag + " must be a positive number, got " + value);
  }
  return parsed;
}

struct HttpUrl {
  std::string host;
  std::string port;
  std::string target;
};

// "http://HOST[:PORT][/PATH]"; the port defaults to 80 and the target to "/".
inline HttpUrl parse_http_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) throw UsageError("--url must start with http://");
  const auto rest = url.substr(scheme.size());
  const auto slash = rest.find('/');
  const auto authority = rest.substr(0, slash);
  HttpUrl out;
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  const auto colon = authority.rfind(':');
  out.host = authority.substr(0, colon);
  out.port = colon == std::string::npos ? "80" : authority.substr(colon + 1);
  if (out.host.empty() || out.port.empty()) throw UsageError("--url has no host or port: " + url);
  return out;
}

// "Name: value" of --header.
inline std::pair<std::string, std::string> parse_header(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) throw UsageError("--header needs 'Name: value'");
  auto value = text.substr(colon + 1);
  value.erase(0, value.find_first_not_of(' '));
  return {text.substr(0, colon), value};
}

// The non-empty lines of a file (--users).
inline std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) throw UsageError(path + " holds no lines");
  return lines;
}

// Request `index`'s body: {user_id} is line index % n of the users, {request_id} is
// PREFIX-index.
inline std::string fill_body(std::string body, const std::vector<std::string>& users,
                             const std::string& request_prefix, std::uint64_t index) {
  const auto replace_all = [&body](const std::string& what, const std::string& with) {
    for (auto at = body.find(what); at != std::string::npos; at = body.find(what, at + with.size())) {
      body.replace(at, what.size(), with);
    }
  };
  if (!users.empty()) {
    replace_all("{user_id}", users[index % users.size()]);
  }
  replace_all("{request_id}", request_prefix + "-" + std::to_string(index));
  return body;
}

}  // namespace notifs::bench
