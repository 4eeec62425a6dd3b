// The status model: names, the notifications.status body, and the rule that keeps late and
// duplicate status events from moving a notification backwards.
#include "notifs/contract/notification_status.hpp"

#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace gw = notifs::contract;
using gw::Status;
using nlohmann::json;
using namespace std::chrono;

namespace {

constexpr const char* kId = "0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c";

constexpr std::array<Status, 6> kAll{Status::queued,    Status::processing, Status::retrying,
                                     Status::delivered, Status::failed,     Status::skipped};

// 2024-05-01T12:34:56.789Z plus sub-millisecond digits the body must not round up.
system_clock::time_point sample_time() {
  return sys_days{year{2024} / 5 / 1} + hours{12} + minutes{34} + seconds{56} +
         microseconds{789'999};
}

system_clock::time_point at_ms(int y, unsigned mo, unsigned d, int h, int mi, int s, int ms) {
  return sys_days{year{y} / month{mo} / day{d}} + hours{h} + minutes{mi} + seconds{s} +
         milliseconds{ms};
}

json valid_body() {
  return {{"notification_id", kId},
          {"status", "retrying"},
          {"attempt", 2},
          {"error", "smtp 451 try later"},
          {"timestamp", "2024-05-01T12:34:56.789Z"}};
}

constexpr const char* kAccepted = "<accepted>";

// The field a refused body names ("" for the body as a whole), or kAccepted.
std::string refused_field(const std::string& body) {
  try {
    gw::decode_status_event(body);
  } catch (const gw::StatusEventError& error) {
    return error.field();
  }
  return kAccepted;
}

std::string refused_field(const json& body) { return refused_field(body.dump()); }

json with(std::string key, json value) {
  json body = valid_body();
  body[key] = std::move(value);
  return body;
}

json without(const std::string& key) {
  json body = valid_body();
  body.erase(key);
  return body;
}

gw::StatusEvent event(Status status, std::uint32_t attempt) {
  return {kId, status, attempt, "", sample_time()};
}

}  // namespace

TEST_CASE("api_gateway notification_status: names round trip and nothing else is a status",
          "[api_gateway][notification_status]") {
  const std::array<const char*, 6> names{"queued",    "processing", "retrying",
                                         "delivered", "failed",     "skipped"};
  for (std::size_t i = 0; i < kAll.size(); ++i) {
    CHECK(gw::to_string(kAll[i]) == names[i]);
    CHECK(gw::status_from_string(names[i]) == kAll[i]);
  }
  for (const char* other : {"", "Delivered", "QUEUED", "pending", "delivered ", " failed",
                            "sent", "delivere"}) {
    INFO(other);
    CHECK_FALSE(gw::status_from_string(other).has_value());
  }
  CHECK_FALSE(gw::is_terminal(Status::queued));
  CHECK_FALSE(gw::is_terminal(Status::processing));
  CHECK_FALSE(gw::is_terminal(Status::retrying));
  CHECK(gw::is_terminal(Status::delivered));
  CHECK(gw::is_terminal(Status::failed));
  CHECK(gw::is_terminal(Status::skipped));
}

// Every (current, event) pair with the event's attempt one below, equal to and one above the
// current attempt (2). Written out by hand, not derived from the rule under test.
TEST_CASE("api_gateway notification_status: every transition pair, attempts below equal above",
          "[api_gateway][notification_status]") {
  struct Row {
    Status current;
    Status event;
    std::array<bool, 3> applies;  // event attempt 1, 2, 3 against current attempt 2
  };
  constexpr bool T = true;
  constexpr bool F = false;
  const std::vector<Row> table{
      // Non-terminal to non-terminal: (attempt, rank) must grow.
      {Status::queued, Status::queued, {F, F, T}},
      {Status::queued, Status::processing, {F, T, T}},
      {Status::queued, Status::retrying, {F, T, T}},
      {Status::processing, Status::queued, {F, F, T}},
      {Status::processing, Status::processing, {F, F, T}},
      {Status::processing, Status::retrying, {F, T, T}},
      {Status::retrying, Status::queued, {F, F, T}},
      {Status::retrying, Status::processing, {F, F, T}},
      {Status::retrying, Status::retrying, {F, F, T}},
      // Non-terminal to terminal: always, whatever the attempt.
      {Status::queued, Status::delivered, {T, T, T}},
      {Status::queued, Status::failed, {T, T, T}},
      {Status::queued, Status::skipped, {T, T, T}},
      {Status::processing, Status::delivered, {T, T, T}},
      {Status::processing, Status::failed, {T, T, T}},
      {Status::processing, Status::skipped, {T, T, T}},
      {Status::retrying, Status::delivered, {T, T, T}},
      {Status::retrying, Status::failed, {T, T, T}},
      {Status::retrying, Status::skipped, {T, T, T}},
      // Terminal: never again, not even the same status or a later attempt.
      {Status::delivered, Status::queued, {F, F, F}},
      {Status::delivered, Status::processing, {F, F, F}},
      {Status::delivered, Status::retrying, {F, F, F}},
      {Status::delivered, Status::delivered, {F, F, F}},
      {Status::delivered, Status::failed, {F, F, F}},
      {Status::delivered, Status::skipped, {F, F, F}},
      {Status::failed, Status::queued, {F, F, F}},
      {Status::failed, Status::processing, {F, F, F}},
      {Status::failed, Status::retrying, {F, F, F}},
      {Status::failed, Status::delivered, {F, F, F}},
      {Status::failed, Status::failed, {F, F, F}},
      {Status::failed, Status::skipped, {F, F, F}},
      {Status::skipped, Status::queued, {F, F, F}},
      {Status::skipped, Status::processing, {F, F, F}},
      {Status::skipped, Status::retrying, {F, F, F}},
      {Status::skipped, Status::delivered, {F, F, F}},
      {Status::skipped, Status::failed, {F, F, F}},
      {Status::skipped, Status::skipped, {F, F, F}},
  };
  // The table covers all 36 pairs exactly once.
  REQUIRE(table.size() == 36);
  for (const Status current : kAll) {
    for (const Status next : kAll) {
      CHECK(std::count_if(table.begin(), table.end(), [&](const Row& row) {
              return row.current == current && row.event == next;
            }) == 1);
    }
  }
  for (const Row& row : table) {
    for (std::uint32_t i = 0; i < 3; ++i) {
      const std::uint32_t attempt = i + 1;
      INFO("current " << gw::to_string(row.current) << " attempt 2, event "
                      << gw::to_string(row.event) << " attempt " << attempt);
      CHECK(gw::should_apply({row.current, 2}, event(row.event, attempt)) == row.applies[i]);
    }
  }
}

TEST_CASE("api_gateway notification_status: the rule at the attempt extremes",
          "[api_gateway][notification_status]") {
  // Attempt 0 (queued or skipped before any delivery attempt) is below every real attempt.
  CHECK(gw::should_apply({Status::queued, 0}, event(Status::processing, 1)));
  CHECK(gw::should_apply({Status::queued, 0}, event(Status::processing, 0)));
  CHECK_FALSE(gw::should_apply({Status::processing, 1}, event(Status::queued, 0)));
  // The top of the range compares without wrapping.
  CHECK(gw::should_apply({Status::retrying, gw::kMaxAttempt - 1},
                         event(Status::processing, gw::kMaxAttempt)));
  CHECK_FALSE(gw::should_apply({Status::processing, gw::kMaxAttempt},
                               event(Status::retrying, 0)));
  CHECK_FALSE(gw::should_apply({Status::retrying, gw::kMaxAttempt},
                               event(Status::retrying, gw::kMaxAttempt)));
}

// At-least-once delivery in any order: whatever order the events of one history arrive in,
// with a duplicate of each, the notification ends in the history's last state.
TEST_CASE("api_gateway notification_status: any arrival order ends in the last state",
          "[api_gateway][notification_status]") {
  const auto run = [](std::vector<gw::StatusEvent> history, gw::StoredStatus expected) {
    std::vector<std::size_t> order(history.size() * 2);
    for (std::size_t i = 0; i < order.size(); ++i) {
      order[i] = i % history.size();
    }
    std::sort(order.begin(), order.end());
    std::size_t permutations = 0;
    do {
      gw::StoredStatus stored{Status::queued, 0};
      std::size_t applied = 0;
      for (const std::size_t index : order) {
        if (gw::should_apply(stored, history[index])) {
          stored = {history[index].status, history[index].attempt};
          ++applied;
        }
      }
      CHECK(stored.status == expected.status);
      CHECK(stored.attempt == expected.attempt);
      // Duplicates never count twice: at most one application per distinct event.
      CHECK(applied <= history.size());
      ++permutations;
    } while (std::next_permutation(order.begin(), order.end()));
    CHECK(permutations > 1);
  };
  SECTION("two attempts, then delivered") {
    run({event(Status::processing, 1), event(Status::retrying, 1), event(Status::processing, 2),
         event(Status::delivered, 2)},
        {Status::delivered, 2});
  }
  SECTION("still retrying after two attempts") {
    run({event(Status::processing, 1), event(Status::retrying, 1), event(Status::processing, 2),
         event(Status::retrying, 2)},
        {Status::retrying, 2});
  }
  SECTION("failed at the third attempt") {
    run({event(Status::retrying, 1), event(Status::retrying, 2), event(Status::processing, 3),
         event(Status::failed, 3)},
        {Status::failed, 3});
  }
}

// kShouldApplySql is the same rule for an UPDATE ... WHERE. Its parts, against the C++:
//   status NOT IN ('delivered','failed','skipped')      <=> !is_terminal(current.status)
//   $2 IN ('delivered','failed','skipped')              <=> is_terminal(event.status)
//   $2 IN ('queued','processing','retrying') AND
//   ($3, rank($2)) > (attempts, rank(status))           <=> the (attempt, rank) comparison,
// with the same ranks 0, 1, 2 (PostgreSQL compares row constructors lexicographically, and
// an event equal to the row is not greater, so a duplicate is not applied). The extra
// "status NOT IN (the non-terminal three) OR" only matters for a status text outside the
// six, which StoredStatus cannot hold. Checked once by hand against PostgreSQL 15 (all
// 6 x 6 statuses x attempts {0, 1, 2, 3, kMaxAttempt}^2 = 900 rows agree with
// should_apply, typed and untyped parameters); the lead's integration test keeps it so.
// Here the test pins what can be checked without a database.
TEST_CASE("api_gateway notification_status: the SQL predicate is a constant over $2 and $3",
          "[api_gateway][notification_status]") {
  const std::string sql(gw::kShouldApplySql);
  CHECK(sql.find("$2") != std::string::npos);
  CHECK(sql.find("$3") != std::string::npos);
  // Only the event's two parameters: the caller's UPDATE owns $1 and any others.
  for (const char* other : {"$1", "$4", "$5", "$0"}) {
    CHECK(sql.find(other) == std::string::npos);
  }
  CHECK(sql.find(';') == std::string::npos);
  CHECK(std::count(sql.begin(), sql.end(), '(') == std::count(sql.begin(), sql.end(), ')'));
  CHECK(std::count(sql.begin(), sql.end(), '\'') % 2 == 0);
  // Every status name appears, quoted as the ledger stores it, with the rank order of the
  // C++ rule (queued 0, processing 1, retrying 2) in both CASE expressions.
  for (const Status status : kAll) {
    CHECK(sql.find("'" + std::string(gw::to_string(status)) + "'") != std::string::npos);
  }
  const std::string ranks = "WHEN 'queued' THEN 0 WHEN 'processing' THEN 1 WHEN 'retrying' THEN 2";
  const auto first = sql.find(ranks);
  REQUIRE(first != std::string::npos);
  CHECK(sql.find(ranks, first + 1) != std::string::npos);
}

TEST_CASE("api_gateway notification_status: an event encodes to the contract's body",
          "[api_gateway][notification_status]") {
  const gw::StatusEvent sent{kId, Status::retrying, 2, "smtp 451 try later", sample_time()};
  const json body = json::parse(gw::encode_status_event(sent));
  CHECK(body == json{{"notification_id", kId},
                     {"status", "retrying"},
                     {"attempt", 2},
                     {"error", "smtp 451 try later"},
                     {"timestamp", "2024-05-01T12:34:56.789Z"}});

  const gw::StatusEvent delivered{kId, Status::delivered, 1, "", sample_time()};
  const json delivered_body = gw::status_event_to_json(delivered);
  REQUIRE(delivered_body.contains("error"));
  CHECK(delivered_body["error"].is_null());
}

TEST_CASE("api_gateway notification_status: encode then decode gives the event back",
          "[api_gateway][notification_status]") {
  for (const Status status : kAll) {
    for (const std::uint32_t attempt : {0U, 1U, 7U, gw::kMaxAttempt}) {
      const gw::StatusEvent sent{kId, status, attempt,
                                 status == Status::failed ? "bounced: \u00e9\"\\\n" : "",
                                 at_ms(2026, 11, 29, 21, 5, 0, 42)};
      INFO(gw::to_string(status) << " attempt " << attempt);
      CHECK(gw::decode_status_event(gw::encode_status_event(sent)) == sent);
    }
  }
  // Sub-millisecond digits are truncated, never rounded into a later instant.
  gw::StatusEvent sent = event(Status::processing, 1);
  const auto back = gw::decode_status_event(gw::encode_status_event(sent));
  CHECK(back.at == at_ms(2024, 5, 1, 12, 34, 56, 789));
  // Before the epoch the truncation still goes down.
  sent.at = sys_days{year{1969} / 12 / 31} + hours{23} + minutes{59} + seconds{59} +
            microseconds{999'500};
  CHECK(gw::decode_status_event(gw::encode_status_event(sent)).at ==
        at_ms(1969, 12, 31, 23, 59, 59, 999));
  // An upper-case id is sent and read back lower case.
  sent.notification_id = "0B7E6A3C-1D2F-4E5A-8B9C-0D1E2F3A4B5C";
  CHECK(gw::decode_status_event(gw::encode_status_event(sent)).notification_id == kId);
}

TEST_CASE("api_gateway notification_status: encode refuses what decode would refuse",
          "[api_gateway][notification_status]") {
  gw::StatusEvent bad = event(Status::queued, 0);
  bad.notification_id = "";
  CHECK_THROWS_AS(gw::encode_status_event(bad), std::invalid_argument);
  bad.notification_id = "not-a-uuid";
  CHECK_THROWS_AS(gw::encode_status_event(bad), std::invalid_argument);
  bad = event(Status::processing, gw::kMaxAttempt + 1U);
  CHECK_THROWS_AS(gw::encode_status_event(bad), std::invalid_argument);
}

TEST_CASE("api_gateway notification_status: decode accepts the lenient spellings",
          "[api_gateway][notification_status]") {
  SECTION("unknown members are ignored and a missing or empty error means none") {
    json body = valid_body();
    body["worker"] = "email-1";
    body["extra"] = json::array({1, 2});
    CHECK(gw::decode_status_event(body.dump()).error == "smtp 451 try later");
    CHECK(gw::decode_status_event(without("error").dump()).error.empty());
    CHECK(gw::decode_status_event(with("error", nullptr).dump()).error.empty());
    CHECK(gw::decode_status_event(with("error", "").dump()).error.empty());
  }
  SECTION("an upper-case id comes back lower case") {
    const auto decoded = gw::decode_status_event(
        with("notification_id", "0B7E6A3C-1D2F-4E5A-8B9C-0D1E2F3A4B5C").dump());
    CHECK(decoded.notification_id == kId);
  }
  SECTION("attempt 0 and -0, and a json built in C++ with signed integers") {
    CHECK(gw::decode_status_event(with("attempt", 0).dump()).attempt == 0);
    CHECK(gw::decode_status_event(std::string(R"({"notification_id":")") + kId +
                                  R"(","status":"queued","attempt":-0,)"
                                  R"("timestamp":"2024-05-01T12:34:56Z"})")
              .attempt == 0);
    json signed_body = valid_body();
    signed_body["attempt"] = static_cast<std::int64_t>(3);
    REQUIRE(signed_body["attempt"].is_number_integer());
    REQUIRE_FALSE(signed_body["attempt"].is_number_unsigned());
    CHECK(gw::status_event_from_json(signed_body).attempt == 3);
    CHECK(gw::decode_status_event(with("attempt", 2147483647).dump()).attempt == gw::kMaxAttempt);
  }
  SECTION("RFC 3339 variants: offsets, lower case, fraction lengths") {
    const auto decode_at = [](const char* text) {
      return gw::decode_status_event(with("timestamp", text).dump()).at;
    };
    CHECK(decode_at("2024-05-01T12:34:56Z") == at_ms(2024, 5, 1, 12, 34, 56, 0));
    CHECK(decode_at("2024-05-01t12:34:56.7z") == at_ms(2024, 5, 1, 12, 34, 56, 700));
    CHECK(decode_at("2024-05-01T14:34:56.789+02:00") == at_ms(2024, 5, 1, 12, 34, 56, 789));
    CHECK(decode_at("2024-04-30T23:04:56.789-13:30") == at_ms(2024, 5, 1, 12, 34, 56, 789));
    CHECK(decode_at("2024-05-01T12:34:56.789-00:00") == at_ms(2024, 5, 1, 12, 34, 56, 789));
    CHECK(decode_at("2024-05-01T12:34:56.123456789Z") ==
          at_ms(2024, 5, 1, 12, 34, 56, 123) + nanoseconds{456'789});
    CHECK(decode_at("2024-02-29T00:00:00Z") == at_ms(2024, 2, 29, 0, 0, 0, 0));
    CHECK(decode_at("1970-01-01T00:00:00.000Z") == system_clock::time_point{});
  }
  SECTION("NUL in the error becomes U+FFFD, a long error is cut at a character boundary") {
    CHECK(gw::decode_status_event(with("error", std::string("a\0b", 3)).dump()).error ==
          "a\xEF\xBF\xBD"
          "b");
    // 2047 ASCII bytes, then a 2-byte character straddling the limit: it goes entirely.
    const std::string straddling = std::string(gw::kMaxErrorBytes - 1, 'x') + "\u00e9tail";
    CHECK(gw::decode_status_event(with("error", straddling).dump()).error ==
          std::string(gw::kMaxErrorBytes - 1, 'x'));
    const std::string exact(gw::kMaxErrorBytes, 'y');
    CHECK(gw::decode_status_event(with("error", exact + "z").dump()).error == exact);
    CHECK(gw::decode_status_event(with("error", exact).dump()).error == exact);
  }
}

TEST_CASE("api_gateway notification_status: malformed bodies are refused naming the field",
          "[api_gateway][notification_status]") {
  CHECK(refused_field(valid_body()) == kAccepted);

  SECTION("the body as a whole") {
    for (const std::string& body : std::vector<std::string>{"", " ", "{", "not json", "[]", "1", "\"text\"", "null", "true", "{\"a\":1} {}",
          std::string("{\"notification_id\":\"\xFF\"}")}) {
      INFO(body);
      CHECK(refused_field(body) == std::string(""));
    }
    // Hostile nesting, at the top and inside a member, ends in a refusal, not a crash.
    CHECK(refused_field(std::string(100'000, '[') + std::string(100'000, ']')) == std::string(""));
    json deep = valid_body();
    CHECK(refused_field(deep.dump().substr(0, deep.dump().size() - 1) + ",\"x\":" +
                        std::string(50'000, '{') + "}") == std::string(""));
    CHECK_THROWS_AS(gw::status_event_from_json(json::array()), gw::StatusEventError);
  }
  SECTION("missing or null required members") {
    for (const char* key : {"notification_id", "status", "attempt", "timestamp"}) {
      INFO(key);
      CHECK(refused_field(without(key)) == std::string(key));
      CHECK(refused_field(with(key, nullptr)) == std::string(key));
    }
  }
  SECTION("notification_id") {
    for (const json& value : {json(5), json(""), json("abc"), json(true), json::object(),
                              json("0b7e6a3c1d2f4e5a8b9c0d1e2f3a4b5c"),
                              json("{0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5c}"),
                              json("0b7e6a3c-1d2f-4e5a-8b9c-0d1e2f3a4b5g")}) {
      INFO(value.dump());
      CHECK(refused_field(with("notification_id", value)) == std::string("notification_id"));
    }
  }
  SECTION("status") {
    for (const json& value : {json(1), json("Delivered"), json("pending"), json(""),
                              json::array({"queued"}), json(false)}) {
      INFO(value.dump());
      CHECK(refused_field(with("status", value)) == std::string("status"));
    }
  }
  SECTION("attempt: wrong types, negative, fractional, huge") {
    for (const char* text : {"\"1\"", "true", "1.0", "1.5", "1e2", "-1", "-2147483648",
                             "2147483648", "4294967295", "4294967296", "18446744073709551615",
                             "99999999999999999999999", "1e300", "-1e300", "[]", "{}"}) {
      INFO(text);
      const std::string body = std::string(R"({"notification_id":")") + kId +
                               R"(","status":"processing","attempt":)" + text +
                               R"(,"timestamp":"2024-05-01T12:34:56Z"})";
      CHECK(refused_field(body) == std::string("attempt"));
    }
  }
  SECTION("error") {
    for (const json& value : {json(5), json(false), json::object(), json::array({"x"})}) {
      INFO(value.dump());
      CHECK(refused_field(with("error", value)) == std::string("error"));
    }
  }
  SECTION("timestamp") {
    for (const json& value :
         {json(1714566896), json(""), json("2024-05-01"), json("2024-05-01T12:34:56"),
          json("2024-05-01 12:34:56Z"), json("2024-05-01T12:34:56.Z"),
          json("2024-05-01T12:34:56.1234567890Z"), json("2024-13-01T00:00:00Z"),
          json("2024-00-01T00:00:00Z"), json("2023-02-29T00:00:00Z"),
          json("2024-04-31T00:00:00Z"), json("2024-05-01T24:00:00Z"),
          json("2024-05-01T12:60:00Z"), json("2016-12-31T23:59:60Z"),
          json("2024-05-01T12:34:56+0200"), json("2024-05-01T12:34:56+24:00"),
          json("2024-05-01T12:34:56+02:60"), json("2024-05-01T12:34:56Zjunk"),
          json("2024-5-1T12:34:56Z"), json("+2024-05-01T12:34:56Z"), json("2024-05-01T1:34:56Z"),
          json("3000-01-01T00:00:00Z"), json("0001-01-01T00:00:00Z"),
          json("2024-05-01T12:34:56.789UTC"), json(" 2024-05-01T12:34:56Z")}) {
      INFO(value.dump());
      CHECK(refused_field(with("timestamp", value)) == std::string("timestamp"));
    }
  }
  SECTION("the first bad member is named and the message carries it") {
    try {
      gw::decode_status_event(with("status", "sent").dump());
      FAIL("decoded an unknown status");
    } catch (const gw::StatusEventError& error) {
      CHECK(error.field() == "status");
      CHECK(std::string(error.what()).find("status") != std::string::npos);
    }
    const auto message_for = [](const json& body) -> std::string {
      try {
        gw::decode_status_event(body.dump());
      } catch (const gw::StatusEventError& error) {
        return error.what();
      }
      return kAccepted;
    };
    CHECK_THAT(message_for(with("attempt", -1)), Catch::Contains("negative"));
    CHECK_THAT(message_for(with("attempt", 2147483648LL)), Catch::Contains("at most 2147483647"));
    CHECK_THAT(message_for(with("attempt", 1.5)), Catch::Contains("integer"));
  }
}
