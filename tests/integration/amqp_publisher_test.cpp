// The pipelined confirming publisher against the real broker scripts/test started: what a
// success promises (the message is in the queue, properties intact), what every failure
// looks like (unroutable, missing exchange, backpressure, no broker), and recovery from a
// broker that drops every connection or stops: every callback resolves, and no message
// reported as confirmed is missing afterwards.

#include <amqp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "amqp/message_codec.hpp"
#include "integration/amqp_test_support.hpp"
#include "notifs/messaging/amqp/publisher.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
namespace detail = notifs::messaging::amqp::detail;
namespace test = notifs::amqp_test;
using namespace std::chrono_literals;

amqp::PublisherSettings publisher_settings(const amqp::TopologySettings& topology,
                                           std::size_t connections = 2) {
  amqp::PublisherSettings settings;
  settings.connection = test::connection_settings("test-publisher");
  settings.connections = connections;
  settings.topology = topology;
  settings.confirm_timeout = 15s;
  return settings;
}

amqp::OutgoingMessage message_to(const amqp::TopologySettings& topology, const std::string& id,
                                 const std::string& routing_key = "email") {
  amqp::OutgoingMessage message;
  message.exchange = topology.names.direct_exchange();
  message.routing_key = routing_key;
  message.message_id = id;
  message.correlation_id = "req-" + id;
  message.body = R"({"notification_id":")" + id + R"(","notification_type":"email"})";
  return message;
}

// A loopback port nothing listens on: bound once to get a free number, then released.
int closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  ::close(fd);
  return ntohs(address.sin_port);
}

amqp::PublisherSettings unreachable_settings() {
  amqp::PublisherSettings settings;
  settings.connection.url =
      "amqp://guest:guest@127.0.0.1:" + std::to_string(closed_port()) + "/%2f";
  settings.connection.connection_name = "test-publisher-unreachable";
  settings.connection.connect_timeout = 1000ms;
  settings.connection.reconnect = {10ms, 100ms, 2.0};
  return settings;
}

// The value of a counter series (or the sample count of a histogram); -1 when absent.
double metric(prometheus::Registry& registry, const std::string& name,
              const std::map<std::string, std::string>& labels = {}) {
  for (const auto& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const auto& series : family.metric) {
      bool matches = true;
      for (const auto& [key, value] : labels) {
        bool found = false;
        for (const auto& label : series.label) {
          if (label.name == key && label.value == value) found = true;
        }
        matches = matches && found;
      }
      if (!matches) continue;
      if (family.type == prometheus::MetricType::Histogram) {
        return static_cast<double>(series.histogram.sample_count);
      }
      return series.counter.value;
    }
  }
  return -1;
}

// Outcomes of publishes by message id, filled in by callbacks on publisher threads.
class Outcomes {
 public:
  amqp::PublishCallback callback_for(const std::string& id) {
    {
      std::lock_guard lock(mutex_);
      submitted_.push_back(id);
    }
    return [this, id](std::error_code error, const std::string& detail) {
      std::lock_guard lock(mutex_);
      if (results_.count(id) != 0) duplicates_.push_back(id);
      results_[id] = {error, detail};
      order_.push_back(id);
      threads_.insert(std::this_thread::get_id());
      if (!error) ++successes_;
    };
  }

