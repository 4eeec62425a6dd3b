// RenderClient against the real template_service (in-process, its own schema): what
// each answer of the render endpoint comes to, the cache and the coalescing of identical
// renders (counted on the service's own http_requests_total), and an outage.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fakes/fake_clock.hpp"
#include "integration/template_service/template_service_support.hpp"
#include "notifs/contract/notification_job.hpp"
#include "notifs/messaging/http/service_client.hpp"
// template_service has a render_client.hpp too, and its folder comes first on this
// binary's include path: the worker's header is named by its place in the tree.
#include "render_client.hpp"

using nlohmann::json;
using notifs::contract::NotificationJob;
using notifs::fakes::FakeClock;
using notifs::template_service_test::email_template;
using notifs::template_service_test::FixtureOptions;
using notifs::template_service_test::push_template;
using notifs::template_service_test::TemplateServiceFixture;
using notifs::worker::RenderResult;
using notifs::worker::RenderStatus;
using notifs::worker::RenderClient;
using notifs::worker::RenderClientSettings;
namespace http = notifs::messaging::http;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

namespace {

constexpr auto kRenderRoute = R"(route="/api/v1/templates/{code}/render")";

http::ServiceClientSettings client_settings(std::uint16_t port) {
  http::ServiceClientSettings settings;
  settings.name = "template_service";
  settings.base_url = "http://127.0.0.1:" + std::to_string(port);
  settings.connect_timeout = 1000ms;
  settings.attempt_timeout = 10'000ms;  // longer than any lock a test holds on the tables
  settings.deadline = 15'000ms;
  settings.max_attempts = 3;
  settings.backoff = {5ms, 20ms, 2.0};
  return settings;
}

NotificationJob job_for(const std::string& code, const std::string& channel, json variables,
                        std::string locale = "en") {
  NotificationJob job;
  job.notification_id = "3d0c4a52-6a43-4f6e-9a3c-5f1f2b7e9c01";
  job.request_id = "req-" + code;
  job.notification_type = channel;
  job.user_id = "6f1c9a8e-2b7d-4c1a-9e3f-0a1b2c3d4e5f";
  job.template_code = code;
  job.locale = std::move(locale);
  job.variables = std::move(variables);
  if (channel == "email") {
    job.recipient.email = "ada@example.com";
  } else {
    job.recipient.push_tokens = {"tok-1"};
  }
  return job;
}

json welcome_variables(const std::string& name = "Ada <3") {
  return {{"name", name}, {"link", "https://x.test/?a=1&b=2"}};
}

// Waits for the one callback of a render; FAILs when none comes within 20 s.
RenderResult render_now(RenderClient& renderer, const NotificationJob& job) {
  auto promise = std::make_shared<std::promise<RenderResult>>();
  auto future = promise->get_future();
  renderer.render(job, [promise](RenderResult result) { promise->set_value(std::move(result)); });
  REQUIRE(future.wait_for(20s) == std::future_status::ready);
  return future.get();
}

// POST render requests template_service has answered, from its own /metrics.
double render_requests(const TemplateServiceFixture& service) {
  const auto response = service.get("/metrics");
  REQUIRE(response.status == 200);
  double total = 0;
  std::istringstream lines(response.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("http_requests_total{", 0) == 0 &&
        line.find(kRenderRoute) != std::string::npos &&
        line.find(R"(method="POST")") != std::string::npos) {
      total += std::stod(line.substr(line.rfind(' ') + 1));
    }
  }
  return total;
}

// The server counts a request when its answer is ready, which may be just after the client
// read it: wait for the count to reach `expected` (it must get there), then report it.
double settled_render_requests(const TemplateServiceFixture& service, double expected) {
  notifs::pg_test::wait_until([&] { return render_requests(service) >= expected; }, 5s);
  return render_requests(service);
}

}  // namespace

TEST_CASE("worker renderer: an email template renders subject, body and escaped html_body",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto result = render_now(renderer, job_for("welcome", "email", welcome_variables()));
  INFO(result.reason);
  REQUIRE(result.status == RenderStatus::rendered);
  REQUIRE(result.content);
  CHECK(result.reason.empty());
  const auto& content = *result.content;
  CHECK(content.code == "welcome");
  CHECK(content.channel == "email");
  CHECK(content.locale == "en");
  CHECK(content.version == 1);
  CHECK(content.subject == "Welcome Ada <3");
  CHECK(content.body == "Hello Ada <3, start at https://x.test/?a=1&b=2");
  REQUIRE(content.html_body.has_value());
  CHECK(*content.html_body ==
        "<p>Hello Ada &lt;3, <a href=\"https://x.test/?a=1&b=2\">start</a></p>");
  CHECK(content.title.empty());
}

