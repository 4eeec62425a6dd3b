// RFC 5322 / MIME bytes of a notification email, checked by decoding them again with
// decoders written here from the RFCs (independent of the encoder under test).
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "email_message.hpp"

using notifs::worker::build_email_message;
using notifs::worker::EmailContent;
using notifs::worker::EmailFormatError;
using notifs::worker::encode_quoted_printable;
using notifs::worker::encode_unstructured_header;
using notifs::worker::format_mailbox;
using notifs::worker::format_rfc5322_date;
using notifs::worker::Mailbox;
using notifs::worker::parse_mailbox;

namespace {

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    const auto end = text.find("\r\n", pos);
    if (end == std::string_view::npos) {
      lines.emplace_back(text.substr(pos));
      break;
    }
    lines.emplace_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return lines;
}

// Every LF is part of a CRLF and every CR starts one.
bool crlf_only(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n' && (i == 0 || text[i - 1] != '\r')) {
      return false;
    }
    if (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n')) {
      return false;
    }
  }
  return true;
}

std::size_t longest_line(std::string_view text) {
  std::size_t longest = 0;
  for (const auto& line : split_lines(text)) {
    longest = std::max(longest, line.size());
  }
  return longest;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;  // lower case is not canonical quoted-printable: treat as an error
}

std::string decode_qp(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '=') {
      out += text[i];
      continue;
    }
    if (text.substr(i, 3) == "=\r\n") {  // soft line break
      i += 2;
      continue;
    }
    REQUIRE(i + 2 < text.size());
    const int high = hex_value(text[i + 1]);
    const int low = hex_value(text[i + 2]);
    REQUIRE(high >= 0);
    REQUIRE(low >= 0);
    out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return out;
}

std::string decode_base64(std::string_view text) {
  const std::string_view alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=') {
      break;
    }
    const auto value = alphabet.find(c);
    REQUIRE(value != std::string_view::npos);
    buffer = (buffer << 6) | static_cast<std::uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

bool valid_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t length = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (length == 0 || i + length > text.size()) {
      return false;
    }
    for (std::size_t k = 1; k < length; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80) {
        return false;
      }
    }
    i += length;
  }
  return true;
}

// A header value as a reader sees it: unfolded, encoded-words decoded (whitespace between
// two encoded-words dropped, RFC 2047 section 6.2). Each word must decode to whole UTF-8
// characters on its own.
std::string decode_header_value(std::string_view folded) {
  std::string unfolded;
  for (std::size_t i = 0; i < folded.size(); ++i) {
    if (folded.substr(i, 2) == "\r\n") {
      ++i;
      continue;
    }
    unfolded += folded[i];
  }
  std::string out;
  std::size_t pos = 0;
  bool last_was_word = false;
  while (pos < unfolded.size()) {
    const auto start = unfolded.find("=?", pos);
    if (start == std::string::npos) {
      out += unfolded.substr(pos);
      break;
    }
    const auto between = unfolded.substr(pos, start - pos);
    if (!(last_was_word && between.find_first_not_of(" \t") == std::string::npos)) {
      out += between;
    }
    const auto end = unfolded.find("?=", start + 2 + 8);
    REQUIRE(end != std::string::npos);
    const auto word = unfolded.substr(start, end + 2 - start);
    CHECK(word.size() <= 75);
    REQUIRE(word.starts_with("=?UTF-8?B?"));
    const auto decoded = decode_base64(word.substr(10, word.size() - 12));
    CHECK(valid_utf8(decoded));
    out += decoded;
    pos = end + 2;
    last_was_word = true;
  }
  return out;
}