  std::size_t submitted() const {
    std::lock_guard lock(mutex_);
    return submitted_.size();
  }
  std::size_t resolved() const {
    std::lock_guard lock(mutex_);
    return results_.size();
  }
  std::size_t successes() const {
    std::lock_guard lock(mutex_);
    return successes_;
  }
  std::vector<std::string> duplicates() const {
    std::lock_guard lock(mutex_);
    return duplicates_;
  }
  std::optional<std::pair<std::error_code, std::string>> result(const std::string& id) const {
    std::lock_guard lock(mutex_);
    const auto it = results_.find(id);
    if (it == results_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> order() const {
    std::lock_guard lock(mutex_);
    return order_;
  }
  std::set<std::thread::id> threads() const {
    std::lock_guard lock(mutex_);
    return threads_;
  }
  std::set<std::string> succeeded_ids() const {
    std::lock_guard lock(mutex_);
    std::set<std::string> ids;
    for (const auto& [id, result] : results_) {
      if (!result.first) ids.insert(id);
    }
    return ids;
  }
  std::map<std::string, std::size_t> failure_counts() const {
    std::lock_guard lock(mutex_);
    std::map<std::string, std::size_t> counts;
    for (const auto& [id, result] : results_) {
      if (result.first) ++counts[result.first.message()];
    }
    return counts;
  }
  bool only_failures_among(const std::set<amqp::AmqpErrc>& allowed) const {
    std::lock_guard lock(mutex_);
    for (const auto& [id, result] : results_) {
      if (!result.first) continue;
      bool ok = false;
      for (const auto errc : allowed) ok = ok || result.first == amqp::make_error_code(errc);
      if (!ok) return false;
    }
    return true;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> submitted_;
  std::map<std::string, std::pair<std::error_code, std::string>> results_;
  std::vector<std::string> order_;
  std::vector<std::string> duplicates_;
  std::set<std::thread::id> threads_;
  std::size_t successes_ = 0;
};

// Publishes a steady stream (about 1,000 messages a second, in small bursts) on a thread of
// its own until stopped, so a disruption always finds messages queued and in flight.
class PublishStream {
 public:
  PublishStream(amqp::AmqpPublisher& publisher, amqp::TopologySettings topology,
                Outcomes& outcomes)
      : publisher_(publisher), topology_(std::move(topology)), outcomes_(outcomes) {
    thread_ = std::thread([this] {
      std::size_t next = 0;
      while (!stop_.load()) {
        for (int i = 0; i < 5; ++i) {
          const std::string id = "s-" + std::to_string(next++);
          publisher_.async_publish(message_to(topology_, id), outcomes_.callback_for(id));
        }
        std::this_thread::sleep_for(5ms);
      }
    });
  }
  ~PublishStream() { stop(); }
  PublishStream(const PublishStream&) = delete;
  PublishStream& operator=(const PublishStream&) = delete;

  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  amqp::AmqpPublisher& publisher_;
  amqp::TopologySettings topology_;
  Outcomes& outcomes_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Every message id in the queue, taken with an auto-ack consumer on a connection of its
// own (basic.get on a quorum queue costs milliseconds a message, too slow for thousands).
std::multiset<std::string> drain_ids(const std::string& queue) {
  test::BrokerProbe probe(test::connection_settings("drain"));
  const std::uint32_t expected = probe.message_count(queue);
  detail::Connection& connection = probe.connection();
  amqp_connection_state_t state = connection.state();
  amqp_basic_consume(state, test::BrokerProbe::kChannel, amqp_cstring_bytes(queue.c_str()),
                     amqp_empty_bytes, /*no_local=*/0, /*no_ack=*/1, /*exclusive=*/0,
                     amqp_empty_table);
  connection.check_last_reply("basic.consume " + queue, test::BrokerProbe::kChannel);
  std::multiset<std::string> ids;
  while (ids.size() < expected) {
    amqp_maybe_release_buffers(state);
    amqp_envelope_t envelope{};
    timeval timeout{10, 0};
    const amqp_rpc_reply_t reply = amqp_consume_message(state, &envelope, &timeout, 0);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
      FAIL("consuming " << queue << " stopped after " << ids.size() << " of " << expected
                        << " messages");
    }
    ids.insert(detail::to_string(envelope.message.properties.message_id));
    amqp_destroy_envelope(&envelope);
  }
  return ids;
}

// What recovery must guarantee: every publish resolved exactly once, only failures that a
// lost connection explains, every confirmed message in the queue, and a working publisher.
void check_after_recovery(amqp::AmqpPublisher& publisher, const amqp::TopologySettings& topology,
                          const Outcomes& outcomes) {
  REQUIRE(publisher.flush(60s));
  INFO("submitted=" << outcomes.submitted() << " successes=" << outcomes.successes());
  CHECK(outcomes.resolved() == outcomes.submitted());
  CHECK(outcomes.duplicates().empty());
  {
    const auto failures = outcomes.failure_counts();
    for (const auto& [what, count] : failures) UNSCOPED_INFO("failed: " << count << " x " << what);
    CHECK(outcomes.only_failures_among({amqp::AmqpErrc::connection_lost,
                                        amqp::AmqpErrc::not_connected,
                                        amqp::AmqpErrc::confirm_timeout}));
  }

  // Publishing works again.
  auto after = publisher.publish(message_to(topology, "after-recovery"));
  REQUIRE(after.wait_for(30s) == std::future_status::ready);
  REQUIRE_NOTHROW(after.get());

  const std::multiset<std::string> stored = drain_ids(topology.names.main_queue("email"));
  CHECK(stored.count("after-recovery") == 1);
  std::size_t lost = 0;
  for (const auto& id : outcomes.succeeded_ids()) {
    if (stored.count(id) == 0) {
      if (lost < 10) UNSCOPED_INFO("confirmed but not in the queue: " << id);
      ++lost;
    }
  }
  CHECK(lost == 0);
  CHECK(stored.size() >= outcomes.successes() + 1);
}

// Starts the broker's app again at scope exit unless the test did: a failing recovery test
// must not leave a stopped broker behind for the tests after it.
class StartAppGuard {
 public:
  ~StartAppGuard() {
    if (!started_) test::run_rabbitmqctl({"start_app"});
  }
  void start() {
    test::rabbitmqctl({"start_app"});
    started_ = true;
  }

 private:
  bool started_ = false;
};

}  // namespace

TEST_CASE("amqp publisher round trip: a confirmed message is stored with its properties",
          "[amqp][publisher]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology), registry);

  amqp::OutgoingMessage message = message_to(topology, "6f1c9a8e-0001");
  message.correlation_id = "order-1234-welcome";
  message.priority = 7;
  message.timestamp = std::chrono::system_clock::time_point(std::chrono::seconds{1700000000});
  message.headers.set(std::string(amqp::kAttemptHeader), std::int64_t{2});
  message.headers.set(std::string(amqp::kTraceparentHeader),
                      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  message.headers.set("x-flag", true);
  const std::string body = message.body;

  auto confirmed = publisher.publish(message);
  REQUIRE(confirmed.wait_for(30s) == std::future_status::ready);
  REQUIRE_NOTHROW(confirmed.get());

  // Read it back raw, so delivery_mode (which Delivery does not carry) is checked too.
  test::BrokerProbe probe;
  amqp_connection_state_t state = probe.connection().state();
  const std::string queue = topology.names.main_queue("email");
  const amqp_rpc_reply_t reply = amqp_basic_get(state, test::BrokerProbe::kChannel,
                                                amqp_cstring_bytes(queue.c_str()), /*no_ack=*/1);
  probe.connection().check(reply, "basic.get " + queue, test::BrokerProbe::kChannel);
  REQUIRE(reply.reply.id == AMQP_BASIC_GET_OK_METHOD);
  amqp_message_t raw{};
  probe.connection().check(amqp_read_message(state, test::BrokerProbe::kChannel, &raw, 0),
                           "read message", test::BrokerProbe::kChannel);
  const bool persistent = (raw.properties._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) != 0 &&
                          raw.properties.delivery_mode == AMQP_DELIVERY_PERSISTENT;
  const amqp::Delivery got = detail::decode_delivery(raw.properties, detail::to_string(raw.body),
                                                     {}, {}, false);
  amqp_destroy_message(&raw);

  CHECK(persistent);
  CHECK(got.body == body);
  CHECK(got.content_type == "application/json");
  CHECK(got.message_id == "6f1c9a8e-0001");
  CHECK(got.correlation_id == "order-1234-welcome");
  REQUIRE(got.priority.has_value());
  CHECK(*got.priority == 7);
  REQUIRE(got.timestamp.has_value());
  CHECK(*got.timestamp == std::chrono::system_clock::time_point(std::chrono::seconds{1700000000}));
  CHECK(got.headers.get_int(amqp::kAttemptHeader) == std::int64_t{2});
  CHECK(got.headers.get_string(amqp::kTraceparentHeader) ==
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  CHECK(got.headers.get_string("x-flag") == "true");
  // The publisher's sequence header (how a basic.return is matched): the first tag is 1.
  CHECK(got.headers.get_int("x-publish-seq") == std::int64_t{1});
  CHECK(probe.message_count(queue) == 0);

  CHECK(metric(*registry, "amqp_published_total") == 1);
  CHECK(metric(*registry, "amqp_confirmed_total") == 1);
  CHECK(metric(*registry, "amqp_publish_confirm_seconds") == 1);
  CHECK(metric(*registry, "amqp_nacked_total") == 0);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "connection_lost"}}) == 0);
  CHECK(metric(*registry, "amqp_reconnects_total", {{"role", "publisher"}}) == 0);
  // The pool connects on its own threads: the second connection may still be declaring.
  CHECK(test::wait_until([&] { return publisher.connected() == 2; }, 10s));
}

