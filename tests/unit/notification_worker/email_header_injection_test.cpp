// SMTP header injection is impossible by construction (issue 8): whatever bytes reach a
// header field of build_email_message (subject and names from templates and user data,
// addresses, the notification id), either the message is refused with EmailFormatError or
// every CR and LF in its header block is a fold (CRLF followed by a space) or the end of a
// header line the builder wrote itself. Checked over every control byte in every field,
// plus encoded-word look-alikes that a reader would decode.
#include <chrono>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "email_message.hpp"

using notifs::worker::build_email_message;
using notifs::worker::EmailContent;
using notifs::worker::EmailFormatError;
using notifs::worker::encode_unstructured_header;
using notifs::worker::format_mailbox;
using notifs::worker::Mailbox;
using notifs::worker::parse_mailbox;

namespace {

EmailContent sample() {
  EmailContent content;
  content.from = {"Notifs", "noreply@notifs.example"};
  content.to = {"Ann Lee", "ann@example.org"};
  content.subject = "Your order shipped";
  content.text_body = "Hello\n";
  content.notification_id = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";
  content.date = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  return content;
}

// The header block's field names, in order, after unfolding; FAILs on a CR or LF that is
// neither a fold nor the end of a header line.
std::vector<std::string> header_names(const std::string& message) {
  const auto end = message.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  const std::string_view block(message.data(), end + 2);
  std::vector<std::string> names;
  std::size_t pos = 0;
  while (pos < block.size()) {
    const auto line_end = block.find("\r\n", pos);
    REQUIRE(line_end != std::string_view::npos);
    const auto line = block.substr(pos, line_end - pos);
    // No bare CR or LF inside a line: only the CRLF pairs found above end lines.
    REQUIRE(line.find_first_of("\r\n") == std::string_view::npos);
    REQUIRE(line.find('\0') == std::string_view::npos);
    if (line.front() == ' ' || line.front() == '\t') {
      REQUIRE_FALSE(names.empty());  // a fold continues the header before it
    } else {
      const auto colon = line.find(':');
      REQUIRE(colon != std::string_view::npos);
      names.emplace_back(line.substr(0, colon));
    }
    pos = line_end + 2;
  }
  return names;
}

const std::vector<std::string>& expected_names() {
  static const std::vector<std::string> names{"From",         "To",
                                              "Subject",      "Date",
                                              "Message-ID",   "MIME-Version",
                                              "Auto-Submitted", "Content-Type",
                                              "Content-Transfer-Encoding"};
  return names;
}

// Every control byte a template variable or a user's name could carry, and DEL.
std::vector<char> control_bytes() {
  std::vector<char> bytes;
  for (int c = 0; c < 0x20; ++c) {
    if (c != '\t') bytes.push_back(static_cast<char>(c));
  }
  bytes.push_back('\x7f');
  return bytes;
}

}  // namespace

TEST_CASE("email header injection: every control byte in every header field is refused",
          "[worker][email][security]") {
  for (const char c : control_bytes()) {
    const std::string bad = std::string("x") + c + "Bcc: victim@example.org";
    CAPTURE(static_cast<int>(static_cast<unsigned char>(c)));
    auto subject = sample();
    subject.subject = bad;
    CHECK_THROWS_AS(build_email_message(subject), EmailFormatError);
    auto to_name = sample();
    to_name.to.name = bad;
    CHECK_THROWS_AS(build_email_message(to_name), EmailFormatError);
    auto from_name = sample();
    from_name.from.name = bad;
    CHECK_THROWS_AS(build_email_message(from_name), EmailFormatError);
    auto to_address = sample();
    to_address.to.address = std::string("ann") + c + "@example.org";
    CHECK_THROWS_AS(build_email_message(to_address), EmailFormatError);
    auto from_address = sample();
    from_address.from.address = std::string("noreply@notifs") + c + ".example";
    CHECK_THROWS_AS(build_email_message(from_address), EmailFormatError);
    auto id = sample();
    id.notification_id = std::string("abc") + c + "def";
    CHECK_THROWS_AS(build_email_message(id), EmailFormatError);
    CHECK_THROWS_AS(encode_unstructured_header(bad, 9), EmailFormatError);
    CHECK_THROWS_AS(format_mailbox(Mailbox{bad, "a@example.org"}, 4), EmailFormatError);
    CHECK_THROWS_AS(parse_mailbox("Ann" + std::string(1, c) + "Lee <ann@example.org>"),
                    EmailFormatError);
  }
}

