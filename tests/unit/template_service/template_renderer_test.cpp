// Mustache rendering of template_service: escaping per field, sections, lists, dotted
// names, how JSON variables print, and every missing variable reported in one answer.
#include "template_renderer.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace ts = notifs::template_service;
using nlohmann::json;

namespace {

// One field, rendered; FAILs when variables are missing.
std::string render_text(const std::string& text, const json& variables,
                        ts::Escaping escaping = ts::Escaping::none) {
  const ts::TemplateRenderer renderer({{"body", text, escaping}});
  const auto result = renderer.render(variables);
  INFO("missing: " << json(result.missing).dump());
  REQUIRE(result.missing.empty());
  REQUIRE(result.fields.size() == 1);
  return result.fields[0].second;
}

std::vector<std::string> missing_of(const std::vector<ts::FieldSource>& fields,
                                    const json& variables) {
  const ts::TemplateRenderer renderer(fields);
  const auto result = renderer.render(variables);
  if (!result.missing.empty()) {
    CHECK(result.fields.empty());
  }
  return result.missing;
}

std::vector<notifs::messaging::http::FieldProblem> syntax_problems(
    const std::vector<ts::FieldSource>& fields) {
  try {
    const ts::TemplateRenderer renderer(fields);
  } catch (const ts::TemplateSyntaxError& error) {
    return error.problems();
  }
  FAIL("the template compiled");
  return {};
}

}  // namespace

TEST_CASE("template_renderer: html_body escapes {{x}}, subject and body never escape",
          "[template_renderer]") {
  const json variables = {{"name", R"(<b>Ada & "Bob" 'x'</b>)"}};
  const ts::TemplateRenderer renderer({{"subject", "Hi {{name}}", ts::Escaping::none},
                                       {"body", "Hello {{name}}", ts::Escaping::none},
                                       {"html_body", "<p>{{name}}</p>", ts::Escaping::html}});
  const auto result = renderer.render(variables);
  REQUIRE(result.missing.empty());
  REQUIRE(result.fields.size() == 3);
  CHECK(result.fields[0] ==
        std::pair<std::string, std::string>{"subject", R"(Hi <b>Ada & "Bob" 'x'</b>)"});
  CHECK(result.fields[1].second == R"(Hello <b>Ada & "Bob" 'x'</b>)");
  CHECK(result.fields[2].second ==
        "<p>&lt;b&gt;Ada &amp; &quot;Bob&quot; &apos;x&apos;&lt;/b&gt;</p>");
}

TEST_CASE("template_renderer: triple mustache and {{& x}} stay raw in html_body",
          "[template_renderer]") {
  const json variables = {{"link", "<a href=\"/x?a=1&b=2\">go</a>"}};
  CHECK(render_text("{{{link}}}|{{& link}}|{{link}}", variables, ts::Escaping::html) ==
        "<a href=\"/x?a=1&b=2\">go</a>|<a href=\"/x?a=1&b=2\">go</a>|"
        "&lt;a href=&quot;/x?a=1&amp;b=2&quot;&gt;go&lt;/a&gt;");
}

TEST_CASE("template_renderer: sections are conditions and loops, inverted sections their opposite",
          "[template_renderer]") {
  const std::string text =
      "{{#vip}}VIP {{/vip}}{{^vip}}regular {{/vip}}"
      "{{#items}}[{{title}}:{{price}}]{{/items}}{{^items}}no items{{/items}}";
  CHECK(render_text(
            text, {{"vip", true},
                   {"items", {{{"title", "a"}, {"price", 1}}, {{"title", "b"}, {"price", 2}}}}}) ==
        "VIP [a:1][b:2]");
  CHECK(render_text(text, {{"vip", false}, {"items", json::array()}}) == "regular no items");
  // An object as a section: rendered once, its keys in scope, outer names still visible.
  CHECK(render_text("{{#user}}{{name}} of {{team}}{{/user}}",
                    {{"user", {{"name", "Ada"}}}, {"team", "core"}}) == "Ada of core");
  // A list of strings, each item as {{.}}.
  CHECK(render_text("{{#tags}}<{{.}}>{{/tags}}", {{"tags", {"x", "y", "z"}}}) == "<x><y><z>");
  // Lists of lists.
  CHECK(render_text("{{#rows}}({{#.}}{{.}}{{/.}}){{/rows}}", {{"rows", {{1, 2}, {3}}}}) ==
        "(12)(3)");
}

TEST_CASE("template_renderer: dotted names reach into objects", "[template_renderer]") {
  const json variables = {{"user", {{"name", "Ada"}, {"address", {{"city", "Paris"}}}}}};
  CHECK(render_text("{{user.name}} lives in {{user.address.city}}", variables) ==
        "Ada lives in Paris");
  CHECK(missing_of({{"body", "{{user.name}} {{user.email}} {{user.address.zip}}"}}, variables) ==
        std::vector<std::string>{"user.address.zip", "user.email"});
}

