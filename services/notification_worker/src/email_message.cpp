#include "email_message.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>
#include <utility>

namespace notifs::worker {
namespace {

// RFC 5322 2.1.1: lines SHOULD stay within 78 characters; 76 also keeps quoted-printable
// and encoded-word rules (RFC 2045, RFC 2047) in one budget.
constexpr std::size_t kMaxLine = 76;
constexpr std::size_t kMaxEncodedWord = 75;  // RFC 2047 section 2
constexpr std::size_t kHardLineLimit = 998;   // RFC 5322 2.1.1 MUST
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kHex = "0123456789ABCDEF";

bool is_atext(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
    return true;
  }
  return std::string_view("!#$%&'*+-/=?^_`{|}~").find(static_cast<char>(c)) !=
         std::string_view::npos;
}

// Header text may hold spaces and tabs but no other control character: CR and LF would
// start a header of the sender's choosing.
void require_header_text(std::string_view field, std::string_view value) {
  for (const unsigned char c : value) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      throw EmailFormatError(std::string(field) + " contains a control character (" +
                             (c == '\r' || c == '\n' ? "line break" : "code " + std::to_string(c)) +
                             ")");
    }
  }
}

bool is_dot_atom(std::string_view text) {
  if (text.empty() || text.front() == '.' || text.back() == '.' ||
      text.find("..") != std::string_view::npos) {
    return false;
  }
  for (const unsigned char c : text) {
    if (c != '.' && !is_atext(c)) {
      return false;
    }
  }
  return true;
}

void require_address(std::string_view field, std::string_view address) {
  require_header_text(field, address);
  const auto at = address.rfind('@');
  if (address.size() > 254 || at == std::string_view::npos || !is_dot_atom(address.substr(0, at))) {
    throw EmailFormatError(std::string(field) + " is not a valid address: '" +
                           std::string(address) + "'");
  }
  const auto domain = address.substr(at + 1);
  bool valid_domain = !domain.empty() && domain.front() != '.' && domain.back() != '.' &&
                      domain.find("..") == std::string_view::npos;
  for (const unsigned char c : domain) {
    valid_domain = valid_domain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                    (c >= '0' && c <= '9') || c == '-' || c == '.');
  }
  if (!valid_domain) {
    throw EmailFormatError(std::string(field) + " has an invalid domain: '" +
                           std::string(address) + "'");
  }
}

bool is_plain_ascii(std::string_view text) {
  for (const unsigned char c : text) {
    if (c >= 0x80) {
      return false;
    }
  }
  // Text that looks like an encoded-word would be decoded by the reader: encode it instead.
  return text.find("=?") == std::string_view::npos;
}

bool is_utf8_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// B encoded-words for `value`, folded with CRLF SP. `used` is what the first line already
// holds; it becomes the length of the last line. Whitespace between adjacent encoded-words
// is dropped by decoders, so splitting the bytes anywhere between characters is lossless.
std::string encoded_words(std::string_view value, std::size_t& used) {
  constexpr std::string_view kPrefix = "=?UTF-8?B?";
  constexpr std::string_view kSuffix = "?=";
  constexpr std::size_t kOverhead = kPrefix.size() + kSuffix.size();
  std::string out;
  std::size_t pos = 0;
  bool first = true;
  while (pos < value.size() || first) {
    std::size_t room = kMaxLine - std::min(used + (first ? 0 : 1), kMaxLine);
    if (!first || room < kOverhead + 4) {
      if (!first || used > 0) {
        out += kCrlf;
        out += ' ';
        used = 1;
        room = kMaxLine - 1;
      }
    }
    room = std::min(room, kMaxEncodedWord);
    const std::size_t max_bytes = 3 * ((room - kOverhead) / 4);
    std::size_t take = std::min(max_bytes, value.size() - pos);
    if (pos + take < value.size()) {
      std::size_t cut = take;
      while (cut > 0 && is_utf8_continuation(static_cast<unsigned char>(value[pos + cut]))) {
        --cut;
      }
      if (cut > 0) {  // zero only for invalid UTF-8: then any cut is as good as another
        take = cut;
      }
    }
    std::string word;
    word += kPrefix;
    word += encode_base64(value.substr(pos, take));
    word += kSuffix;
    out += word;
    used += word.size();
    pos += take;
    first = false;
  }
  return out;
}