TEST_CASE("email header injection: a NUL byte cannot cut a field short", "[worker][email][security]") {
  using namespace std::string_literals;
  auto subject = sample();
  subject.subject = "Hello\0\r\nBcc: victim@example.org"s;
  CHECK_THROWS_AS(build_email_message(subject), EmailFormatError);
  auto name = sample();
  name.to.name = "Ann\0"s;
  CHECK_THROWS_AS(build_email_message(name), EmailFormatError);
  auto address = sample();
  address.to.address = "ann@example.org\0.evil.example"s;
  CHECK_THROWS_AS(build_email_message(address), EmailFormatError);
  CHECK_THROWS_AS(parse_mailbox("Notifs <noreply@notifs.example\0>"s), EmailFormatError);
}

TEST_CASE("email header injection: line breaks outside ASCII control bytes stay inside one "
          "encoded header",
          "[worker][email][security]") {
  // U+0085 (NEL), U+2028 and U+2029 end lines for some readers; they are UTF-8 here, so the
  // field is RFC 2047-encoded and its bytes never reach the header block as they are.
  const std::vector<std::string> separators{"\xC2\x85", "\xE2\x80\xA8", "\xE2\x80\xA9"};
  for (const auto& separator : separators) {
    auto content = sample();
    content.subject = "Hi" + separator + "Bcc: victim@example.org";
    content.to.name = "Ann" + separator + "Bcc: victim@example.org";
    const auto message = build_email_message(content);
    CHECK(header_names(message) == expected_names());
    const auto headers = message.substr(0, message.find("\r\n\r\n"));
    CHECK(headers.find(separator) == std::string::npos);
    CHECK(headers.find("Bcc") == std::string::npos);
  }
}

TEST_CASE("email header injection: text that looks like an encoded CRLF is encoded, not passed "
          "through",
          "[worker][email][security]") {
  // "=?UTF-8?B?DQpCY2M6IHZAZXhhbXBsZS5vcmc=?=" decodes to "\r\nBcc: v@example.org". Given
  // as is, a reader would decode it; the builder must encode it as text instead.
  const std::string lookalike = "=?UTF-8?B?DQpCY2M6IHZAZXhhbXBsZS5vcmc=?=";
  auto content = sample();
  content.subject = "Hi " + lookalike;
  content.to.name = lookalike;
  const auto message = build_email_message(content);
  CHECK(header_names(message) == expected_names());
  const auto headers = message.substr(0, message.find("\r\n\r\n"));
  CHECK(headers.find(lookalike) == std::string::npos);
}

TEST_CASE("email header injection: specials in a display name are quoted, never bare",
          "[worker][email][security]") {
  auto content = sample();
  content.to.name = "Ann\" <evil@example.org>, Bob";
  content.from.name = "Team\\\"; x";
  const auto message = build_email_message(content);
  CHECK(header_names(message) == expected_names());
  // Exactly one address in To: the real one, in angle brackets at the end.
  const auto to_start = message.find("\r\nTo: ") + 6;
  const auto to_end = message.find("\r\nSubject: ");
  const auto to = message.substr(to_start, to_end - to_start);
  CHECK_THAT(to, Catch::EndsWith("<ann@example.org>"));
  CHECK(to.find("<evil@example.org>") != std::string::npos);  // inside the quoted name
  CHECK(to.rfind('<') == to.size() - std::string("<ann@example.org>").size());
  CHECK(to.front() == '"');
}

TEST_CASE("email header injection: any byte soup is refused or makes the fixed header set",
          "[worker][email][security]") {
  // A deterministic sweep (no randomness): every single byte, and pairs around CR and LF,
  // in the subject and the recipient's name.
  std::vector<std::string> inputs;
  for (int c = 0; c < 256; ++c) {
    inputs.push_back("a" + std::string(1, static_cast<char>(c)) + "b");
  }
  for (const char* pair : {"\r\n", "\n\r", "\r\r", "\n\n", "\r\n ", "\r\n\t", " \r\n"}) {
    inputs.push_back(std::string("x") + pair + "Bcc: v@example.org");
  }
  std::size_t refused = 0;
  for (const auto& input : inputs) {
    CAPTURE(input);
    for (int field = 0; field < 2; ++field) {
      auto content = sample();
      (field == 0 ? content.subject : content.to.name) = input;
      try {
        const auto message = build_email_message(content);
        CHECK(header_names(message) == expected_names());
      } catch (const EmailFormatError&) {
        ++refused;
      }
    }
  }
  // 32 control bytes and DEL, in two fields, and every CR/LF pair: refused, not sent.
  CHECK(refused == 2 * (32 - 1 + 1) + 2 * 7);
}
