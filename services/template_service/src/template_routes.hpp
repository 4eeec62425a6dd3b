#pragma once

#include <memory>
#include <optional>
#include <string>

#include "notifs/messaging/http/router.hpp"
#include "template_cache.hpp"
#include "template_store.hpp"

namespace prometheus {
class Registry;
}

namespace notifs::template_service {

// Finds the version a request means, from the cache when it can (no PostgreSQL), else
// from the store, filling the cache. Thread-safe; blocks on the store on a miss.
class TemplateResolver {
 public:
  // `registry` may be null (no metrics).
  TemplateResolver(TemplateStore& store, TemplateCache& cache,
                   const std::shared_ptr<prometheus::Registry>& registry);
  ~TemplateResolver();
  TemplateResolver(const TemplateResolver&) = delete;
  TemplateResolver& operator=(const TemplateResolver&) = delete;

  // The named version (or the newest) of `locale`, or of en when `locale` has none.
  // Throws TemplateError as TemplateStore::find does.
  std::shared_ptr<const CompiledTemplate> resolve(const std::string& code,
                                                  const std::string& locale,
                                                  std::optional<std::int32_t> version);
  // A version this replica just wrote: the code's cached resolutions go, the compiled
  // version is cached (it is likely rendered next).
  std::shared_ptr<const CompiledTemplate> written(TemplateVersion stored);

 private:
  struct Metrics;
  TemplateStore& store_;
  TemplateCache& cache_;
  std::unique_ptr<Metrics> metrics_;
};

// The service's routes (CONTRACT.md "template_service"). Every handler runs on the
// server's worker pool (Execution::blocking), a cached render included. Measured on the
// 2-core machine (Release, wrk -t2 -c32, cached email template, loaded by other builds):
// a prototype answering the render on the io threads did ~27k req/s, on the worker pool
// ~40k (more threads get more of the contended CPU, and the io threads keep parsing and
// writing meanwhile); the service itself does 27-31k req/s against a 10k bar. So the
// two-stage design (hit on the io thread, miss posted to a worker) buys nothing here,
// and one way for every route keeps it simple.
messaging::http::Router make_template_router(TemplateStore& store, TemplateResolver& resolver);

}  // namespace notifs::template_service