TEST_CASE("amqp publisher fails unroutable mandatory publishes, matched among routable ones",
          "[amqp][publisher]") {
  // The classic queue type, with priorities.
  const amqp::TopologySettings topology = test::test_topology(amqp::QueueType::classic);
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  // One connection: routable and unroutable messages interleave in one confirm window, so
  // each return has to be matched to the right message.
  amqp::AmqpPublisher publisher(publisher_settings(topology, 1), registry);

  Outcomes outcomes;
  constexpr int kMessages = 60;
  for (int i = 0; i < kMessages; ++i) {
    const std::string id = "m-" + std::to_string(i);
    // The exchange exists; "nobody" is bound to nothing.
    publisher.async_publish(message_to(topology, id, i % 3 == 1 ? "nobody" : "email"),
                            outcomes.callback_for(id));
  }
  REQUIRE(publisher.flush(30s));
  REQUIRE(outcomes.resolved() == kMessages);
  int routed = 0;
  for (int i = 0; i < kMessages; ++i) {
    const std::string id = "m-" + std::to_string(i);
    const auto result = outcomes.result(id);
    REQUIRE(result.has_value());
    INFO(id << ": " << result->first.message() << " " << result->second);
    if (i % 3 == 1) {
      CHECK(result->first == amqp::AmqpErrc::unroutable);
      CHECK_THAT(result->second, Catch::Contains("NO_ROUTE") && Catch::Contains("nobody"));
    } else {
      CHECK(!result->first);
      ++routed;
    }
  }

  auto single = publisher.publish(message_to(topology, "lonely", "nobody"));
  REQUIRE(single.wait_for(30s) == std::future_status::ready);
  try {
    single.get();
    FAIL("an unroutable publish reported success");
  } catch (const std::system_error& e) {
    CHECK(e.code() == amqp::AmqpErrc::unroutable);
  }

  test::BrokerProbe probe;
  CHECK(probe.message_count(topology.names.main_queue("email")) ==
        static_cast<std::uint32_t>(routed));
  CHECK(metric(*registry, "amqp_returned_total") == kMessages / 3 + 1);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "unroutable"}}) ==
        kMessages / 3 + 1);
  CHECK(metric(*registry, "amqp_confirmed_total") == routed);
}

