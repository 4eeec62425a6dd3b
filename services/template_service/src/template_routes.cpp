#include "template_routes.hpp"

#include <prometheus/counter.h>
#include <prometheus/registry.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "notifs/messaging/common/logging.hpp"
#include "notifs/messaging/http/envelope.hpp"
#include "notifs/runtime/pagination.hpp"
#include "template_validation.hpp"

namespace notifs::template_service {

namespace http = messaging::http;
using nlohmann::json;

// ---------------------------------------------------------------------------------------
// TemplateResolver

struct TemplateResolver::Metrics {
  prometheus::Counter* hit = nullptr;
  prometheus::Counter* miss = nullptr;
};

TemplateResolver::TemplateResolver(TemplateStore& store, TemplateCache& cache,
                                   const std::shared_ptr<prometheus::Registry>& registry)
    : store_(store), cache_(cache), metrics_(std::make_unique<Metrics>()) {
  if (registry) {
    auto& family = prometheus::BuildCounter()
                       .Name("template_cache_lookups_total")
                       .Help(
                           "Template lookups (get and render) answered from the cache (hit) "
                           "or from PostgreSQL (miss)")
                       .Register(*registry);
    metrics_->hit = &family.Add({{"result", "hit"}});
    metrics_->miss = &family.Add({{"result", "miss"}});
  }
}

TemplateResolver::~TemplateResolver() = default;

std::shared_ptr<const CompiledTemplate> TemplateResolver::resolve(
    const std::string& code, const std::string& locale, std::optional<std::int32_t> version) {
  if (const auto resolution = cache_.find_resolution(code, locale)) {
    if (auto hit = cache_.find_version(code, resolution->locale,
                                       version.value_or(resolution->latest_version))) {
      if (metrics_->hit != nullptr) {
        metrics_->hit->Increment();
      }
      return hit;
    }
  }
  if (metrics_->miss != nullptr) {
    metrics_->miss->Increment();
  }
  // Taken before the read: if a version is written meanwhile, what this read saw is not
  // put back into the cache (TemplateCache::put_resolution).
  const auto generation = cache_.generation();
  auto found = store_.find(code, locale, version);
  cache_.put_resolution(code, locale,
                        Resolution{found.stored.channel, found.stored.locale, found.latest_version},
                        generation);
  if (auto cached = cache_.find_version(code, found.stored.locale, found.stored.version)) {
    return cached;
  }
  auto compiled = std::make_shared<const CompiledTemplate>(std::move(found.stored));
  cache_.put_version(compiled);
  return compiled;
}

std::shared_ptr<const CompiledTemplate> TemplateResolver::written(TemplateVersion stored) {
  cache_.invalidate(stored.code);
  auto compiled = std::make_shared<const CompiledTemplate>(std::move(stored));
  cache_.put_version(compiled);
  return compiled;
}

// ---------------------------------------------------------------------------------------
// Routes

namespace {

// One table from the store's errors to the contract's answers.
[[noreturn]] void rethrow_as_http(const TemplateError& error) {
  switch (error.kind()) {
    case TemplateError::Kind::template_exists:
      throw http::HttpError(409, "template_exists", error.what());
    case TemplateError::Kind::channel_mismatch:
      throw http::HttpError(409, "channel_mismatch", error.what());
    case TemplateError::Kind::template_not_found:
      throw http::HttpError(404, "template_not_found", error.what());
    case TemplateError::Kind::version_not_found:
      throw http::HttpError(404, "version_not_found", error.what());
  }
  throw http::HttpError(500, "internal_error", error.what());
}

http::SyncHandler mapped(std::function<http::Response(const http::Request&)> handler) {
  return [handler = std::move(handler)](const http::Request& request) {
    try {
      return handler(request);
    } catch (const TemplateError& error) {
      rethrow_as_http(error);
    }
  };
}

json template_json(const CompiledTemplate& compiled, const std::string& requested_locale) {
  const auto& stored = compiled.version;
  json out = {{"code", stored.code},
              {"channel", to_string(stored.channel)},
              {"locale", stored.locale},
              {"requested_locale", requested_locale},
              {"version", stored.version}};
  if (stored.channel == Channel::email) {
    out["subject"] = stored.content.subject;
    out["body"] = stored.content.body;
    out["html_body"] = stored.content.html_body ? json(*stored.content.html_body) : json(nullptr);
  } else {
    out["title"] = stored.content.title;
    out["body"] = stored.content.body;
  }
  out["variables"] = compiled.renderer.variables();
  out["created_at"] = stored.created_at;
  return out;
}

// Codes and locales are validated ([a-z0-9_.-], letters and '-'), so they go in a log
// line as they are; template texts never do.
void log_written(const CompiledTemplate& compiled, const http::Request& request) {
  const auto& stored = compiled.version;
  messaging::common::logger("template_service")
      ->info("template version written code={} locale={} version={} request_id={}", stored.code,
             stored.locale, stored.version, request.request_id);
}

// The render body may be left out entirely: then every default applies.
json render_body(const http::Request& request) {
  if (request.body.empty()) {
    return json::object();
  }
  return http::parse_json_object(request);
}

http::Response render(TemplateResolver& resolver, const http::Request& request) {
  const auto code = parse_code_param(request.path_param("code"));
  const auto input = parse_render_request(render_body(request));
  const auto compiled = resolver.resolve(code, input.locale, input.version);
  RenderResult result;
  try {
    result = compiled->renderer.render(input.variables);
  } catch (const RenderTooLarge& error) {
    throw http::HttpError(422, "render_too_large", error.what());
  }
  if (!result.missing.empty()) {
    std::vector<http::FieldProblem> details;
    std::string names;
    for (const auto& name : result.missing) {
      details.push_back({name, "is required by the template"});
      names += (names.empty() ? "" : ", ") + name;
    }
    throw http::HttpError(422, "missing_variables",
                          "the template needs variables the call did not give: " + names,
                          std::move(details));
  }
  json rendered = json::object();
  for (auto& [field, text] : result.fields) {
    rendered[field] = std::move(text);
  }
  const auto& stored = compiled->version;
  if (stored.channel == Channel::email && !rendered.contains("html_body")) {
    rendered["html_body"] = nullptr;
  }
  return http::ok_response(200,
                           {{"code", stored.code},
                            {"channel", to_string(stored.channel)},
                            {"locale", stored.locale},
                            {"requested_locale", input.locale},
                            {"version", stored.version},
                            {"rendered", std::move(rendered)}},
                           "rendered");
}

}  // namespace

http::Router make_template_router(TemplateStore& store, TemplateResolver& resolver) {
  http::Router router;
  constexpr auto kBlocking = http::Execution::blocking;

  router.add(http::Method::post, "/api/v1/templates", mapped([&](const http::Request& request) {
               const auto input = parse_new_template(http::parse_json_object(request));
               const auto compiled = resolver.written(store.create(input));
        log_written(*compiled, request);
               return http::ok_response(201, template_json(*compiled, compiled->version.locale),
                                        "template created");
             }),
             kBlocking);

  router.add(http::Method::get, "/api/v1/templates", mapped([&](const http::Request& request) {
               const auto channel = parse_channel_query(request);
               const auto page = runtime::parse_page_request(request);
               const auto found = store.list(channel, page);
               json items = json::array();
               for (const auto& summary : found.items) {
                 json locales = json::array();
                 for (const auto& [locale, latest] : summary.locales) {
                   locales.push_back({{"locale", locale}, {"latest_version", latest}});
                 }
                 items.push_back({{"code", summary.code},
                                  {"channel", to_string(summary.channel)},
                                  {"locales", std::move(locales)},
                                  {"created_at", summary.created_at},
                                  {"updated_at", summary.updated_at}});
               }
               return http::ok_response(
                   200, std::move(items), "templates",
                   http::PageMeta{found.total, page.limit, page.page}.to_json());
             }),
             kBlocking);

  router.add(http::Method::get, "/api/v1/templates/{code}",
             mapped([&](const http::Request& request) {
               const auto code = parse_code_param(request.path_param("code"));
               const auto locale = parse_locale_query(request);
               const auto version = parse_version_query(request);
               const auto compiled = resolver.resolve(code, locale, version);
               return http::ok_response(200, template_json(*compiled, locale), "template");
             }),
             kBlocking);

  router.add(http::Method::put, "/api/v1/templates/{code}",
             mapped([&](const http::Request& request) {
               const auto code = parse_code_param(request.path_param("code"));
               const auto input = parse_new_version(http::parse_json_object(request), code);
               const auto compiled = resolver.written(store.add_version(code, input));
        log_written(*compiled, request);
               return http::ok_response(
                   201, template_json(*compiled, compiled->version.locale),
                   "version " + std::to_string(compiled->version.version) + " created");
             }),
             kBlocking);

  router.add(http::Method::get, "/api/v1/templates/{code}/versions",
             mapped([&](const http::Request& request) {
               const auto code = parse_code_param(request.path_param("code"));
               const auto locale = parse_optional_locale_query(request);
               const auto page = runtime::parse_page_request(request);
               const auto found = store.list_versions(code, locale, page);
               json items = json::array();
               for (const auto& version : found.items) {
                 items.push_back({{"locale", version.locale},
                                  {"version", version.version},
                                  {"created_at", version.created_at}});
               }
               return http::ok_response(
                   200, std::move(items), "versions",
                   http::PageMeta{found.total, page.limit, page.page}.to_json());
             }),
             kBlocking);

  router.add(http::Method::post, "/api/v1/templates/{code}/render",
             mapped([&](const http::Request& request) { return render(resolver, request); }),
             kBlocking);

  return router;
}

}  // namespace notifs::template_service
