// template_service's request parsing: every problem of a body reported at once, per field;
// the limits at their exact edges; locales in canonical form.
#include "template_validation.hpp"

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "notifs/messaging/http/envelope.hpp"

namespace ts = notifs::template_service;
namespace http = notifs::messaging::http;
using nlohmann::json;

namespace {

// The {field: problem} pairs of the 400 that `parse` throws; FAILs when it does not.
std::map<std::string, std::string> problems_of(const std::function<void()>& parse) {
  try {
    parse();
  } catch (const http::HttpError& error) {
    CHECK(error.status() == 400);
    CHECK(error.code() == "validation_failed");
    std::map<std::string, std::string> out;
    for (const auto& detail : error.details()) {
      CHECK(out.count(detail.field) == 0);  // one detail per field
      out[detail.field] = detail.problem;
    }
    return out;
  }
  FAIL("no 400 was thrown");
  return {};
}

json email_body() {
  return {{"code", "welcome_email"},
          {"channel", "email"},
          {"locale", "fr"},
          {"subject", "Bienvenue {{name}}"},
          {"body", "Bonjour {{name}}"},
          {"html_body", "<p>Bonjour {{name}}</p>"}};
}

json push_body() {
  return {{"code", "welcome.push-1"},
          {"channel", "push"},
          {"title", "Hi {{name}}"},
          {"body", "Welcome"}};
}

http::Request request_with_query(std::vector<std::pair<std::string, std::string>> query) {
  http::Request request;
  request.query = std::move(query);
  return request;
}

}  // namespace

TEST_CASE("template_validation: a valid email and push template parse, locale defaulting to en",
          "[template_validation]") {
  const auto email = ts::parse_new_template(email_body());
  CHECK(email.code == "welcome_email");
  CHECK(email.channel == ts::Channel::email);
  CHECK(email.locale == "fr");
  CHECK(email.content.subject == "Bienvenue {{name}}");
  CHECK(email.content.body == "Bonjour {{name}}");
  CHECK(email.content.html_body == std::optional<std::string>("<p>Bonjour {{name}}</p>"));

  const auto push = ts::parse_new_template(push_body());
  CHECK(push.channel == ts::Channel::push);
  CHECK(push.locale == "en");
  CHECK(push.content.title == "Hi {{name}}");
  CHECK(push.content.body == "Welcome");
  CHECK_FALSE(push.content.html_body);

  auto without_html = email_body();
  without_html["html_body"] = nullptr;
  CHECK_FALSE(ts::parse_new_template(without_html).content.html_body);
  without_html.erase("html_body");
  CHECK_FALSE(ts::parse_new_template(without_html).content.html_body);
}

TEST_CASE("template_validation: every problem of a create body is reported at once",
          "[template_validation]") {
  const auto problems = problems_of([] {
    ts::parse_new_template({{"code", "Bad Code"},
                            {"channel", "sms"},
                            {"locale", "english"},
                            {"body", 5},
                            {"extra", true}});
  });
  CHECK(problems == std::map<std::string, std::string>{
                        {"code", "must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-'"},
                        {"channel", "must be \"email\" or \"push\""},
                        {"locale", "must be a locale such as en, fr or pt-BR"},
                        {"body", "must be a string, got number"},
                        {"extra", "is not a field of this request"}});

  CHECK(problems_of([] { ts::parse_new_template(json::object()); }) ==
        std::map<std::string, std::string>{{"code", "is required"}, {"channel", "is required"}});
  CHECK(problems_of([] {
          ts::parse_new_template({{"code", "x"}, {"channel", "email"}});
        }) == std::map<std::string, std::string>{{"subject", "is required for email templates"},
                                                 {"body", "is required for email templates"}});
}

TEST_CASE("template_validation: fields of the other channel are refused", "[template_validation]") {
  auto push = push_body();
  push["subject"] = "s";
  push["html_body"] = "<p>";
  CHECK(problems_of([&] { ts::parse_new_template(push); }) ==
        std::map<std::string, std::string>{{"subject", "is not a field of push templates"},
                                           {"html_body", "is not a field of push templates"}});
  auto email = email_body();
  email["title"] = "t";
  CHECK(problems_of([&] { ts::parse_new_template(email); }) ==
        std::map<std::string, std::string>{{"title", "is not a field of email templates"}});
}

TEST_CASE("template_validation: codes: [a-z0-9_.-]{1,64}", "[template_validation]") {
  CHECK(ts::is_valid_code("a"));
  CHECK(ts::is_valid_code("welcome_email.v2-b"));
  CHECK(ts::is_valid_code(std::string(64, 'x')));
  CHECK_FALSE(ts::is_valid_code(std::string(65, 'x')));
  CHECK_FALSE(ts::is_valid_code(""));
  CHECK_FALSE(ts::is_valid_code("Welcome"));
  CHECK_FALSE(ts::is_valid_code("a b"));
  CHECK_FALSE(ts::is_valid_code("'; DROP TABLE templates; --"));
  CHECK_FALSE(ts::is_valid_code("caf\xC3\xA9"));
  CHECK_FALSE(ts::is_valid_code(std::string("a\0b", 3)));
  CHECK(ts::parse_code_param("ok.code") == "ok.code");
  CHECK(problems_of([] { ts::parse_code_param("NOPE"); }).count("code") == 1);
}