TEST_CASE("amqp publisher fails a publish to a missing exchange visibly and recovers",
          "[amqp][publisher]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  amqp::AmqpPublisher publisher(publisher_settings(topology, 1));

  amqp::OutgoingMessage lost = message_to(topology, "to-nowhere");
  lost.exchange = topology.names.direct_exchange() + ".missing";
  auto failed = publisher.publish(lost);
  REQUIRE(failed.wait_for(30s) == std::future_status::ready);
  try {
    failed.get();
    FAIL("a publish to a missing exchange reported success");
  } catch (const std::system_error& e) {
    INFO(e.what());
    CHECK(e.code() == amqp::AmqpErrc::connection_lost);
    CHECK_THAT(e.what(), Catch::Contains("404") && Catch::Contains("NOT_FOUND"));
  }

  // The channel was closed by the broker; the next message goes through.
  for (int i = 0; i < 3; ++i) {
    auto next = publisher.publish(message_to(topology, "after-" + std::to_string(i)));
    REQUIRE(next.wait_for(30s) == std::future_status::ready);
    REQUIRE_NOTHROW(next.get());
  }
  test::BrokerProbe probe;
  CHECK(probe.message_count(topology.names.main_queue("email")) == 3);
  CHECK(publisher.connected() == 1);
}