// Printable ASCII folded at spaces; empty when a single token would break the hard limit.
std::optional<std::string> folded_ascii(std::string_view value, std::size_t used) {
  std::string out;
  std::size_t line = used;
  bool line_has_text = false;
  std::size_t pos = 0;
  while (pos < value.size()) {
    // A segment is a run of spaces and the word after it; folding happens only before one,
    // so no folded line is whitespace alone.
    std::size_t end = pos;
    while (end < value.size() && (value[end] == ' ' || value[end] == '\t')) {
      ++end;
    }
    const bool spaces_only = end == value.size();
    while (end < value.size() && value[end] != ' ' && value[end] != '\t') {
      ++end;
    }
    const auto segment = value.substr(pos, end - pos);
    const bool starts_with_space = segment.front() == ' ' || segment.front() == '\t';
    if (line_has_text && starts_with_space && !spaces_only && line + segment.size() > kMaxLine) {
      out += kCrlf;
      line = 0;
    }
    out += segment;
    line += segment.size();
    line_has_text = true;
    if (line > kHardLineLimit) {
      return std::nullopt;
    }
    pos = end;
  }
  return out;
}

bool needs_quoting(std::string_view phrase) {
  for (const unsigned char c : phrase) {
    if (c != ' ' && !is_atext(c)) {
      return true;
    }
  }
  return phrase.front() == ' ' || phrase.back() == ' ' ||
         phrase.find("  ") != std::string_view::npos;
}

std::string quoted_string(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
    }
    out += c;
  }
  out += '"';
  return out;
}

std::string mime_part_headers(std::string_view subtype) {
  std::string out = "Content-Type: text/";
  out += subtype;
  out += "; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n";
  return out;
}

}  // namespace

Mailbox parse_mailbox(std::string_view text) {
  const auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
      s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
      s.remove_suffix(1);
    }
    return s;
  };
  text = trim(text);
  Mailbox mailbox;
  const auto open = text.rfind('<');
  if (open == std::string_view::npos) {
    mailbox.address = std::string(text);
  } else {
    if (text.back() != '>') {
      throw EmailFormatError("mailbox '" + std::string(text) + "' has no closing '>'");
    }
    mailbox.address = std::string(text.substr(open + 1, text.size() - open - 2));
    auto name = trim(text.substr(0, open));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
      for (std::size_t i = 0; i < name.size(); ++i) {
        if (name[i] == '\\' && i + 1 < name.size()) {
          ++i;
        }
        mailbox.name += name[i];
      }
    } else {
      mailbox.name = std::string(name);
    }
  }
  require_header_text("mailbox name", mailbox.name);
  require_address("mailbox", mailbox.address);
  return mailbox;
}

