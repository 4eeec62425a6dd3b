#include "http/server_uri.hpp"

namespace notifs::messaging::http::detail {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) {
    return false;
  }
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    char c = text[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != prefix[i]) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return std::nullopt;
      }
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0) {
        return std::nullopt;
      }
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_query(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (piece.empty()) {
      continue;
    }
    const auto eq = piece.find('=');
    auto key = percent_decode(piece.substr(0, eq), true);
    auto value = percent_decode(
        eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1), true);
    if (!key || !value) {
      return std::nullopt;
    }
    pairs.emplace_back(std::move(*key), std::move(*value));
  }
  return pairs;
}

std::optional<TargetParts> split_target(std::string_view target) {
  if (starts_with_ci(target, "http://") || starts_with_ci(target, "https://")) {
    const auto authority = target.find("//") + 2;
    const auto path_start = target.find_first_of("/?#", authority);
    target = path_start == std::string_view::npos ? std::string_view("/")
                                                  : target.substr(path_start);
    if (!target.empty() && target.front() != '/') {
      // "http://host?x" has an empty path, which means "/".
      return TargetParts{"/", target.front() == '?' ? target.substr(1) : std::string_view{}};
    }
  }
  if (target.empty() || target.front() != '/') {
    return std::nullopt;
  }
  // A fragment is never sent by a conforming client; drop it rather than route on it.
  target = target.substr(0, target.find('#'));
  const auto question = target.find('?');
  if (question == std::string_view::npos) {
    return TargetParts{target, {}};
  }
  return TargetParts{target.substr(0, question), target.substr(question + 1)};
}

}  // namespace notifs::messaging::http::detail
