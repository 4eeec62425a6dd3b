#include "conninfo.hpp"

#include <libpq-fe.h>

#include <memory>
#include <stdexcept>

#include "notifs/storage/pg_pool.hpp"

namespace notifs::storage::detail {

namespace {

// Single quotes let a value hold spaces; libpq unescapes \' and \\ inside them.
std::string quote_value(std::string_view value) {
  std::string quoted = "'";
  for (const char c : value) {
    if (c == '\'' || c == '\\') quoted += '\\';
    quoted += c;
  }
  quoted += '\'';
  return quoted;
}

struct ConninfoOptionsFree {
  void operator()(PQconninfoOption* options) const { PQconninfoFree(options); }
};

struct PqFree {
  void operator()(char* text) const { PQfreemem(text); }
};

}  // namespace

ConnInfo::ConnInfo(const std::string& url) {
  char* raw_error = nullptr;
  std::unique_ptr<PQconninfoOption, ConninfoOptionsFree> options(
      PQconninfoParse(url.c_str(), &raw_error));
  const std::unique_ptr<char, PqFree> error(raw_error);
  if (!options) {
    const std::string masked = mask_database_url(url);
    std::string what = "invalid database URL " + masked;
    // libpq quotes the offending part of the text, which could be part of a password:
    // its reason is only repeated when the URL carries none.
    if (error && masked == url) what += ": " + one_line(error.get());
    throw std::invalid_argument(what);
  }
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    params_.emplace_back(option->keyword, option->val);
  }
}

std::string ConnInfo::connection_string(std::chrono::milliseconds connect_timeout,
                                        std::string_view application_name,
                                        std::chrono::milliseconds statement_timeout) const {
  const long long timeout_seconds = std::max<long long>(1, (connect_timeout.count() + 999) / 1000);
  std::string options = "-c statement_timeout=" + std::to_string(statement_timeout.count());
  std::string text;
  for (const auto& [keyword, value] : params_) {
    if (keyword == "connect_timeout" || keyword == "fallback_application_name") continue;
    if (keyword == "options") {
      if (!value.empty()) options += " " + value;
      continue;
    }
    text += keyword + "=" + quote_value(value) + " ";
  }
  text += "connect_timeout=" + std::to_string(timeout_seconds) + " ";
  if (!application_name.empty()) {
    text += "fallback_application_name=" + quote_value(application_name) + " ";
  }
  text += "options=" + quote_value(options);
  return text;
}

std::string one_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  std::string line;
  line.reserve(text.size());
  bool in_space = false;
  for (const char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      if (!in_space) line += ' ';
      in_space = true;
      continue;
    }
    in_space = false;
    line += c;
  }
  return line;
}

}  // namespace notifs::storage::detail