TEST_CASE("amqp publisher refuses a message it cannot encode without disturbing the others",
          "[amqp][publisher]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology, 1), registry);

  Outcomes outcomes;
  for (int i = 0; i < 20; ++i) {
    const std::string id = "ok-" + std::to_string(i);
    publisher.async_publish(message_to(topology, id), outcomes.callback_for(id));
    if (i == 10) {
      amqp::OutgoingMessage bad = message_to(topology, "bad");
      bad.routing_key = std::string(300, 'k');  // AMQP short strings end at 255 bytes
      publisher.async_publish(bad, outcomes.callback_for("bad"));
    }
  }
  REQUIRE(publisher.flush(30s));
  const auto bad = outcomes.result("bad");
  REQUIRE(bad.has_value());
  CHECK(bad->first == std::errc::invalid_argument);
  CHECK_THAT(bad->second, Catch::Contains("routing key"));
  CHECK(outcomes.successes() == 20);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "invalid_message"}}) == 1);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "connection_lost"}}) == 0);
}

TEST_CASE("amqp publisher confirms 10,000 messages from 8 threads, each stored once",
          "[amqp][publisher]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology), registry);

  constexpr int kThreads = 8;
  constexpr int kPerThread = 1250;
  std::atomic<int> successes{0};
  std::atomic<int> failures{0};
  std::mutex first_error_mutex;
  std::string first_error;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = "p" + std::to_string(t) + "-" + std::to_string(i);
        publisher.async_publish(message_to(topology, id),
                                [&](std::error_code error, const std::string& detail) {
                                  if (!error) {
                                    ++successes;
                                    return;
                                  }
                                  ++failures;
                                  std::lock_guard guard(first_error_mutex);
                                  if (first_error.empty()) first_error = detail;
                                });
      }
    });
  }
  for (auto& thread : threads) thread.join();
  REQUIRE(publisher.flush(90s));
  INFO("first error: " << first_error);
  REQUIRE(failures.load() == 0);
  REQUIRE(successes.load() == kThreads * kPerThread);

  const std::multiset<std::string> ids = drain_ids(topology.names.main_queue("email"));
  CHECK(ids.size() == static_cast<std::size_t>(kThreads * kPerThread));
  std::size_t missing = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      if (ids.count("p" + std::to_string(t) + "-" + std::to_string(i)) != 1) ++missing;
    }
  }
  CHECK(missing == 0);
  CHECK(metric(*registry, "amqp_published_total") == kThreads * kPerThread);
  CHECK(metric(*registry, "amqp_confirmed_total") == kThreads * kPerThread);
}

TEST_CASE("amqp publisher refuses with backpressure when its queue is full",
          "[amqp][publisher]") {
  amqp::PublisherSettings settings = unreachable_settings();
  settings.connections = 1;
  settings.queue_capacity = 4;
  // Long enough that nothing leaves the queue while the test fills it.
  settings.connect_wait = 3000ms;
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(settings, registry);

  Outcomes outcomes;
  amqp::OutgoingMessage message;
  message.exchange = "notifications.direct";
  message.routing_key = "email";
  message.body = "{}";
  for (int i = 0; i < 10; ++i) {
    const std::string id = "b-" + std::to_string(i);
    publisher.async_publish(message, outcomes.callback_for(id));
  }
  REQUIRE(test::wait_until([&] { return outcomes.resolved() == 10; }, 20s));

  int backpressure = 0;
  int not_connected = 0;
  for (int i = 0; i < 10; ++i) {
    const auto result = outcomes.result("b-" + std::to_string(i));
    REQUIRE(result.has_value());
    if (result->first == amqp::AmqpErrc::backpressure) ++backpressure;
    if (result->first == amqp::AmqpErrc::not_connected) ++not_connected;
    CHECK(result->first);  // never a success
  }
  CHECK(backpressure == 6);
  CHECK(not_connected == 4);
  // The refusals came at once; the queued ones only after connect_wait.
  const auto order = outcomes.order();
  for (std::size_t i = 0; i < 6; ++i) {
    CHECK(outcomes.result(order[i])->first == amqp::AmqpErrc::backpressure);
  }
  // Callbacks run on publisher threads, never inside the caller's async_publish.
  CHECK(outcomes.threads().count(std::this_thread::get_id()) == 0);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "backpressure"}}) == 6);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "not_connected"}}) == 4);
}