TEST_CASE(
    "worker renderer: a push template renders title and body, and an email template "
    "without html_body has none",
    "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(push_template("inbox"));
  json plain = email_template("plain");
  plain.erase("html_body");
  service.create(plain);
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto push =
      render_now(renderer, job_for("inbox", "push", {{"name", "Zo\u00eb"}, {"count", 3}}));
  INFO(push.reason);
  REQUIRE(push.status == RenderStatus::rendered);
  CHECK(push.content->channel == "push");
  CHECK(push.content->title == "Hi Zo\u00eb");
  CHECK(push.content->body == "You have 3 new messages");
  CHECK(push.content->subject.empty());
  CHECK_FALSE(push.content->html_body.has_value());

  const auto email = render_now(renderer, job_for("plain", "email", welcome_variables()));
  INFO(email.reason);
  REQUIRE(email.status == RenderStatus::rendered);
  CHECK(email.content->subject == "Welcome Ada <3");
  CHECK_FALSE(email.content->html_body.has_value());
}

TEST_CASE("worker renderer: a locale renders its own version, others fall back to en",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  json french = email_template("welcome", "fr");
  french["subject"] = "Bienvenue {{name}}";
  service.create(french);
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto fr = render_now(renderer, job_for("welcome", "email", welcome_variables(), "fr"));
  REQUIRE(fr.status == RenderStatus::rendered);
  CHECK(fr.content->locale == "fr");
  CHECK(fr.content->subject == "Bienvenue Ada <3");

  for (const char* locale : {"de", "pt-BR", ""}) {
    INFO("locale '" << locale << "'");
    const auto fallback =
        render_now(renderer, job_for("welcome", "email", welcome_variables(), locale));
    INFO(fallback.reason);
    REQUIRE(fallback.status == RenderStatus::rendered);
    CHECK(fallback.content->locale == "en");
    CHECK(fallback.content->subject == "Welcome Ada <3");
  }
}

TEST_CASE("worker renderer: missing variables are unrenderable, naming template and variables",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  FakeClock clock;  // the refusal is remembered for negative_ttl, whatever the machine's pace
  RenderClient renderer(client, clock);

  const auto result = render_now(renderer, job_for("welcome", "email", {{"unrelated", 1}}));
  CHECK(result.status == RenderStatus::unrenderable);
  CHECK_FALSE(result.content);
  INFO(result.reason);
  CHECK(result.reason.find("template 'welcome'") != std::string::npos);
  CHECK(result.reason.find("missing variables") != std::string::npos);
  CHECK(result.reason.find("name") != std::string::npos);
  CHECK(result.reason.find("link") != std::string::npos);

  // The same render again is refused from memory, with the same reason: a campaign with a
  // broken template does not call template_service once per message.
  const double calls = settled_render_requests(service, 1);
  CHECK(calls == 1);
  const auto again = render_now(renderer, job_for("welcome", "email", {{"unrelated", 1}}));
  CHECK(again.status == RenderStatus::unrenderable);
  CHECK(again.reason == result.reason);
  // Only one variable given: the reason names the other one alone.
  const auto partial = render_now(renderer, job_for("welcome", "email", {{"name", "Ada"}}));
  CHECK(partial.status == RenderStatus::unrenderable);
  CHECK(partial.reason.find("missing variables: link") != std::string::npos);
  CHECK(settled_render_requests(service, 2) == 2);
}

TEST_CASE("worker renderer: an unknown template or a locale the service refuses is unrenderable",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto unknown =
      render_now(renderer, job_for("no-such-template", "email", welcome_variables()));
  CHECK(unknown.status == RenderStatus::unrenderable);
  INFO(unknown.reason);
  CHECK(unknown.reason.find("template 'no-such-template'") != std::string::npos);
  CHECK(unknown.reason.find("not found") != std::string::npos);

  const auto bad_locale =
      render_now(renderer, job_for("welcome", "email", welcome_variables(), "fr FR!"));
  CHECK(bad_locale.status == RenderStatus::unrenderable);
  INFO(bad_locale.reason);
  CHECK(bad_locale.reason.find("locale") != std::string::npos);

  // A code template_service can never have is refused without asking it.
  const double before = settled_render_requests(service, 2);
  const auto bad_code = render_now(renderer, job_for("../admin", "email", welcome_variables()));
  CHECK(bad_code.status == RenderStatus::unrenderable);
  CHECK(render_requests(service) == before);
}

