// The bodies a worker and the gateway's status consumer take off the broker:
// decode_notification_job throws JobFormatError and nothing else, and what it accepts
// meets every documented rule; decode_status_event throws StatusEventError and nothing
// else, and what it accepts encodes and decodes back to itself (to the millisecond).
//
// Input: a selector byte (even: notification job, odd: status event), then the body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "notifs/contract/notification_job.hpp"
#include "notifs/contract/notification_status.hpp"
#include "notifs/messaging/common/request_id.hpp"

namespace contract = notifs::contract;
using notifs::fuzz::check;

namespace {

bool is_lower_uuid(const std::string& text) {
  return notifs::messaging::common::is_uuid(text) &&
         text.find_first_of("ABCDEF") == std::string::npos;
}

void job(std::string_view body) {
  contract::NotificationJob decoded;
  try {
    decoded = contract::decode_notification_job(body);
  } catch (const contract::JobFormatError&) {
    return;
  } catch (...) {
    notifs::fuzz::fail_unexpected("decode_notification_job");
  }
  check(is_lower_uuid(decoded.notification_id), "notification_id is a lower-case UUID",
        decoded.notification_id);
  check(is_lower_uuid(decoded.user_id), "user_id is a lower-case UUID", decoded.user_id);
  check(decoded.priority >= 0 && decoded.priority <= 9, "priority is 0..9");
  check(decoded.variables.is_object() && decoded.metadata.is_object(),
        "variables and metadata are objects");
  if (decoded.notification_type == "email") {
    check(!decoded.recipient.email.empty(), "an email job has an address");
  } else {
    check(decoded.notification_type == "push", "notification_type is email or push",
          decoded.notification_type);
    check(!decoded.recipient.push_tokens.empty(), "a push job has a token");
  }
}

contract::StatusEvent decode_event(std::string_view body, std::string_view where) {
  try {
    return contract::decode_status_event(body);
  } catch (...) {
    notifs::fuzz::fail_unexpected(where);
  }
}

void status(std::string_view body) {
  contract::StatusEvent event;
  try {
    event = contract::decode_status_event(body);
  } catch (const contract::StatusEventError&) {
    return;
  } catch (...) {
    notifs::fuzz::fail_unexpected("decode_status_event");
  }
  check(is_lower_uuid(event.notification_id), "notification_id is a lower-case UUID",
        event.notification_id);
  check(event.attempt <= contract::kMaxAttempt, "attempt within kMaxAttempt");
  check(event.error.size() <= contract::kMaxErrorBytes, "error cut to kMaxErrorBytes");
  check(event.error.find('\0') == std::string::npos, "no NUL in error");

  std::string encoded;
  try {
    encoded = contract::encode_status_event(event);
  } catch (...) {
    notifs::fuzz::fail_unexpected("encode_status_event of a decoded event");
  }
  // Encoding truncates to milliseconds, so compare from the first re-encoding on.
  const auto once = decode_event(encoded, "decode of an encoded event");
  check(once.notification_id == event.notification_id && once.status == event.status &&
            once.attempt == event.attempt && once.error == event.error,
        "a decoded event survives encode + decode", encoded);
  const auto twice = decode_event(contract::encode_status_event(once), "second round trip");
  check(twice == once, "encode + decode is stable", encoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  const auto body = notifs::fuzz::as_text(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    job(body);
  } else {
    status(body);
  }
  return 0;
}
