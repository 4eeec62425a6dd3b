// The worker's email builder, with every field a user or template author controls fuzzed:
// the header-injection property. build_email_message either throws EmailFormatError or
// produces a message whose header section is exactly the headers it means to write (no
// field can add one), with CRLF line ends only, 7-bit bytes and lines within 998
// characters. parse_mailbox (SMTP_FROM) throws EmailFormatError or gives a usable mailbox.
//
// Input: fields separated by 0x1E: from ("Name <addr>", through parse_mailbox), to name,
// to address, subject, text body, html body (absent when there are fewer fields),
// notification id.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "email_message.hpp"
#include "fuzz_check.hpp"

namespace worker = notifs::worker;
using notifs::fuzz::check;

namespace {

std::vector<std::string_view> split_fields(std::string_view input) {
  std::vector<std::string_view> fields;
  while (true) {
    const auto [head, tail] = notifs::fuzz::split_once(input, "\x1e");
    fields.push_back(head);
    if (head.size() == input.size()) {
      return fields;
    }
    input = tail;
  }
}

std::string_view field(const std::vector<std::string_view>& fields, std::size_t index) {
  return index < fields.size() ? fields[index] : std::string_view{};
}

void check_message(const std::string& message, bool multipart) {
  for (const char c : message) {
    check(static_cast<unsigned char>(c) < 0x80 && c != '\0', "message is 7-bit without NUL");
  }
  // Lines end in CRLF; no bare CR or LF anywhere (SMTP DATA needs it, and a bare LF in a
  // header is how injection hides). The body's last line may be unterminated: a text
  // without a final line end keeps it, and the SMTP client ends DATA with its own CRLF.
  std::vector<std::string_view> lines;
  std::string_view rest = message;
  while (!rest.empty()) {
    const auto end = std::min(rest.find("\r\n"), rest.size());
    const auto line = rest.substr(0, end);
    check(line.find_first_of("\r\n") == std::string_view::npos, "no bare CR or LF", line);
    check(line.size() <= 998, "line within 998 characters");
    lines.push_back(line);
    rest.remove_prefix(std::min(end + 2, rest.size()));
  }
  std::vector<std::string> names;
  std::size_t i = 0;
  for (; i < lines.size() && !lines[i].empty(); ++i) {
    const auto line = lines[i];
    if (line.front() == ' ' || line.front() == '\t') {
      check(!names.empty(), "a folded line follows a header");
      continue;
    }
    const auto colon = line.find(": ");
    check(colon != std::string_view::npos, "a header line is 'Name: value'", line);
    names.emplace_back(line.substr(0, colon));
  }
  check(i < lines.size(), "the header section ends with an empty line");
  std::vector<std::string> expected = {"From",         "To",           "Subject",
                                       "Date",         "Message-ID",   "MIME-Version",
                                       "Auto-Submitted", "Content-Type"};
  if (!multipart) {
    expected.emplace_back("Content-Transfer-Encoding");
  }
  check(names == expected, "the header section holds exactly the builder's headers");
}

void mailbox_from(std::string_view text, worker::Mailbox& out) {
  out = worker::parse_mailbox(text);
  for (const char c : out.address) {
    check(c > 0x20 && c < 0x7f, "a parsed address is printable ASCII without spaces",
          out.address);
  }
  check(out.address.find('@') != std::string::npos, "a parsed address has an '@'", out.address);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto fields = split_fields(notifs::fuzz::as_text(data, size));
  worker::EmailContent content;
  try {
    mailbox_from(field(fields, 0), content.from);
  } catch (const worker::EmailFormatError&) {
    content.from = {"Notifications", "noreply@example.com"};
  } catch (...) {
    notifs::fuzz::fail_unexpected("parse_mailbox");
  }
  content.to = {std::string(field(fields, 1)), std::string(field(fields, 2))};
  content.subject = std::string(field(fields, 3));
  content.text_body = std::string(field(fields, 4));
  if (fields.size() > 6) {
    content.html_body = std::string(field(fields, 5));
  }
  content.notification_id = std::string(field(fields, fields.size() > 6 ? 6 : 5));
  content.date = std::chrono::system_clock::time_point(std::chrono::seconds(1'790'000'000));

  std::string message;
  try {
    message = worker::build_email_message(content);
  } catch (const worker::EmailFormatError&) {
    return 0;
  } catch (...) {
    notifs::fuzz::fail_unexpected("build_email_message");
  }
  check_message(message, content.html_body.has_value());
  return 0;
}