TEST_CASE("worker renderer: a template of the other channel is unrenderable for that channel",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  service.create(push_template("inbox"));
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto mismatch = render_now(renderer, job_for("welcome", "push", welcome_variables()));
  CHECK(mismatch.status == RenderStatus::unrenderable);
  CHECK_FALSE(mismatch.content);
  INFO(mismatch.reason);
  CHECK(mismatch.reason.find("template 'welcome'") != std::string::npos);
  CHECK(mismatch.reason.find("email template") != std::string::npos);
  CHECK(mismatch.reason.find("push notification") != std::string::npos);

  // The render was cached all the same: an email job with the same input uses it, and a
  // push job asking again is still refused.
  const auto email = render_now(renderer, job_for("welcome", "email", welcome_variables()));
  CHECK(email.status == RenderStatus::rendered);
  CHECK(render_now(renderer, job_for("welcome", "push", welcome_variables())).status ==
        RenderStatus::unrenderable);
  CHECK(render_now(renderer, job_for("inbox", "email", {{"name", "A"}, {"count", 1}})).status ==
        RenderStatus::unrenderable);
}

TEST_CASE("worker renderer: a cached render makes no second upstream call", "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance());

  const auto first = render_now(renderer, job_for("welcome", "email", welcome_variables()));
  REQUIRE(first.status == RenderStatus::rendered);
  CHECK(settled_render_requests(service, 1) == 1);

  // The same code, locale and variables (another notification, members in another order):
  // answered inline, before render() returns, so no request can have been made for it.
  auto same = job_for("welcome", "email",
                      json::parse(R"({"link": "https://x.test/?a=1&b=2", "name": "Ada <3"})"));
  same.notification_id = "9a7e0c1d-0000-4000-8000-00000000000f";
  std::optional<RenderResult> inline_result;
  renderer.render(same, [&](RenderResult result) { inline_result = std::move(result); });
  REQUIRE(inline_result.has_value());
  CHECK(inline_result->status == RenderStatus::rendered);
  CHECK(inline_result->content == first.content);  // the very same cached render
  CHECK(renderer.cache_stats().fresh_hits == 1);

  // Other variables are another render: the count moves only for it.
  const auto other = render_now(renderer, job_for("welcome", "email", welcome_variables("Bob")));
  REQUIRE(other.status == RenderStatus::rendered);
  CHECK(other.content->subject == "Welcome Bob");
  CHECK(settled_render_requests(service, 2) == 2);
  CHECK(renderer.cache_stats().misses == 2);
}

TEST_CASE("worker renderer: a new version is picked up once the cached render expires",
          "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  FakeClock clock;
  RenderClientSettings settings;
  settings.cache.ttl = 30s;
  RenderClient renderer(client, clock, settings);

  const auto job = job_for("welcome", "email", welcome_variables());
  const auto v1 = render_now(renderer, job);
  REQUIRE(v1.status == RenderStatus::rendered);
  CHECK(v1.content->version == 1);

  json second = email_template("welcome");
  second["subject"] = "Welcome aboard {{name}}";
  service.add_version("welcome", second);
  // Within the ttl the cached render (of version 1, still a correct render of it) is used.
  CHECK(render_now(renderer, job).content->version == 1);
  clock.advance(31s);
  const auto v2 = render_now(renderer, job);
  REQUIRE(v2.status == RenderStatus::rendered);
  CHECK(v2.content->version == 2);
  CHECK(v2.content->subject == "Welcome aboard Ada <3");
}

TEST_CASE("worker renderer: 20 concurrent identical renders make one upstream call",
          "[worker][renderer]") {
  // Every render reads PostgreSQL (no resolution cache), and the test holds a lock on the
  // template tables while the 20 renders start: the first one's call cannot finish before
  // all 20 have joined, whatever the machine's scheduling.
  FixtureOptions options;
  options.cache.resolution_ttl = 0ms;
  options.cache.render_cache_size = 0;
  TemplateServiceFixture service(options);
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  RenderClientSettings settings;
  settings.cache.max_entries = 0;  // no cache: only the coalescing can save calls
  RenderClient renderer(client, notifs::messaging::common::SystemClock::instance(), settings);
  const double before = render_requests(service);

  std::mutex mutex;
  std::vector<RenderResult> results;
  std::atomic<int> answered{0};
  {
    pqxx::connection blocker(service.url());
    pqxx::work lock(blocker);
    lock.exec("LOCK TABLE templates, template_versions IN ACCESS EXCLUSIVE MODE");
    std::vector<std::thread> callers;
    for (int i = 0; i < 20; ++i) {
      callers.emplace_back([&, i] {
        auto job = job_for("welcome", "email", welcome_variables());
        job.notification_id = "3d0c4a52-6a43-4f6e-9a3c-5f1f2b7e9c" + std::to_string(10 + i);
        renderer.render(job, [&](RenderResult result) {
          std::lock_guard guard(mutex);
          results.push_back(std::move(result));
          answered.fetch_add(1);
        });
      });
    }
    for (auto& caller : callers) {
      caller.join();
    }
    std::this_thread::sleep_for(100ms);  // room for a wrong implementation to answer early
    CHECK(answered.load() == 0);
    lock.commit();
  }
  REQUIRE(notifs::pg_test::wait_until([&] { return answered.load() == 20; }, 20s));
  std::lock_guard guard(mutex);
  for (const auto& result : results) {
    INFO(result.reason);
    REQUIRE(result.status == RenderStatus::rendered);
    CHECK(result.content == results.front().content);  // one render shared by all
  }
  CHECK(settled_render_requests(service, before + 1) == before + 1);
}

TEST_CASE("worker renderer: destroying the renderer answers renders still waiting",
          "[worker][renderer]") {
  FixtureOptions options;
  options.cache.resolution_ttl = 0ms;
  TemplateServiceFixture service(options);
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  auto renderer = std::make_unique<RenderClient>(
      client, notifs::messaging::common::SystemClock::instance());

  std::promise<RenderResult> answered;
  auto future = answered.get_future();
  {
    pqxx::connection blocker(service.url());
    pqxx::work lock(blocker);
    lock.exec("LOCK TABLE templates, template_versions IN ACCESS EXCLUSIVE MODE");
    renderer->render(job_for("welcome", "email", welcome_variables()),
                     [&](RenderResult result) { answered.set_value(std::move(result)); });
    renderer.reset();
    REQUIRE(future.wait_for(0s) == std::future_status::ready);
    const auto result = future.get();
    CHECK(result.status == RenderStatus::unavailable);
    CHECK(result.reason.find("shutting down") != std::string::npos);
    lock.commit();
  }
  // The call still in flight completes into the state it keeps alive and calls nobody.
  CHECK(settled_render_requests(service, 1) == 1);
}

TEST_CASE(
    "worker renderer: template_service stopped means unavailable, quickly, or a stale "
    "render",
    "[worker][renderer]") {
  TemplateServiceFixture service;
  service.create(email_template("welcome"));
  http::ServiceClient client(client_settings(service.port()));
  FakeClock clock;
  RenderClientSettings settings;
  settings.cache.ttl = 30s;
  settings.cache.stale_ttl = 600s;
  RenderClient renderer(client, clock, settings);

  const auto cached_job = job_for("welcome", "email", welcome_variables());
  const auto fresh = render_now(renderer, cached_job);
  REQUIRE(fresh.status == RenderStatus::rendered);
  service.stop();
  clock.advance(60s);  // past the ttl: the next render asks the service first

  const auto started = SteadyClock::now();
  const auto uncached = render_now(renderer, job_for("welcome", "email", welcome_variables("Bob")));
  const auto took = SteadyClock::now() - started;
  CHECK(uncached.status == RenderStatus::unavailable);
  CHECK_FALSE(uncached.content);
  INFO(uncached.reason);
  CHECK(uncached.reason.find("template_service unavailable") != std::string::npos);
  // Connection refused is immediate: three attempts with millisecond backoff, nowhere near
  // the 15 s deadline.
  CHECK(took < 3s);

  // A render it had cached is served stale rather than failing the notification.
  const auto stale = render_now(renderer, cached_job);
  CHECK(stale.status == RenderStatus::rendered);
  CHECK(stale.content == fresh.content);
  CHECK(renderer.cache_stats().stale_hits == 1);

  // Past stale_ttl too, nothing stands in.
  clock.advance(700s);
  CHECK(render_now(renderer, cached_job).status == RenderStatus::unavailable);
}