std::string encode_base64(std::string_view bytes) {
  constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16) |
                            (std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8) |
                            std::uint32_t{static_cast<unsigned char>(bytes[i + 2])};
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest > 0) {
    std::uint32_t v = std::uint32_t{static_cast<unsigned char>(bytes[i])} << 16;
    if (rest == 2) {
      v |= std::uint32_t{static_cast<unsigned char>(bytes[i + 1])} << 8;
    }
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string encode_quoted_printable(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  std::size_t line = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const char c = text[pos];
    if (c == '\r' || c == '\n') {
      // Any of CRLF, LF, CR is one line end; it becomes a hard CRLF break.
      pos += (c == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n') ? 2 : 1;
      out += kCrlf;
      line = 0;
      continue;
    }
    const auto u = static_cast<unsigned char>(c);
    const bool at_line_end =
        pos + 1 == text.size() || text[pos + 1] == '\r' || text[pos + 1] == '\n';
    const bool literal = (u >= 33 && u <= 126 && u != '=') ||
                         ((u == ' ' || u == '\t') && !at_line_end);  // trailing space is lost in transport
    const std::size_t width = literal ? 1 : 3;
    // Keep one column for the '=' of a soft break; a token never straddles it.
    const std::size_t limit = at_line_end ? kMaxLine : kMaxLine - 1;
    if (line + width > limit) {
      out += "=\r\n";
      line = 0;
    }
    if (literal) {
      out += c;
    } else {
      out += '=';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
    line += width;
    ++pos;
  }
  return out;
}

std::string encode_unstructured_header(std::string_view value, std::size_t name_length) {
  require_header_text("header value", value);
  if (is_plain_ascii(value)) {
    if (auto folded = folded_ascii(value, name_length)) {
      return std::move(*folded);
    }
  }
  std::size_t used = name_length;
  return encoded_words(value, used);
}

std::string format_mailbox(const Mailbox& mailbox, std::size_t name_length) {
  require_address("address", mailbox.address);
  require_header_text("display name", mailbox.name);
  const std::string angle = "<" + mailbox.address + ">";
  if (mailbox.name.empty()) {
    return mailbox.address;
  }
  if (is_plain_ascii(mailbox.name)) {
    std::string phrase = needs_quoting(mailbox.name) ? quoted_string(mailbox.name) : mailbox.name;
    if (name_length + phrase.size() + 1 + angle.size() <= kMaxLine) {
      return phrase + " " + angle;
    }
  }
  // Non-ASCII, or too long for one line: encoded-words fold where plain phrases cannot.
  std::size_t used = name_length;
  std::string out = encoded_words(mailbox.name, used);
  if (used + 1 + angle.size() > kMaxLine) {
    out += kCrlf;
  }
  out += ' ';
  out += angle;
  return out;
}

std::string format_rfc5322_date(std::chrono::system_clock::time_point when) {
  // Fixed English names: strftime's %a and %b follow the locale.
  static constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed",
                                                            "Thu", "Fri", "Sat"};
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t seconds = std::chrono::system_clock::to_time_t(when);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                std::string(kDays[static_cast<std::size_t>(utc.tm_wday)]).c_str(), utc.tm_mday,
                std::string(kMonths[static_cast<std::size_t>(utc.tm_mon)]).c_str(),
                utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buffer;
}

std::string build_email_message(const EmailContent& content) {
  require_address("from address", content.from.address);
  require_address("to address", content.to.address);
  require_header_text("from name", content.from.name);
  require_header_text("to name", content.to.name);
  require_header_text("subject", content.subject);
  if (!is_dot_atom(content.notification_id) || content.notification_id.size() > 200) {
    throw EmailFormatError("notification id '" + content.notification_id +
                           "' cannot form a Message-ID");
  }
  const auto& from_address = content.from.address;
  const auto domain = std::string_view(from_address).substr(from_address.rfind('@') + 1);

  std::string out;
  out.reserve(1024 + content.text_body.size() * 2 +
              (content.html_body ? content.html_body->size() * 2 : 0));
  const auto header = [&out](std::string_view name, std::string_view value) {
    out += name;
    out += ": ";
    out += value;
    out += kCrlf;
  };
  header("From", format_mailbox(content.from, 6));
  header("To", format_mailbox(content.to, 4));
  header("Subject", encode_unstructured_header(content.subject, 9));
  header("Date", format_rfc5322_date(content.date));
  header("Message-ID", "<" + content.notification_id + "@" + std::string(domain) + ">");
  header("MIME-Version", "1.0");
  // RFC 3834: tells auto-responders (vacation replies) not to answer a notification.
  header("Auto-Submitted", "auto-generated");

  if (!content.html_body) {
    out += mime_part_headers("plain");
    out += kCrlf;
    out += encode_quoted_printable(content.text_body);
    return out;
  }
  // Quoted-printable output never holds "=_" ('=' is always followed by a hex digit or a
  // line end), so a boundary starting with it cannot occur inside a part.
  std::string boundary = "=_notifs_alt_";
  for (const char c : content.notification_id) {
    if (std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-') {
      boundary += c;
    }
  }
  boundary.resize(std::min<std::size_t>(boundary.size(), 70));  // RFC 2046 5.1.1
  header("Content-Type", "multipart/alternative;\r\n boundary=\"" + boundary + "\"");
  out += kCrlf;
  out += "This is a multi-part message in MIME format.\r\n";
  const auto part = [&](std::string_view subtype, std::string_view body) {
    out += "\r\n--";
    out += boundary;
    out += kCrlf;
    out += mime_part_headers(subtype);
    out += kCrlf;
    out += encode_quoted_printable(body);
  };
  part("plain", content.text_body);
  part("html", *content.html_body);
  out += "\r\n--";
  out += boundary;
  out += "--\r\n";
  return out;
}

}  // namespace notifs::worker