TEST_CASE("amqp publisher against a closed port fails with not_connected after connect_wait",
          "[amqp][publisher]") {
  amqp::PublisherSettings settings = unreachable_settings();
  settings.connect_wait = 300ms;
  amqp::AmqpPublisher publisher(settings);

  amqp::OutgoingMessage message;
  message.exchange = "notifications.direct";
  message.routing_key = "email";
  message.body = "{}";
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::future<void>> futures;
  for (int i = 0; i < 20; ++i) futures.push_back(publisher.publish(message));
  for (auto& future : futures) {
    REQUIRE(future.wait_for(20s) == std::future_status::ready);
    try {
      future.get();
      FAIL("a publish without a broker reported success");
    } catch (const std::system_error& e) {
      INFO(e.what());
      CHECK(e.code() == amqp::AmqpErrc::not_connected);
      CHECK_THAT(e.what(), Catch::Contains("connect_wait"));
    }
  }
  // Not before connect_wait: short outages are bridged, not failed at once.
  CHECK(std::chrono::steady_clock::now() - started >= 300ms);
  CHECK(publisher.connected() == 0);
  CHECK(publisher.flush(1s));
}

TEST_CASE("amqp publisher destruction fails what it could not send with shutting_down",
          "[amqp][publisher]") {
  Outcomes outcomes;
  {
    amqp::PublisherSettings settings = unreachable_settings();
    settings.connect_wait = 60s;           // nothing expires on its own
    settings.confirm_timeout = 300ms;      // bounds the destructor's drain
    amqp::AmqpPublisher publisher(settings);
    amqp::OutgoingMessage message;
    message.exchange = "notifications.direct";
    message.routing_key = "email";
    message.body = "{}";
    for (int i = 0; i < 5; ++i) {
      const std::string id = "q-" + std::to_string(i);
      publisher.async_publish(message, outcomes.callback_for(id));
    }
    CHECK_FALSE(publisher.flush(100ms));
  }
  // Every callback has run by the time the destructor returns.
  REQUIRE(outcomes.resolved() == 5);
  for (int i = 0; i < 5; ++i) {
    CHECK(outcomes.result("q-" + std::to_string(i))->first == amqp::AmqpErrc::shutting_down);
  }
}

TEST_CASE("amqp publisher refuses a topology that would weaken its guarantees, and says why",
          "[amqp][publisher]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  // Someone declared the main queue before, as a plain classic queue without dead-lettering.
  const std::string queue = topology.names.main_queue("email");
  {
    test::BrokerProbe probe;
    probe.declare_queue(queue, nlohmann::json::object());
  }
  amqp::PublisherSettings settings = publisher_settings(topology, 1);
  settings.connect_wait = 500ms;
  amqp::AmqpPublisher publisher(settings);

  auto refused = publisher.publish(message_to(topology, "never-sent"));
  REQUIRE(refused.wait_for(30s) == std::future_status::ready);
  try {
    refused.get();
    FAIL("a publish without an acceptable topology reported success");
  } catch (const std::system_error& e) {
    INFO(e.what());
    CHECK(e.code() == amqp::AmqpErrc::not_connected);
    CHECK_THAT(e.what(), Catch::Contains(queue));
  }
  CHECK(publisher.connected() == 0);
  test::BrokerProbe probe;
  CHECK(probe.message_count(queue) == 0);
}

