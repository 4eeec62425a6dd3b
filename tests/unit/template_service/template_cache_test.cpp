// template_service's render cache: compiled versions in a bounded LRU, resolutions for a
// TTL on a fake clock, dropped by invalidate(), and never put back by a read that
// started before an invalidate().
#include "template_cache.hpp"

#include <chrono>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "fakes/fake_clock.hpp"

namespace ts = notifs::template_service;
using namespace std::chrono_literals;

namespace {

std::shared_ptr<const ts::CompiledTemplate> compiled(const std::string& code,
                                                     const std::string& locale, int version) {
  ts::TemplateVersion stored;
  stored.code = code;
  stored.channel = ts::Channel::push;
  stored.locale = locale;
  stored.version = version;
  stored.content.title = "v" + std::to_string(version) + " {{name}}";
  stored.content.body = "body";
  stored.created_at = "2026-01-01T00:00:00.000Z";
  return std::make_shared<const ts::CompiledTemplate>(stored);
}

ts::Resolution resolution(const std::string& locale, int latest) {
  return ts::Resolution{ts::Channel::push, locale, latest};
}

}  // namespace

TEST_CASE("template_cache: a compiled version renders its channel's fields",
          "[template_cache]") {
  const auto push = compiled("c", "en", 1);
  CHECK(push->renderer.variables() == std::vector<std::string>{"name"});
  const auto result = push->renderer.render({{"name", "<Ada>"}});
  REQUIRE(result.fields.size() == 2);
  CHECK(result.fields[0] == std::pair<std::string, std::string>{"title", "v1 <Ada>"});
  CHECK(result.fields[1] == std::pair<std::string, std::string>{"body", "body"});

  ts::TemplateVersion email;
  email.code = "e";
  email.channel = ts::Channel::email;
  email.content = {"S {{x}}", "B {{x}}", "<b>{{x}}</b>", ""};
  const ts::CompiledTemplate mail(email);
  const auto rendered = mail.renderer.render({{"x", "<i>"}});
  REQUIRE(rendered.fields.size() == 3);
  CHECK(rendered.fields[0].second == "S <i>");
  CHECK(rendered.fields[1].second == "B <i>");
  CHECK(rendered.fields[2] == std::pair<std::string, std::string>{"html_body", "<b>&lt;i&gt;</b>"});

  email.content.html_body.reset();
  CHECK(ts::CompiledTemplate(email).renderer.fields().size() == 2);
}

TEST_CASE("template_cache: compiled versions are kept by (code, locale, version), LRU-bounded",
          "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({2, 1s}, clock);
  const auto a1 = compiled("a", "en", 1);
  cache.put_version(a1);
  cache.put_version(compiled("a", "fr", 1));
  CHECK(cache.find_version("a", "en", 1) == a1);  // now the most recently used
  CHECK_FALSE(cache.find_version("a", "en", 2));
  CHECK_FALSE(cache.find_version("b", "en", 1));

  cache.put_version(compiled("a", "en", 2));  // evicts a/fr/1, the least recently used
  CHECK(cache.compiled_size() == 2);
  CHECK_FALSE(cache.find_version("a", "fr", 1));
  CHECK(cache.find_version("a", "en", 1) == a1);
  CHECK(cache.find_version("a", "en", 2));

  // Time does not age compiled versions: they never change.
  clock.advance(24h);
  CHECK(cache.find_version("a", "en", 1) == a1);
}

TEST_CASE("template_cache: resolutions last the TTL", "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({10, 2000ms}, clock);
  cache.put_resolution("a", "fr", resolution("en", 3), cache.generation());
  const auto found = cache.find_resolution("a", "fr");
  REQUIRE(found);
  CHECK(found->locale == "en");
  CHECK(found->latest_version == 3);
  CHECK_FALSE(cache.find_resolution("a", "en"));
  CHECK_FALSE(cache.find_resolution("b", "fr"));

  clock.advance(1999ms);
  CHECK(cache.find_resolution("a", "fr"));
  clock.advance(1ms);
  CHECK_FALSE(cache.find_resolution("a", "fr"));
  CHECK(cache.resolution_size() == 0);
}

TEST_CASE("template_cache: invalidate drops every resolution of the code only",
          "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({10, 1h}, clock);
  cache.put_resolution("a", "en", resolution("en", 1), cache.generation());
  cache.put_resolution("a", "fr", resolution("en", 1), cache.generation());
  cache.put_resolution("ab", "en", resolution("en", 4), cache.generation());
  cache.put_version(compiled("a", "en", 1));

  cache.invalidate("a");
  CHECK_FALSE(cache.find_resolution("a", "en"));
  CHECK_FALSE(cache.find_resolution("a", "fr"));
  CHECK(cache.find_resolution("ab", "en"));   // a code that merely starts with "a"
  CHECK(cache.find_version("a", "en", 1));   // immutable: still right
}

TEST_CASE("template_cache: a read that began before an invalidate is not put back",
          "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({10, 1h}, clock);
  const auto before_read = cache.generation();
  cache.invalidate("a");  // a version was written while the read was in flight
  cache.put_resolution("a", "en", resolution("en", 1), before_read);
  CHECK_FALSE(cache.find_resolution("a", "en"));

  cache.put_resolution("a", "en", resolution("en", 2), cache.generation());
  CHECK(cache.find_resolution("a", "en")->latest_version == 2);
}

TEST_CASE("template_cache: size 0 and TTL 0 turn the caches off", "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({0, 0ms}, clock);
  cache.put_version(compiled("a", "en", 1));
  cache.put_resolution("a", "en", resolution("en", 1), cache.generation());
  CHECK_FALSE(cache.find_version("a", "en", 1));
  CHECK_FALSE(cache.find_resolution("a", "en"));
}

TEST_CASE("template_cache: resolutions are bounded too", "[template_cache]") {
  notifs::fakes::FakeClock clock;
  ts::TemplateCache cache({3, 1h}, clock);
  for (int i = 0; i < 10; ++i) {
    cache.put_resolution("a", "x" + std::to_string(i), resolution("en", 1), cache.generation());
  }
  CHECK(cache.resolution_size() == 3);
  CHECK(cache.find_resolution("a", "x9"));
  CHECK_FALSE(cache.find_resolution("a", "x0"));
}