TEST_CASE("template_validation: locales take a canonical case, odd ones asked for are kept",
          "[template_validation]") {
  CHECK(ts::canonical_locale("en") == std::optional<std::string>("en"));
  CHECK(ts::canonical_locale("pt-BR") == std::optional<std::string>("pt-BR"));
  CHECK(ts::canonical_locale("pt-br") == std::optional<std::string>("pt-BR"));
  CHECK(ts::canonical_locale("PT_br") == std::optional<std::string>("pt-BR"));
  CHECK(ts::canonical_locale("zh-hant-tw") == std::optional<std::string>("zh-Hant-TW"));
  CHECK(ts::canonical_locale("es-419") == std::optional<std::string>("es-419"));
  CHECK(ts::canonical_locale("fil") == std::optional<std::string>("fil"));
  for (const char* bad :
       {"", "e", "engl", "en-", "-en", "en-USA", "en-U1", "en-US-x", "e1", "en US", "fr-1234"}) {
    INFO(bad);
    CHECK_FALSE(ts::canonical_locale(bad));
  }
  CHECK(ts::requested_locale("pt-br") == std::optional<std::string>("pt-BR"));
  CHECK(ts::requested_locale("en-US-x-private") == std::optional<std::string>("en-US-x-private"));
  CHECK_FALSE(ts::requested_locale(""));
  CHECK_FALSE(ts::requested_locale("en US"));
  CHECK_FALSE(ts::requested_locale("'; DROP"));
  CHECK_FALSE(ts::requested_locale(std::string(36, 'a')));

  auto body = email_body();
  body["locale"] = "PT-br";
  CHECK(ts::parse_new_template(body).locale == "pt-BR");
  // A stored locale must have the canonical shape.
  body["locale"] = "en-US-x-private";
  CHECK(problems_of([&] { ts::parse_new_template(body); }).count("locale") == 1);
}

TEST_CASE("template_validation: subject: one line of at most 998 characters",
          "[template_validation]") {
  auto body = email_body();
  std::string subject;
  for (int i = 0; i < 998; ++i) {
    subject += "\xC3\xA9";  // two bytes, one character
  }
  body["subject"] = subject;
  CHECK(ts::parse_new_template(body).content.subject == subject);
  body["subject"] = subject + "e";
  CHECK(problems_of([&] { ts::parse_new_template(body); }) ==
        std::map<std::string, std::string>{{"subject", "must be at most 998 characters"}});
  for (const char* broken : {"a\nb", "a\rb", "a\r\nb"}) {
    body["subject"] = broken;
    CHECK(problems_of([&] { ts::parse_new_template(body); }) ==
          std::map<std::string, std::string>{{"subject", "must be one line (no CR or LF)"}});
  }
}

TEST_CASE("template_validation: bodies: at most 32 KiB (push: 4 KiB), never empty",
          "[template_validation]") {
  auto body = email_body();
  body["body"] = std::string(ts::kMaxBodyBytes, 'b');
  body["html_body"] = std::string(ts::kMaxBodyBytes, 'h');
  CHECK(ts::parse_new_template(body).content.body.size() == ts::kMaxBodyBytes);
  body["body"] = std::string(ts::kMaxBodyBytes + 1, 'b');
  body["html_body"] = std::string(ts::kMaxBodyBytes + 1, 'h');
  CHECK(problems_of([&] { ts::parse_new_template(body); }) ==
        std::map<std::string, std::string>{{"body", "must be at most 32768 bytes"},
                                           {"html_body", "must be at most 32768 bytes"}});
  body["body"] = "";
  body["html_body"] = "";
  CHECK(problems_of([&] { ts::parse_new_template(body); }) ==
        std::map<std::string, std::string>{
            {"body", "must not be empty"},
            {"html_body", "must not be empty (omit it or send null for none)"}});

  auto push = push_body();
  push["body"] = std::string(ts::kMaxPushBodyBytes, 'p');
  CHECK(ts::parse_new_template(push).content.body.size() == ts::kMaxPushBodyBytes);
  push["body"] = std::string(ts::kMaxPushBodyBytes + 1, 'p');
  CHECK(problems_of([&] { ts::parse_new_template(push); }) ==
        std::map<std::string, std::string>{
            {"body", "must be at most 4096 bytes for push templates"}});
  push["body"] = "ok";
  push["title"] = std::string(ts::kMaxTitleChars + 1, 't');
  CHECK(problems_of([&] { ts::parse_new_template(push); }) ==
        std::map<std::string, std::string>{{"title", "must be at most 256 characters"}});
}

