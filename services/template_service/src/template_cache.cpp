#include "template_cache.hpp"

#include <vector>

namespace notifs::template_service {

namespace {

std::vector<FieldSource> field_sources(const TemplateVersion& stored) {
  const auto& content = stored.content;
  if (stored.channel == Channel::push) {
    return {{"title", content.title, Escaping::none}, {"body", content.body, Escaping::none}};
  }
  std::vector<FieldSource> fields = {{"subject", content.subject, Escaping::none},
                                     {"body", content.body, Escaping::none}};
  if (content.html_body) {
    fields.push_back({"html_body", *content.html_body, Escaping::html});
  }
  return fields;
}

// Codes and locales never contain '\n' (both are validated), so keys cannot collide.
std::string version_key(std::string_view code, std::string_view locale, std::int32_t version) {
  std::string key;
  key.reserve(code.size() + locale.size() + 12);
  key.append(code).append(1, '\n').append(locale).append(1, '\n').append(std::to_string(version));
  return key;
}

std::string resolution_key(std::string_view code, std::string_view locale) {
  std::string key;
  key.reserve(code.size() + locale.size() + 1);
  key.append(code).append(1, '\n').append(locale);
  return key;
}

}  // namespace

CompiledTemplate::CompiledTemplate(TemplateVersion stored)
    : version(std::move(stored)), renderer(field_sources(version)) {}

TemplateCache::TemplateCache(TemplateCacheSettings settings, const messaging::common::Clock& clock)
    : settings_(settings),
      clock_(clock),
      compiled_(settings.render_cache_size),
      // Each resolution names one compiled version; more of them than compiled versions
      // would be of little use, and the requested locale is client-chosen, so it is bounded.
      resolutions_(settings.render_cache_size) {}

std::shared_ptr<const CompiledTemplate> TemplateCache::find_version(std::string_view code,
                                                                    std::string_view locale,
                                                                    std::int32_t version) {
  const auto key = version_key(code, locale, version);
  const std::lock_guard lock(mutex_);
  auto* found = compiled_.find(key);
  return found != nullptr ? *found : nullptr;
}

void TemplateCache::put_version(std::shared_ptr<const CompiledTemplate> compiled) {
  const auto& stored = compiled->version;
  auto key = version_key(stored.code, stored.locale, stored.version);
  const std::lock_guard lock(mutex_);
  compiled_.put(std::move(key), std::move(compiled));
}

std::optional<Resolution> TemplateCache::find_resolution(std::string_view code,
                                                         std::string_view requested_locale) {
  const auto key = resolution_key(code, requested_locale);
  const auto now = clock_.now();
  const std::lock_guard lock(mutex_);
  auto* found = resolutions_.find(key);
  if (found == nullptr) {
    return std::nullopt;
  }
  if (now >= found->expires_at) {
    resolutions_.erase(key);
    return std::nullopt;
  }
  return found->resolution;
}

std::uint64_t TemplateCache::generation() const {
  const std::lock_guard lock(mutex_);
  return generation_;
}

void TemplateCache::put_resolution(std::string_view code, std::string_view requested_locale,
                                   Resolution resolution, std::uint64_t generation) {
  if (settings_.resolution_ttl.count() <= 0) {
    return;
  }
  auto key = resolution_key(code, requested_locale);
  const auto expires_at = clock_.now() + settings_.resolution_ttl;
  const std::lock_guard lock(mutex_);
  if (generation != generation_) {
    return;
  }
  resolutions_.put(std::move(key), TimedResolution{std::move(resolution), expires_at});
}

void TemplateCache::invalidate(std::string_view code) {
  const std::lock_guard lock(mutex_);
  ++generation_;
  resolutions_.erase_if([&](const std::string& key, const TimedResolution&) {
    return key.size() > code.size() && key.compare(0, code.size(), code) == 0 &&
           key[code.size()] == '\n';
  });
}

std::size_t TemplateCache::compiled_size() const {
  const std::lock_guard lock(mutex_);
  return compiled_.size();
}

std::size_t TemplateCache::resolution_size() const {
  const std::lock_guard lock(mutex_);
  return resolutions_.size();
}

}  // namespace notifs::template_service
