// The server's request metrics keep resolved series in per-route tables; whatever the
// tables hold, every request must be counted once, under the right labels.
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "http/server_metrics.hpp"

namespace http = notifs::messaging::http;
using http::Method;

namespace {

std::string text_of(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

std::string counter_line(std::string_view method, std::string_view route, unsigned status,
                         std::uint64_t value) {
  return "http_requests_total{method=\"" + std::string(method) + "\",route=\"" +
         std::string(route) + "\",service=\"svc\",status=\"" + std::to_string(status) + "\"} " +
         std::to_string(value) + "\n";
}

}  // namespace

TEST_CASE("Server metrics count every request, beyond what the route tables cache", "[http][server][metrics]") {
  prometheus::Registry registry;
  http::detail::ServerMetrics metrics(registry, "svc");
  const http::Router::Route users{Method::get, "/users/{id}", {}, 0};
  const http::Router::Route items{Method::post, "/items", {}, 1};
  // Known to the router but not to the tables (index past prepare's count): the slow path.
  const http::Router::Route late{Method::get, "/late", {}, 2};
  metrics.prepare(2);

  // More distinct (method, status) pairs on one route than a route table has slots, from
  // several threads at once, so slots are claimed concurrently and some pairs never get one.
  constexpr unsigned kStatuses = 40;
  constexpr int kThreads = 4;
  constexpr int kRounds = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < kRounds; ++round) {
        for (unsigned i = 0; i < kStatuses; ++i) {
          metrics.observe_request(&users, i % 2 == 0 ? Method::get : Method::head, 200 + i, 0.002);
        }
        metrics.observe_request(&items, Method::post, 201, 0.004);
        metrics.observe_request(nullptr, Method::other, 404, 0.0001);
        metrics.observe_request(&late, Method::get, 200, 0.001);
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }

  const auto text = text_of(registry);
  const std::uint64_t each = kThreads * kRounds;
  for (unsigned i = 0; i < kStatuses; ++i) {
    INFO("status " << 200 + i);
    CHECK(text.find(counter_line(i % 2 == 0 ? "GET" : "HEAD", "/users/{id}", 200 + i, each)) !=
          std::string::npos);
  }
  CHECK(text.find(counter_line("POST", "/items", 201, each)) != std::string::npos);
  CHECK(text.find(counter_line("OTHER", "unmatched", 404, each)) != std::string::npos);
  CHECK(text.find(counter_line("GET", "/late", 200, each)) != std::string::npos);
  // Durations: one histogram per (method, route), each observation counted once.
  CHECK(text.find("http_request_duration_seconds_count{method=\"GET\",route=\"/users/{id}\","
                  "service=\"svc\"} " +
                  std::to_string(each * kStatuses / 2)) != std::string::npos);
  CHECK(text.find("http_request_duration_seconds_count{method=\"POST\",route=\"/items\","
                  "service=\"svc\"} " +
                  std::to_string(each)) != std::string::npos);
}

TEST_CASE("Two servers' metrics on one registry share the series", "[http][server][metrics]") {
  prometheus::Registry registry;
  http::detail::ServerMetrics first(registry, "svc");
  http::detail::ServerMetrics second(registry, "svc");
  const http::Router::Route health{Method::get, "/health", {}, 0};
  first.prepare(1);
  second.prepare(1);
  first.observe_request(&health, Method::get, 200, 0.001);
  second.observe_request(&health, Method::get, 200, 0.001);
  first.connection_opened();
  second.connection_opened();
  second.connection_closed();
  const auto text = text_of(registry);
  CHECK(text.find(counter_line("GET", "/health", 200, 2)) != std::string::npos);
  CHECK(text.find("http_connections_active{service=\"svc\"} 1") != std::string::npos);
}