TEST_CASE("amqp publisher recovers from close_all_connections without losing a confirmed "
          "message",
          "[amqp][publisher][recovery]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::AmqpPublisher publisher(publisher_settings(topology), registry);

  Outcomes outcomes;
  {
    PublishStream stream(publisher, topology, outcomes);
    REQUIRE(test::wait_until([&] { return outcomes.successes() >= 300; }, 30s));
    test::rabbitmqctl({"close_all_connections", "test"});
    const std::size_t at_close = outcomes.successes();
    // Both pool connections were dropped and rebuilt, and messages flow again.
    REQUIRE(test::wait_until(
        [&] { return metric(*registry, "amqp_reconnects_total", {{"role", "publisher"}}) >= 2; },
        30s));
    REQUIRE(test::wait_until([&] { return outcomes.successes() >= at_close + 300; }, 30s));
    stream.stop();
  }
  CHECK(publisher.connected() == 2);
  check_after_recovery(publisher, topology, outcomes);
}

TEST_CASE("amqp publisher recovers from broker stop_app and start_app without losing a "
          "confirmed message",
          "[amqp][publisher][recovery]") {
  const amqp::TopologySettings topology = test::test_topology();
  // No TopologyCleanup here, on purpose. In RabbitMQ 3.10.8, deleting quorum queues with
  // at-least-once dead-lettering while they are still recovering after start_app crashes
  // their dead-letter workers often enough to take rabbit_fifo_dlx_sup down for good: every
  // later declare of such a queue fails with 541 INTERNAL_ERROR until the node restarts.
  // The queues are emptied below, and the node is thrown away after the run.
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::PublisherSettings settings = publisher_settings(topology);
  settings.connect_wait = 500ms;
  amqp::AmqpPublisher publisher(settings, registry);

  Outcomes outcomes;
  {
    PublishStream stream(publisher, topology, outcomes);
    REQUIRE(test::wait_until([&] { return outcomes.successes() >= 300; }, 30s));
    StartAppGuard guard;
    test::rabbitmqctl({"stop_app"});
    REQUIRE(test::wait_until([&] { return publisher.connected() == 0; }, 30s));
    const std::size_t resolved_while_down = outcomes.resolved();
    // While the broker is away, queued messages fail after connect_wait instead of piling up.
    REQUIRE(test::wait_until([&] { return outcomes.resolved() >= resolved_while_down + 50; },
                             30s));
    guard.start();
    REQUIRE(test::wait_until([&] { return publisher.connected() == 2; }, 60s));
    const std::size_t at_restart = outcomes.successes();
    REQUIRE(test::wait_until([&] { return outcomes.successes() >= at_restart + 300; }, 30s));
    stream.stop();
  }
  CHECK(metric(*registry, "amqp_reconnects_total", {{"role", "publisher"}}) >= 2);
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "not_connected"}}) > 0);
  check_after_recovery(publisher, topology, outcomes);
}

namespace {

// A memory alarm on the broker (it blocks every publishing connection) for the scope.
class MemoryAlarm {
 public:
  MemoryAlarm() { test::rabbitmqctl({"set_vm_memory_high_watermark", "0.000001"}); }
  ~MemoryAlarm() {
    if (raised_) test::run_rabbitmqctl({"set_vm_memory_high_watermark", "0.4"});
  }
  MemoryAlarm(const MemoryAlarm&) = delete;
  MemoryAlarm& operator=(const MemoryAlarm&) = delete;

  void clear() {
    test::rabbitmqctl({"set_vm_memory_high_watermark", "0.4"});  // RabbitMQ's default
    raised_ = false;
  }
  static bool active() {
    return test::rabbitmqctl({"status"}).find("Memory alarm on node") != std::string::npos;
  }

 private:
  bool raised_ = true;
};

// Whether the broker holds the connection of this client-provided name in state "blocked".
bool connection_blocked(const std::string& connection_name) {
  const nlohmann::json listing = nlohmann::json::parse(
      test::rabbitmqctl(
          {"list_connections", "--quiet", "--formatter", "json", "client_properties", "state"}),
      nullptr, false);
  if (!listing.is_array()) return false;
  for (const auto& connection : listing) {
    bool named = false;
    for (const auto& property : connection.value("client_properties", nlohmann::json::array())) {
      named = named || (property.is_array() && property.size() == 3 &&
                        property[0] == "connection_name" && property[2] == connection_name);
    }
    if (named && connection.value("state", std::string()) == "blocked") return true;
  }
  return false;
}

}  // namespace