struct ParsedMessage {
  std::multimap<std::string, std::string> headers;  // raw (folded) values
  std::string body;
  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

ParsedMessage parse(std::string_view message) {
  ParsedMessage parsed;
  const auto split = message.find("\r\n\r\n");
  REQUIRE(split != std::string_view::npos);
  parsed.body = std::string(message.substr(split + 4));
  std::string name;
  for (const auto& line : split_lines(message.substr(0, split))) {
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
      REQUIRE_FALSE(name.empty());
      auto it = parsed.headers.upper_bound(name);
      (--it)->second += "\r\n" + line;  // keep the fold for line-length checks
      continue;
    }
    const auto colon = line.find(": ");
    REQUIRE(colon != std::string::npos);
    name = line.substr(0, colon);
    parsed.headers.emplace(name, line.substr(colon + 2));
  }
  return parsed;
}

EmailContent sample() {
  EmailContent content;
  content.from = {"Notifs", "noreply@notifs.example"};
  content.to = {"Ann", "ann@example.org"};
  content.subject = "Your order shipped";
  content.text_body = "Hello Ann,\nyour order shipped.\n";
  content.notification_id = "7f1c9a52-1b2d-4c3e-8f40-5a6b7c8d9e0f";
  content.date = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  return content;
}

}  // namespace

