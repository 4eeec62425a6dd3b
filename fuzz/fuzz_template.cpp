// template_service with hostile templates: what a client can send is validated
// (template_problem, parse_new_template), and whatever passes is compiled and rendered the
// way the cache and the render route do. Rules checked:
// - template_problem never throws; a text it accepts always compiles (TemplateRenderer
//   throws nothing for it);
// - parse_new_template and parse_render_request throw HttpError 400 and nothing else;
// - render throws RenderTooLarge and nothing else, and its output stays bounded (the
//   budget counts values before HTML escaping, which at most multiplies them by 6).
//
// Input: "<template text>\n----\n<render body: {\"variables\": {...}}>". An input that
// starts with '{' is instead a POST /api/v1/templates body, rendered with no variables.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "template_renderer.hpp"
#include "template_validation.hpp"

namespace ts = notifs::template_service;
namespace http = notifs::messaging::http;
using notifs::fuzz::check;

namespace {

constexpr std::size_t kOutputBound = 8 * ts::kMaxRenderedBytes;

void render(std::vector<ts::FieldSource> fields, const nlohmann::json& variables) {
  std::size_t field_count = fields.size();
  std::optional<ts::TemplateRenderer> renderer;
  try {
    renderer.emplace(std::move(fields));
  } catch (...) {
    notifs::fuzz::fail_unexpected("TemplateRenderer of a template that passed validation");
  }
  try {
    const auto result = renderer->render(variables);
    std::size_t total = 0;
    for (const auto& [name, text] : result.fields) {
      total += text.size();
    }
    check(total <= kOutputBound, "render output is bounded", std::to_string(total));
    check(result.missing.empty() ? result.fields.size() == field_count : result.fields.empty(),
          "fields are all rendered, or none when some variable is missing");
  } catch (const ts::RenderTooLarge&) {
  } catch (...) {
    notifs::fuzz::fail_unexpected("TemplateRenderer::render");
  }
}

std::optional<nlohmann::json> parse_body(std::string_view text) {
  http::Request request;
  request.method = http::Method::post;
  request.body = std::string(text);
  try {
    return http::parse_json_object(request);
  } catch (const http::HttpError& error) {
    check(error.status() == 400, "parse_json_object throws only 400s");
    return std::nullopt;
  } catch (...) {
    notifs::fuzz::fail_unexpected("parse_json_object");
  }
}

void new_template(std::string_view text) {
  const auto body = parse_body(text);
  if (!body) {
    return;
  }
  ts::NewTemplate created;
  try {
    created = ts::parse_new_template(*body);
  } catch (const http::HttpError& error) {
    check(error.status() == 400, "parse_new_template throws only 400s");
    return;
  } catch (...) {
    notifs::fuzz::fail_unexpected("parse_new_template");
  }
  check(ts::is_valid_code(created.code), "accepted code is valid", created.code);
  check(ts::canonical_locale(created.locale) == created.locale, "accepted locale is canonical",
        created.locale);
  const auto& content = created.content;
  std::vector<ts::FieldSource> fields;
  if (created.channel == ts::Channel::push) {
    fields = {{"title", content.title, ts::Escaping::none},
              {"body", content.body, ts::Escaping::none}};
  } else {
    fields = {{"subject", content.subject, ts::Escaping::none},
              {"body", content.body, ts::Escaping::none}};
    if (content.html_body) {
      fields.push_back({"html_body", *content.html_body, ts::Escaping::html});
    }
  }
  render(std::move(fields), nlohmann::json::object());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto input = notifs::fuzz::as_text(data, size);
  if (input.starts_with('{')) {
    new_template(input);
    return 0;
  }
  const auto [template_part, render_part] = notifs::fuzz::split_once(input, "\n----\n");
  const std::string text(template_part);
  std::optional<std::string> problem;
  try {
    problem = ts::template_problem(text);
  } catch (...) {
    notifs::fuzz::fail_unexpected("template_problem");
  }
  if (problem) {
    return 0;
  }
  auto variables = nlohmann::json::object();
  if (const auto body = parse_body(render_part)) {
    try {
      variables = ts::parse_render_request(*body).variables;
    } catch (const http::HttpError& error) {
      check(error.status() == 400, "parse_render_request throws only 400s");
    } catch (...) {
      notifs::fuzz::fail_unexpected("parse_render_request");
    }
  }
  render({{"body", text, ts::Escaping::none}, {"html_body", text, ts::Escaping::html}},
         variables);
  return 0;
}