TEST_CASE("template_validation: NUL in any string is refused", "[template_validation]") {
  for (const char* field : {"code", "locale", "subject", "body", "html_body"}) {
    auto body = email_body();
    body[field] = std::string("a\0b", 3);
    INFO(field);
    CHECK(problems_of([&] { ts::parse_new_template(body); })[field] ==
          "must not contain NUL characters (\\u0000)");
  }
}

TEST_CASE("template_validation: a text that is not Mustache is refused naming the field",
          "[template_validation]") {
  auto body = email_body();
  body["subject"] = "Hi {{name";
  body["html_body"] = "{{> footer}}";
  const auto problems = problems_of([&] { ts::parse_new_template(body); });
  REQUIRE(problems.size() == 2);
  CHECK_THAT(problems.at("subject"),
             Catch::Contains("not a valid Mustache template: Unclosed tag"));
  CHECK(problems.at("html_body") == "uses the partial {{> footer}}; partials are not supported");
}

TEST_CASE(
    "template_validation: a new version: locale, optional channel, fields checked per channel "
    "later",
    "[template_validation]") {
  const auto version =
      ts::parse_new_version({{"locale", "fr"}, {"title", "T"}, {"body", "B"}}, "welcome");
  CHECK(version.locale == "fr");
  CHECK_FALSE(version.channel);
  CHECK(version.content.title == std::optional<std::string>("T"));

  const auto same = ts::parse_new_version(email_body(), "welcome_email");
  CHECK(same.channel == std::optional<ts::Channel>(ts::Channel::email));
  CHECK(problems_of([] { ts::parse_new_version(email_body(), "other"); }) ==
        std::map<std::string, std::string>{
            {"code", "must be the code in the path (or be left out)"}});

  const auto push = ts::content_for_channel(ts::Channel::push, version.content);
  CHECK(push.title == "T");
  CHECK(push.body == "B");
  CHECK(problems_of([&] { ts::content_for_channel(ts::Channel::email, version.content); }) ==
        std::map<std::string, std::string>{{"subject", "is required for email templates"},
                                           {"title", "is not a field of email templates"}});
}

TEST_CASE("template_validation: render requests: locale, version, variables",
          "[template_validation]") {
  const auto plain = ts::parse_render_request(json::object());
  CHECK(plain.locale == "en");
  CHECK_FALSE(plain.version);
  CHECK(plain.variables == json::object());

  const auto full = ts::parse_render_request(
      {{"locale", "pt-br"}, {"version", 3}, {"variables", {{"name", "Ada"}}}});
  CHECK(full.locale == "pt-BR");
  CHECK(full.version == std::optional<std::int32_t>(3));
  CHECK(full.variables == json{{"name", "Ada"}});

  const auto nulls =
      ts::parse_render_request({{"locale", nullptr}, {"version", nullptr}, {"variables", nullptr}});
  CHECK(nulls.locale == "en");
  CHECK_FALSE(nulls.version);
  CHECK(nulls.variables == json::object());

  for (const json& bad : {json(0), json(-1), json(1.5), json("2"), json(2147483648LL)}) {
    INFO(bad.dump());
    CHECK(problems_of([&] {
            ts::parse_render_request({{"version", bad}});
          }) == std::map<std::string, std::string>{{"version", "must be a positive integer"}});
  }
  CHECK(ts::parse_render_request({{"version", 2147483647}}).version ==
        std::optional<std::int32_t>(2147483647));
  CHECK(problems_of([] {
          ts::parse_render_request({{"variables", json::array()}, {"channel", "email"}});
        }) == std::map<std::string, std::string>{{"variables", "must be a JSON object, got array"},
                                                 {"channel", "is not a field of this request"}});
}

TEST_CASE("template_validation: query parameters", "[template_validation]") {
  CHECK(ts::parse_locale_query(request_with_query({})) == "en");
  CHECK(ts::parse_locale_query(request_with_query({{"locale", "fr-ca"}})) == "fr-CA");
  CHECK(problems_of([] {
          ts::parse_locale_query(request_with_query({{"locale", ""}}));
        }) ==
        std::map<std::string, std::string>{{"locale", "must be a locale such as en, fr or pt-BR"}});
  CHECK_FALSE(ts::parse_optional_locale_query(request_with_query({})));

  CHECK_FALSE(ts::parse_version_query(request_with_query({})));
  CHECK(ts::parse_version_query(request_with_query({{"version", "12"}})) ==
        std::optional<std::int32_t>(12));
  for (const char* bad : {"", "0", "-1", "1.0", "abc", "1x", "99999999999", " 1"}) {
    INFO(bad);
    CHECK(problems_of([&] {
            ts::parse_version_query(request_with_query({{"version", bad}}));
          }).count("version") == 1);
  }

  CHECK_FALSE(ts::parse_channel_query(request_with_query({})));
  CHECK(ts::parse_channel_query(request_with_query({{"channel", "push"}})) ==
        std::optional<ts::Channel>(ts::Channel::push));
  CHECK(problems_of([] {
          ts::parse_channel_query(request_with_query({{"channel", "Email"}}));
        }).count("channel") == 1);
}