TEST_CASE("worker email single-part message has the RFC 5322 headers and CRLF lines") {
  const auto message = build_email_message(sample());
  CHECK(crlf_only(message));
  CHECK(longest_line(message) <= 76);
  const auto parsed = parse(message);
  CHECK(parsed.header("From") == "Notifs <noreply@notifs.example>");
  CHECK(parsed.header("To") == "Ann <ann@example.org>");
  CHECK(parsed.header("Subject") == "Your order shipped");
  CHECK(parsed.header("Date") == "Tue, 14 Nov 2023 22:13:20 +0000");
  CHECK(parsed.header("Message-ID") == "<7f1c9a52-1b2d-4c3e-8f40-5a6b7c8d9e0f@notifs.example>");
  CHECK(parsed.header("MIME-Version") == "1.0");
  CHECK(parsed.header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(parsed.header("Content-Transfer-Encoding") == "quoted-printable");
  CHECK(parsed.headers.count("From") == 1);
  CHECK(decode_qp(parsed.body) == "Hello Ann,\r\nyour order shipped.\r\n");
}

TEST_CASE("worker email with html is multipart/alternative, text first, then html") {
  auto content = sample();
  content.text_body = "Price: 5 € = cheap\n";
  content.html_body = "<p style=\"color:red\">Price: 5&nbsp;€</p>";
  const auto message = build_email_message(content);
  CHECK(crlf_only(message));
  CHECK(longest_line(message) <= 76);
  const auto parsed = parse(message);
  const auto type = decode_header_value(parsed.header("Content-Type"));
  REQUIRE(type.starts_with("multipart/alternative;"));
  const auto quote = type.find("boundary=\"");
  REQUIRE(quote != std::string::npos);
  const auto boundary = type.substr(quote + 10, type.find('"', quote + 10) - quote - 10);
  REQUIRE_FALSE(boundary.empty());
  CHECK(boundary.size() <= 70);
  CHECK(parsed.headers.count("Content-Transfer-Encoding") == 0);

  // The body is: preamble, --boundary, part, --boundary, part, --boundary--.
  const std::string delimiter = "\r\n--" + boundary;
  std::vector<std::string> parts;
  std::size_t pos = parsed.body.find(delimiter);
  REQUIRE(pos != std::string::npos);
  for (;;) {
    pos += delimiter.size();
    if (parsed.body.compare(pos, 4, "--\r\n") == 0) {
      CHECK(pos + 4 == parsed.body.size());
      break;
    }
    REQUIRE(parsed.body.compare(pos, 2, "\r\n") == 0);
    const auto next = parsed.body.find(delimiter, pos);
    REQUIRE(next != std::string::npos);
    parts.push_back(parsed.body.substr(pos + 2, next - pos - 2));
    pos = next;
  }
  REQUIRE(parts.size() == 2);
  const auto text = parse(parts[0]);
  CHECK(text.header("Content-Type") == "text/plain; charset=utf-8");
  CHECK(text.header("Content-Transfer-Encoding") == "quoted-printable");
  CHECK(decode_qp(text.body) == "Price: 5 € = cheap\r\n");
  const auto html = parse(parts[1]);
  CHECK(html.header("Content-Type") == "text/html; charset=utf-8");
  CHECK(html.header("Content-Transfer-Encoding") == "quoted-printable");
  CHECK(decode_qp(html.body) == *content.html_body);
}

TEST_CASE("worker email encodes a UTF-8 subject and display name as RFC 2047 words") {
  auto content = sample();
  content.subject = "Zoë — café ✓";
  content.to = {"Zoë — café ✓", "zoe@example.org"};
  const auto message = build_email_message(content);
  CHECK(longest_line(message) <= 76);
  for (const unsigned char c : message) {
    CHECK(c < 0x80);  // 7-bit clean: every non-ASCII byte is encoded
  }
  const auto parsed = parse(message);
  CHECK(parsed.header("Subject").starts_with("=?UTF-8?B?"));
  CHECK(decode_header_value(parsed.header("Subject")) == "Zoë — café ✓");
  CHECK(decode_header_value(parsed.header("To")) == "Zoë — café ✓ <zoe@example.org>");
}

TEST_CASE("worker email splits long UTF-8 headers into words without cutting a character") {
  std::string subject;
  for (int i = 0; i < 40; ++i) {
    subject += "✓é";  // 3 + 2 bytes: word limits fall inside characters unless handled
  }
  const auto value = encode_unstructured_header(subject, 9);
  CHECK(longest_line("Subject: " + value) <= 76);
  CHECK(split_lines(value).size() > 3);
  CHECK(decode_header_value(value) == subject);  // also checks each word is valid UTF-8
}

TEST_CASE("worker email keeps short ASCII subjects and folds long ones at spaces") {
  CHECK(encode_unstructured_header("Plain subject", 9) == "Plain subject");
  std::string long_subject;
  for (int i = 0; i < 30; ++i) {
    long_subject += "word" + std::to_string(i) + " ";
  }
  long_subject += "end";
  const auto value = encode_unstructured_header(long_subject, 9);
  CHECK(value.find("=?") == std::string::npos);
  CHECK(split_lines(value).size() > 1);
  CHECK(longest_line("Subject: " + value) <= 76);
  CHECK(decode_header_value(value) == long_subject);
  // Text that a reader would take for an encoded-word is encoded itself.
  const auto tricky = encode_unstructured_header("=?UTF-8?B?aGk=?=", 9);
  CHECK(tricky.starts_with("=?UTF-8?B?"));
  CHECK(decode_header_value(tricky) == "=?UTF-8?B?aGk=?=");
}

TEST_CASE("worker email quotes display names with specials and parses SMTP_FROM forms") {
  CHECK(format_mailbox({"Doe, John", "john@example.org"}, 4) == "\"Doe, John\" <john@example.org>");
  CHECK(format_mailbox({"Say \"hi\"", "a@example.org"}, 4) == "\"Say \\\"hi\\\"\" <a@example.org>");
  CHECK(format_mailbox({"", "a@example.org"}, 4) == "a@example.org");

  const auto named = parse_mailbox("Notifs Team <noreply@notifs.example>");
  CHECK(named.name == "Notifs Team");
  CHECK(named.address == "noreply@notifs.example");
  const auto quoted = parse_mailbox(" \"Doe, John\" <john@example.org> ");
  CHECK(quoted.name == "Doe, John");
  CHECK(quoted.address == "john@example.org");
  CHECK(parse_mailbox("<a@example.org>").address == "a@example.org");
  const auto bare = parse_mailbox("a@example.org");
  CHECK(bare.name.empty());
  CHECK(bare.address == "a@example.org");
  CHECK_THROWS_AS(parse_mailbox("Name <a@example.org"), EmailFormatError);
  CHECK_THROWS_AS(parse_mailbox("no-at-sign"), EmailFormatError);
  CHECK_THROWS_AS(parse_mailbox("two words@example.org"), EmailFormatError);
}

TEST_CASE("worker email refuses header injection through any field") {
  auto content = sample();
  SECTION("subject") { content.subject = "Hi\r\nBcc: victim@example.org"; }
  SECTION("subject with a bare LF") { content.subject = "Hi\nBcc: victim@example.org"; }
  SECTION("recipient name") { content.to.name = "Ann\r\nBcc: victim@example.org"; }
  SECTION("sender name") { content.from.name = "Notifs\rX: y"; }
  SECTION("recipient address") { content.to.address = "ann@example.org\r\nBcc: victim@example.org"; }
  SECTION("sender address") { content.from.address = "noreply@notifs.example>\r\nX: y"; }
  SECTION("notification id") { content.notification_id = "abc\r\nBcc: victim@example.org"; }
  SECTION("notification id with specials") { content.notification_id = "a b@c"; }
  CHECK_THROWS_AS(build_email_message(content), EmailFormatError);
  CHECK_THROWS_AS(parse_mailbox("Ann\r\nBcc: v@example.org <ann@example.org>"), EmailFormatError);
}

TEST_CASE("worker email error names the field that was refused") {
  auto content = sample();
  content.subject = "a\nb";
  try {
    build_email_message(content);
    FAIL("no exception");
  } catch (const EmailFormatError& e) {
    CHECK(std::string(e.what()).find("subject") != std::string::npos);
  }
}

TEST_CASE("worker email quoted-printable keeps lines short and round-trips any bytes") {
  CHECK(encode_quoted_printable("a=b") == "a=3Db");
  CHECK(encode_quoted_printable("trailing space \nnext") == "trailing space=20\r\nnext");
  CHECK(encode_quoted_printable("tab\t") == "tab=09");
  CHECK(encode_quoted_printable("é") == "=C3=A9");
  CHECK(encode_quoted_printable("a\r\nb\rc\nd") == "a\r\nb\r\nc\r\nd");

  // One 5,000-character line of mixed bytes: soft breaks keep every line within 76 (far
  // below RFC 5322's 998), never inside an =XX, and decoding gives the text back.
  std::string text;
  for (int i = 0; i < 1000; ++i) {
    text += i % 7 == 0 ? "é=" : "ab c";
  }
  const auto encoded = encode_quoted_printable(text);
  CHECK(longest_line(encoded) <= 76);
  CHECK(decode_qp(encoded) == text);

  std::string all_bytes;
  for (int i = 0; i < 256; ++i) {
    if (i != '\r' && i != '\n') {
      all_bytes += static_cast<char>(i);
    }
  }
  const auto encoded_all = encode_quoted_printable(all_bytes);
  CHECK(decode_qp(encoded_all) == all_bytes);
  for (const unsigned char c : encoded_all) {
    CHECK((c == '\r' || c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F)));  // tab is literal mid-line
  }
}

TEST_CASE("worker email Date is RFC 5322 in UTC with English names") {
  using std::chrono::seconds;
  using std::chrono::system_clock;
  CHECK(format_rfc5322_date(system_clock::time_point(seconds(0))) == "Thu, 01 Jan 1970 00:00:00 +0000");
  CHECK(format_rfc5322_date(system_clock::time_point(seconds(951'782'400))) ==
        "Tue, 29 Feb 2000 00:00:00 +0000");
}

TEST_CASE("worker email very long names and bodies never exceed the line limits") {
  auto content = sample();
  content.to.name = std::string(300, 'x');  // no spaces: only encoded-words can fold it
  content.text_body = std::string(3000, 'y') + "\n" + std::string(3000, ' ');
  content.html_body = "<p>" + std::string(2000, 'z') + "</p>";
  const auto message = build_email_message(content);
  CHECK(crlf_only(message));
  CHECK(longest_line(message) <= 76);
  const auto parsed = parse(message);
  CHECK(decode_header_value(parsed.header("To")) == content.to.name + " <ann@example.org>");
}