TEST_CASE("template_renderer: every missing variable of every field is reported, sorted, once",
          "[template_renderer]") {
  const std::vector<ts::FieldSource> fields = {
      {"subject", "{{greeting}}, {{name}}", ts::Escaping::none},
      {"body", "{{name}} {{link}} {{{raw}}} {{& amp}}", ts::Escaping::none},
      {"html_body", "<p>{{zeta}} {{name}}</p>", ts::Escaping::html}};
  CHECK(missing_of(fields, json::object()) ==
        std::vector<std::string>{"amp", "greeting", "link", "name", "raw", "zeta"});
  CHECK(missing_of(fields, {{"name", "Ada"}, {"greeting", "Hi"}, {"raw", "r"}}) ==
        std::vector<std::string>{"amp", "link", "zeta"});
  CHECK(missing_of(fields, {{"name", "A"},
                            {"greeting", "H"},
                            {"raw", "r"},
                            {"amp", "a"},
                            {"link", "l"},
                            {"zeta", "z"}})
            .empty());
}

TEST_CASE("template_renderer: a section over a missing name is false, not missing",
          "[template_renderer]") {
  // The section is skipped, and with it the interpolation inside.
  CHECK(render_text("Hello{{#name}} {{name}}{{/name}}!", json::object()) == "Hello!");
  CHECK(render_text("{{^vip}}regular{{/vip}}", json::object()) == "regular");
  // The same name as an interpolation outside any section is missing.
  CHECK(missing_of({{"body", "{{#vip}}VIP{{/vip}} {{vip}}"}}, json::object()) ==
        std::vector<std::string>{"vip"});
  // Inside an inverted section that renders, a missing interpolation is reported.
  CHECK(missing_of({{"body", "{{^vip}}{{name}}{{/vip}}"}}, json::object()) ==
        std::vector<std::string>{"name"});
}

TEST_CASE("template_renderer: a name missing from a list item and from the outer scope is missing",
          "[template_renderer]") {
  CHECK(missing_of({{"body", "{{#items}}{{title}}{{/items}}"}},
                   {{"items", {{{"title", "a"}}, json::object()}}}) ==
        std::vector<std::string>{"title"});
  // Found in the outer scope: fine.
  CHECK(render_text("{{#items}}{{title}}{{/items}}", {{"items", {{{"title", "a"}}, json::object()}},
                                                      {"title", "outer"}}) == "aouter");
}

TEST_CASE("template_renderer: null is present and empty, booleans and numbers print as JSON text",
          "[template_renderer]") {
  CHECK(render_text("[{{nothing}}]{{#nothing}}x{{/nothing}}{{^nothing}}empty{{/nothing}}",
                    {{"nothing", nullptr}}) == "[]empty");
  CHECK(render_text("{{yes}} {{no}} {{#yes}}Y{{/yes}}{{#no}}N{{/no}}",
                    {{"yes", true}, {"no", false}}) == "true false Y");
  CHECK(render_text("{{i}} {{neg}} {{big}} {{f}} {{whole}} {{tiny}}",
                    {{"i", 42},
                     {"neg", -7},
                     {"big", 18446744073709551615ULL},
                     {"f", 2.5},
                     {"whole", 1.0},
                     {"tiny", 1e-7}}) == "42 -7 18446744073709551615 2.5 1.0 1e-07");
  // A zero is a value (true for a section), unlike in some Mustache implementations.
  CHECK(render_text("{{#count}}{{count}} left{{/count}}", {{"count", 0}}) == "0 left");
  // Lists and objects print nothing.
  CHECK(render_text("[{{list}}][{{obj}}]", {{"list", {1, 2}}, {"obj", {{"a", 1}}}}) == "[][]");
}

TEST_CASE("template_renderer: strings are inserted as they are, templates in them are not expanded",
          "[template_renderer]") {
  CHECK(render_text("{{a}}", {{"a", "{{b}} '; DROP TABLE templates; -- \xC3\xA9\xE2\x9C\x93"}}) ==
        "{{b}} '; DROP TABLE templates; -- \xC3\xA9\xE2\x9C\x93");
}

TEST_CASE("template_renderer: set-delimiter tags and comments work", "[template_renderer]") {
  CHECK(render_text("{{! a comment }}{{=<% %>=}}<% name %> {{literal}}", {{"name", "Ada"}}) ==
        "Ada {{literal}}");
}

TEST_CASE("template_renderer: variables() lists the names the fields use, sorted",
          "[template_renderer]") {
  const ts::TemplateRenderer renderer(
      {{"subject", "{{b}} {{a}}", ts::Escaping::none},
       {"body", "{{#items}}{{.}}{{title}}{{/items}}{{^c}}{{/c}}{{{d}}}{{user.name}}{{a}}",
        ts::Escaping::none}});
  CHECK(renderer.variables() ==
        std::vector<std::string>{"a", "b", "c", "d", "items", "title", "user.name"});
}

