#pragma once

#include <string>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
class Histogram;
class Gauge;
template <typename T>
class Family;
}  // namespace prometheus

namespace notifs::messaging::http::detail {

// The server's metrics on a shared registry. Families are merged by name, so two servers
// on one registry (tests, a process with an admin port) share the series. Thread-safe.
class ServerMetrics {
 public:
  ServerMetrics(prometheus::Registry& registry, std::string service);

  // `route` is the matched pattern or "unmatched", never the raw path, so the number of
  // series stays bounded whatever clients send.
  void observe_request(std::string_view method, std::string_view route, unsigned status,
                       double seconds);
  void connection_opened();
  void connection_closed();

 private:
  std::string service_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& durations_;
  prometheus::Gauge& connections_;
};

}  // namespace notifs::messaging::http::detail