TEST_CASE("amqp publisher holds messages while the broker blocks publishers, refusing with "
          "backpressure when full",
          "[amqp][publisher][recovery]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::PublisherSettings settings = publisher_settings(topology, 1);
  settings.queue_capacity = 50;
  settings.confirm_timeout = 60s;
  const std::string connection_name = "test-publisher-alarm-" + test::unique_prefix();
  settings.connection.connection_name = connection_name;
  amqp::AmqpPublisher publisher(settings, registry);
  auto warm_up = publisher.publish(message_to(topology, "before-alarm"));
  REQUIRE(warm_up.wait_for(30s) == std::future_status::ready);
  REQUIRE_NOTHROW(warm_up.get());

  Outcomes outcomes;
  {
    MemoryAlarm alarm;
    REQUIRE(test::wait_until([] { return MemoryAlarm::active(); }, 30s, 200ms));
    // RabbitMQ blocks a connection (and sends connection.blocked) when it next publishes
    // during the alarm: this message goes out and waits in the broker until the alarm ends.
    publisher.async_publish(message_to(topology, "trigger"), outcomes.callback_for("trigger"));
    REQUIRE(test::wait_until([&] { return connection_blocked(connection_name); }, 30s, 100ms));
    // From now on the publisher writes nothing: 50 messages wait in its queue, the rest is
    // refused at once.
    for (int i = 0; i < 200; ++i) {
      const std::string id = "blocked-" + std::to_string(i);
      publisher.async_publish(message_to(topology, id), outcomes.callback_for(id));
    }
    REQUIRE(test::wait_until([&] { return outcomes.resolved() >= 150; }, 10s));
    std::this_thread::sleep_for(300ms);
    CHECK(outcomes.resolved() == 150);
    CHECK(outcomes.successes() == 0);
    CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "backpressure"}}) == 150);
    CHECK(metric(*registry, "amqp_published_total") == 2);  // warm-up and trigger
    alarm.clear();
  }
  // The alarm is over: the held messages go out and are confirmed.
  REQUIRE(publisher.flush(60s));
  CHECK(outcomes.successes() == 51);
  test::BrokerProbe probe;
  CHECK(probe.message_count(topology.names.main_queue("email")) == 52);
}

TEST_CASE("amqp publisher fails a message the broker does not confirm in time",
          "[amqp][publisher][recovery]") {
  const amqp::TopologySettings topology = test::test_topology();
  test::TopologyCleanup cleanup(topology);
  auto registry = std::make_shared<prometheus::Registry>();
  amqp::PublisherSettings settings = publisher_settings(topology, 1);
  settings.confirm_timeout = 1000ms;
  amqp::AmqpPublisher publisher(settings, registry);
  auto warm_up = publisher.publish(message_to(topology, "before-alarm"));
  REQUIRE(warm_up.wait_for(30s) == std::future_status::ready);
  REQUIRE_NOTHROW(warm_up.get());

  {
    MemoryAlarm alarm;
    REQUIRE(test::wait_until([] { return MemoryAlarm::active(); }, 30s, 200ms));
    // Written, then held by the blocked broker: no confirm within a second.
    auto stuck = publisher.publish(message_to(topology, "stuck"));
    REQUIRE(stuck.wait_for(30s) == std::future_status::ready);
    try {
      stuck.get();
      FAIL("a message the broker held reported success before the alarm ended");
    } catch (const std::system_error& e) {
      INFO(e.what());
      CHECK(e.code() == amqp::AmqpErrc::confirm_timeout);
    }
    alarm.clear();
  }
  // The late confirm of the timed-out message is ignored, and the channel keeps working.
  auto after = publisher.publish(message_to(topology, "after-alarm"));
  REQUIRE(after.wait_for(30s) == std::future_status::ready);
  REQUIRE_NOTHROW(after.get());
  CHECK(metric(*registry, "amqp_publish_failed_total", {{"reason", "confirm_timeout"}}) == 1);
  CHECK(metric(*registry, "amqp_confirmed_total") == 2);
}