TEST_CASE("template_renderer: a text that does not compile names the field and the parser's error",
          "[template_renderer]") {
  const auto problems = syntax_problems({{"subject", "fine {{x}}", ts::Escaping::none},
                                         {"body", "Hello {{name", ts::Escaping::none},
                                         {"html_body", "{{#a}}never closed", ts::Escaping::html}});
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].field == "body");
  CHECK_THAT(problems[0].problem, Catch::Contains("not a valid Mustache template") &&
                                      Catch::Contains("Unclosed tag at 6"));
  CHECK(problems[1].field == "html_body");
  CHECK_THAT(problems[1].problem, Catch::Contains("Unclosed section \"a\""));

  CHECK_THAT(*ts::template_problem("{{/a}}"), Catch::Contains("Unopened section"));
  CHECK_THAT(*ts::template_problem("{{#a}}{{/b}}"), Catch::Contains("Unclosed section"));
  CHECK_THAT(*ts::template_problem("{{=<% =}}"), Catch::Contains("Invalid set delimiter"));
  CHECK_FALSE(ts::template_problem("plain text, no tags"));
  CHECK_FALSE(ts::template_problem(""));
}

TEST_CASE("template_renderer: partials, empty tags and deep nesting are refused",
          "[template_renderer]") {
  CHECK(*ts::template_problem("Hi {{> footer}}") ==
        "uses the partial {{> footer}}; partials are not supported");
  CHECK_THAT(*ts::template_problem("{{#a}}{{> inner}}{{/a}}"), Catch::Contains("partial"));
  CHECK_THAT(*ts::template_problem("x {{}} y"), Catch::Contains("empty tag"));

  std::string nested;
  std::string closing;
  for (std::size_t i = 0; i < ts::kMaxSectionDepth; ++i) {
    nested += "{{#s" + std::to_string(i) + "}}";
    closing = "{{/s" + std::to_string(i) + "}}" + closing;
  }
  CHECK_FALSE(ts::template_problem(nested + closing));
  CHECK_THAT(*ts::template_problem(nested + "{{#deeper}}{{/deeper}}" + closing),
             Catch::Contains("deeper than 16"));
  // A 32 KiB text of nothing but openings: a parser error, not a crash.
  std::string hostile;
  while (hostile.size() < 32 * 1024) {
    hostile += "{{#a}}";
  }
  CHECK(ts::template_problem(hostile));
}

TEST_CASE("template_renderer: a render that would grow past the bound is refused",
          "[template_renderer]") {
  const ts::TemplateRenderer renderer(
      {{"body", "{{#xs}}{{#xs}}{{#xs}}0123456789{{/xs}}{{/xs}}{{/xs}}", ts::Escaping::none}});
  json xs = json::array();
  for (int i = 0; i < 10; ++i) {
    xs.push_back(i);
  }
  // 1,000 passes of the inner section: fine.
  CHECK(renderer.render({{"xs", xs}}).fields.at(0).second.size() == 10000);
  for (int i = 10; i < 200; ++i) {
    xs.push_back(i);
  }
  // 8,000,000 passes: refused before the text is built.
  CHECK_THROWS_AS(renderer.render({{"xs", xs}}), ts::RenderTooLarge);
  // The renderer is still usable afterwards.
  CHECK(renderer.render({{"xs", {1}}}).fields.at(0).second == "0123456789");
}

TEST_CASE("template_renderer: variables must be an object", "[template_renderer]") {
  const ts::TemplateRenderer renderer({{"body", "x", ts::Escaping::none}});
  CHECK_THROWS_AS(renderer.render(json::array()), std::invalid_argument);
  CHECK_THROWS_AS(renderer.render(json("text")), std::invalid_argument);
}

TEST_CASE("template_renderer: one renderer renders on many threads at once",
          "[template_renderer]") {
  const ts::TemplateRenderer renderer(
      {{"subject", "Hi {{name}}", ts::Escaping::none},
       {"html_body", "<i>{{name}}</i>{{#n}}.{{/n}}", ts::Escaping::html}});
  constexpr int kThreads = 4;
  constexpr int kRounds = 500;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const std::string name = "<" + std::to_string(t) + ":" + std::to_string(i) + ">";
        const auto result = renderer.render({{"name", name}, {"n", {1, 2}}});
        const std::string escaped = "&lt;" + name.substr(1, name.size() - 2) + "&gt;";
        if (result.fields.size() != 2 || result.fields[0].second != "Hi " + name ||
            result.fields[1].second != "<i>" + escaped + "</i>..") {
          ++failures[t];
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  CHECK(failures == std::vector<int>(kThreads, 0));
}
