#pragma once

// RFC 5322 / MIME message bytes for one notification email.
//
// Pure functions: no I/O, no clock (the Date is an input), so every byte is unit-tested.
// The output is ready for SMTP DATA: CRLF line ends, no line over 76 characters except a
// header that holds one unbreakable token (never over 998), 7-bit only (UTF-8 travels as
// quoted-printable bodies and RFC 2047 encoded-words).

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace notifs::worker {

// Why a message could not be built: an input that would break the header structure (CR or
// LF in a header field, an address that is not one), named by field. The message can never
// be sent as is, so the caller treats this as a permanent failure.
class EmailFormatError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A display name (any UTF-8, may be empty) and an addr-spec ("local@domain", printable
// ASCII without spaces; internationalised addresses are not supported).
struct Mailbox {
  std::string name;
  std::string address;
};

// Parses "Name <addr>", "\"Quoted, Name\" <addr>", "<addr>" or a bare "addr" (SMTP_FROM).
// Throws EmailFormatError when there is no valid address.
Mailbox parse_mailbox(std::string_view text);

struct EmailContent {
  Mailbox from;
  Mailbox to;
  std::string subject;                   // UTF-8, one line
  std::string text_body;                 // UTF-8; any of CRLF, LF, CR ends a line
  std::optional<std::string> html_body;  // present: multipart/alternative (text, then html)
  std::string notification_id;           // Message-ID <notification_id@domain of from>
  std::chrono::system_clock::time_point date;  // rendered in UTC
};

// The whole message. Throws EmailFormatError for CR/LF (or other control characters) in
// the subject, a name or the notification id, and for invalid addresses: refusing is the
// only safe answer to header injection.
std::string build_email_message(const EmailContent& content);

// Building blocks, public because each has rules worth testing on its own.

// `text` as quoted-printable (RFC 2045 6.7): every line end becomes a CRLF hard break,
// output lines stay within 76 characters through soft breaks, never splitting an =XX.
std::string encode_quoted_printable(std::string_view text);

// Base64 of `bytes` without line breaks.
std::string encode_base64(std::string_view bytes);

// An unstructured header value (a subject) as it follows "Name: " (`name_length` counts
// "Name: "): unchanged when printable ASCII and short; folded at spaces when long; otherwise
// RFC 2047 B encoded-words in UTF-8, each at most 75 characters, never splitting a UTF-8
// character, on lines of at most 76. Throws EmailFormatError on control characters.
std::string encode_unstructured_header(std::string_view value, std::size_t name_length);

// A mailbox as a header value: `addr`, `Name <addr>`, `"Quoted, Name" <addr>` or encoded
// words for a non-ASCII name, folded like encode_unstructured_header.
std::string format_mailbox(const Mailbox& mailbox, std::size_t name_length);

// RFC 5322 date-time in UTC: "Sun, 29 Nov 2026 22:14:26 +0000".
std::string format_rfc5322_date(std::chrono::system_clock::time_point when);

}  // namespace notifs::worker
