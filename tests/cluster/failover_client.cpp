// Load for tests/cluster/run: publishes notifications with confirms at a steady rate through
// notifs::messaging's AmqpPublisher and consumes them with its Consumer, both given every
// node of the cluster, while the suite stops the node that leads the queue. Then it drains
// and checks that every message the broker confirmed was consumed (at least once).
//
//   failover_client --urls LIST [--rate N] [--drain-seconds N] [--report FILE]
//
// Signals drive the phases (the suite knows when it breaks things, this program does not):
//   SIGUSR1          "the fault starts now": recovery is measured from here
//   SIGUSR2          "the node is down now": what is published from here on must be
//                    confirmed and consumed too (publishing recovered, not only the drain)
//   SIGTERM, SIGINT  stop publishing, drain, report, exit
// It prints "ready" on stdout once the publisher and the consumer are connected and the
// first message went round, then one summary line of key=value (also written as JSON to
// --report). Exit status: 0 when nothing confirmed was lost, 1 when something was, 2 on
// bad usage or when it could not start.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "notifs/messaging/amqp/consumer.hpp"
#include "notifs/messaging/amqp/error.hpp"
#include "notifs/messaging/amqp/publisher.hpp"
#include "notifs/messaging/amqp/topology.hpp"
#include "notifs/messaging/common/logging.hpp"

namespace {

namespace amqp = notifs::messaging::amqp;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

struct Options {
  std::string urls;
  double rate = 200;  // messages per second
  std::chrono::seconds drain{40};
  std::string report;
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) throw UsageError(flag + " needs a value");
    const std::string value = argv[++i];
    try {
      if (flag == "--urls") {
        options.urls = value;
      } else if (flag == "--rate") {
        options.rate = std::stod(value);
      } else if (flag == "--drain-seconds") {
        options.drain = std::chrono::seconds{std::stoi(value)};
      } else if (flag == "--report") {
        options.report = value;
      } else {
        throw UsageError("unknown flag " + flag);
      }
    } catch (const std::logic_error&) {
      throw UsageError(flag + ": not a number: " + value);
    }
  }
  if (options.urls.empty()) throw UsageError("--urls is required");
  if (!(options.rate > 0 && options.rate <= 10000))
    throw UsageError("--rate must be in (0, 10000]");
  amqp::validate_url(options.urls);
  return options;
}

// The longest pause in a stream of events (confirms, deliveries) and when it ended.
class GapMeter {
 public:
  void mark(SteadyClock::time_point now) {
    if (last_ && now - *last_ > max_gap_) {
      max_gap_ = now - *last_;
      gap_end_ = now;
    }
    last_ = now;
  }
  SteadyClock::duration max_gap() const { return max_gap_; }
  std::optional<SteadyClock::time_point> gap_end() const {
    return last_ ? std::optional(gap_end_) : std::nullopt;
  }

 private:
  std::optional<SteadyClock::time_point> last_;
  SteadyClock::duration max_gap_{};
  SteadyClock::time_point gap_end_{};
};

// What both sides saw. One mutex: a few hundred events a second.
struct Ledger {
  std::mutex mutex;
  std::set<std::string> confirmed;
  std::map<std::string, int> failed_by_reason;  // publishes the broker did not confirm
  std::optional<SteadyClock::time_point> first_failure;
  std::optional<SteadyClock::time_point> last_failure;
  std::map<std::string, int> consumed;  // message id -> deliveries
  std::set<std::string> published_after_down;
  std::uint64_t deliveries = 0;
  std::uint64_t redelivered = 0;
  bool loading = true;  // gaps count only while load runs
  GapMeter confirms;
  GapMeter arrivals;
  // The same from the fault on (seeded with its time), for the recovery time.
  bool after_fault = false;
  GapMeter confirms_after_fault;
  GapMeter arrivals_after_fault;
  // Set once every client is connected again after the fault: the first confirm and the
  // first delivery from then on end the outage.
  std::optional<SteadyClock::time_point> watch_from;
  std::optional<SteadyClock::time_point> first_confirm_after;
  std::optional<SteadyClock::time_point> first_delivery_after;

  std::size_t unconsumed() {
    std::size_t missing = 0;
    for (const auto& id : confirmed) missing += consumed.count(id) == 0 ? 1 : 0;
    return missing;
  }
};

std::int64_t ms(SteadyClock::duration duration) {
  return std::chrono::duration_cast<Millis>(duration).count();
}

amqp::ConnectionSettings connection(const Options& options, const std::string& name) {
  amqp::ConnectionSettings settings;
  settings.url = options.urls;
  settings.connection_name = name;
  // A stopped node answers nothing on its socket for a moment; heartbeats and timeouts
  // short enough that a half-open connection is noticed within the test's window.
  settings.heartbeat = 5s;
  settings.connect_timeout = 3000ms;
  settings.rpc_timeout = 10000ms;
  settings.reconnect = {Millis{100}, Millis{2000}, 2.0};
  return settings;
}

int run(const Options& options) {
  // Signals are taken by sigtimedwait on the main thread; every thread started below
  // inherits the mask, so none of them is interrupted.
  sigset_t signals;
  sigemptyset(&signals);
  for (const int signal : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaddset(&signals, signal);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  amqp::TopologySettings topology;  // the contract's names: email.queue and friends
  // Declared once up front through the first node that answers, so the queues' leaders
  // are on the node the clients connect to first: stopping the leader then also takes the
  // clients' node away.
  amqp::declare_topology(connection(options, "cluster-failover-setup"), topology);

  Ledger ledger;
  amqp::PublisherSettings publisher_settings;
  publisher_settings.connection = connection(options, "cluster-failover-publisher");
  publisher_settings.connections = 2;
  publisher_settings.topology = topology;
  publisher_settings.confirm_timeout = 15s;
  publisher_settings.connect_wait = 5s;
  amqp::AmqpPublisher publisher(publisher_settings);

  amqp::ConsumerSettings consumer_settings;
  consumer_settings.connection = connection(options, "cluster-failover-consumer");
  consumer_settings.topology = topology;
  consumer_settings.channel = "email";
  consumer_settings.prefetch = 64;
  consumer_settings.stop_timeout = 10s;
  amqp::Consumer consumer(consumer_settings, publisher,
                          [&ledger](amqp::Delivery delivery, amqp::Completion done) {
                            {
                              const std::lock_guard lock(ledger.mutex);
                              ++ledger.consumed[delivery.message_id];
                              ++ledger.deliveries;
                              if (delivery.redelivered) ++ledger.redelivered;
                              const auto now = SteadyClock::now();
                              if (ledger.loading) ledger.arrivals.mark(now);
                              if (ledger.loading && ledger.after_fault) {
                                ledger.arrivals_after_fault.mark(now);
                              }
                              if (ledger.watch_from && !ledger.first_delivery_after) {
                                ledger.first_delivery_after = now;
                              }
                            }
                            done(amqp::Outcome::ack());
                          });
  consumer.start();

  std::uint64_t sequence = 0;
  bool down_marked = false;
  auto publish_one = [&] {
    amqp::OutgoingMessage message;
    message.exchange = topology.names.direct_exchange();
    message.routing_key = "email";
    message.message_id = "failover-" + std::to_string(++sequence);
    message.correlation_id = message.message_id;
    message.body = R"({"notification_id":")" + message.message_id + R"("})";
    const std::string id = message.message_id;
    if (down_marked) {
      const std::lock_guard lock(ledger.mutex);
      ledger.published_after_down.insert(id);
    }
    publisher.async_publish(std::move(message),
                            [&ledger, id](std::error_code error, const std::string&) {
                              const std::lock_guard lock(ledger.mutex);
                              if (error) {
                                ++ledger.failed_by_reason[error.message()];
                                const auto at = SteadyClock::now();
                                if (!ledger.first_failure) ledger.first_failure = at;
                                ledger.last_failure = at;
                                return;
                              }
                              ledger.confirmed.insert(id);
                              const auto now = SteadyClock::now();
                              if (ledger.loading) ledger.confirms.mark(now);
                              if (ledger.loading && ledger.after_fault) {
                                ledger.confirms_after_fault.mark(now);
                              }
                              if (ledger.watch_from && !ledger.first_confirm_after)
                                ledger.first_confirm_after = now;
                            });
  };

  // Ready when one message went all the way round.
  const auto ready_deadline = SteadyClock::now() + 60s;
  bool ready = false;
  while (!ready && SteadyClock::now() < ready_deadline) {
    publish_one();
    std::this_thread::sleep_for(200ms);
    const std::lock_guard lock(ledger.mutex);
    ready = consumer.connected() && publisher.connected() > 0 && !ledger.consumed.empty();
  }
  if (!ready) {
    std::cerr << "failover_client: no message went round within 60 s\n";
    return 2;
  }
  std::cout << "ready" << std::endl;

  // Steady load, paced by an absolute schedule so a slow step does not lower the rate.
  const auto interval = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(1.0 / options.rate));
  auto next = SteadyClock::now();
  std::optional<SteadyClock::time_point> fault_at;
  // After the fault: when the first client connection was seen down, and when all were
  // up again (polled between publishes, so to within a few milliseconds).
  std::optional<SteadyClock::time_point> disconnected_at;
  std::optional<SteadyClock::time_point> reconnected_at;
  const std::size_t pool_size = publisher_settings.connections;
  const auto load_started = SteadyClock::now();
  {
    // The warm-up above sends one message per 200 ms: its pauses are not outages.
    const std::lock_guard lock(ledger.mutex);
    ledger.confirms = GapMeter{};
    ledger.arrivals = GapMeter{};
  }
  bool stop = false;
  while (!stop) {
    const auto now = SteadyClock::now();
    if (fault_at && !reconnected_at) {
      const bool all_up = consumer.connected() && publisher.connected() == pool_size;
      if (!all_up && !disconnected_at) disconnected_at = now;
      if (all_up && disconnected_at) {
        reconnected_at = now;
        const std::lock_guard lock(ledger.mutex);
        ledger.watch_from = now;
      }
    }
    if (now >= next) {
      publish_one();
      next += interval;
      // After a stall, catch up at most a second's worth, not all at once.
      next = std::max(next, now - std::chrono::seconds{1});
      continue;
    }
    const auto wait = std::min<SteadyClock::duration>(next - now, 50ms);
    const timespec timeout{
        0, static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count())};
    const int signal = sigtimedwait(&signals, nullptr, &timeout);
    if (signal == SIGUSR1) {
      fault_at = SteadyClock::now();
      {
        const std::lock_guard lock(ledger.mutex);
        ledger.after_fault = true;
        ledger.confirms_after_fault.mark(*fault_at);
        ledger.arrivals_after_fault.mark(*fault_at);
      }
      std::cout << "fault marked" << std::endl;
    } else if (signal == SIGUSR2) {
      down_marked = true;
      std::cout << "down marked" << std::endl;
    } else if (signal == SIGTERM || signal == SIGINT) {
      stop = true;
    }
  }
  const auto load_stopped = SteadyClock::now();
  {
    const std::lock_guard lock(ledger.mutex);
    ledger.loading = false;
  }

  // Drain: every publish resolved, then every confirmed id consumed, or the time is up.
  const bool flushed = publisher.flush(std::chrono::duration_cast<Millis>(options.drain));
  const auto drain_deadline = SteadyClock::now() + options.drain;
  while (SteadyClock::now() < drain_deadline) {
    {
      const std::lock_guard lock(ledger.mutex);
      if (ledger.unconsumed() == 0) break;
    }
    std::this_thread::sleep_for(100ms);
  }
  // A moment for stragglers (duplicates are counted, not required).
  std::this_thread::sleep_for(500ms);
  const bool consumer_connected = consumer.connected();
  const std::size_t publisher_connections = publisher.connected();
  consumer.stop();

  const std::lock_guard lock(ledger.mutex);
  const std::size_t lost = ledger.unconsumed();
  std::size_t duplicated = 0;
  for (const auto& [id, count] : ledger.consumed) duplicated += count > 1 ? 1 : 0;
  std::uint64_t failed = 0;
  for (const auto& [reason, count] : ledger.failed_by_reason)
    failed += static_cast<std::uint64_t>(count);

  nlohmann::json report;
  report["published"] = sequence;
  report["confirmed"] = ledger.confirmed.size();
  report["not_confirmed"] = failed;
  report["not_confirmed_by_reason"] = ledger.failed_by_reason;
  report["consumed_unique"] = ledger.consumed.size();
  report["deliveries"] = ledger.deliveries;
  report["redelivered"] = ledger.redelivered;
  std::size_t confirmed_after_down = 0;
  for (const auto& id : ledger.published_after_down) {
    confirmed_after_down += ledger.confirmed.count(id);
  }
  report["published_after_down"] = ledger.published_after_down.size();
  report["confirmed_after_down"] = confirmed_after_down;
  report["duplicated_ids"] = duplicated;
  report["lost"] = lost;
  report["flushed"] = flushed;
  report["load_seconds"] = static_cast<double>(ms(load_stopped - load_started)) / 1000.0;
  report["max_confirm_gap_ms"] = ms(ledger.confirms.max_gap());
  report["max_delivery_gap_ms"] = ms(ledger.arrivals.max_gap());
  report["consumer_connected"] = consumer_connected;
  // When the broker refused or lost publishes, relative to the fault mark.
  const auto since_fault = [&](const std::optional<SteadyClock::time_point>& at) {
    return at && fault_at ? nlohmann::json(ms(*at - *fault_at)) : nlohmann::json(nullptr);
  };
  report["first_not_confirmed_ms"] = since_fault(ledger.first_failure);
  report["last_not_confirmed_ms"] = since_fault(ledger.last_failure);
  report["load_stopped_ms"] = since_fault(load_stopped);
  report["publisher_connections"] = publisher_connections;
  // Recovery: from the first client connection seen down after the fault (or the fault
  // itself, when no client was on the stopped node) until every connection was back, a
  // confirm and a delivery had come through after that, and the longest pause in confirms
  // and in deliveries after the fault (a queue electing a new leader) had ended. A pause
  // under kOutagePause is ordinary jitter on a busy machine, not part of the outage.
  constexpr auto kOutagePause = 1s;
  report["clients_down_ms"] = nullptr;
  report["recovery_ms"] = nullptr;
  if (fault_at && (!disconnected_at || reconnected_at)) {
    const auto start = disconnected_at.value_or(*fault_at);
    auto end = start;
    if (reconnected_at) {
      report["clients_down_ms"] = ms(*reconnected_at - *disconnected_at);
      end = std::max(end, *reconnected_at);
    } else {
      report["clients_down_ms"] = 0;
    }
    for (const auto& first : {ledger.first_confirm_after, ledger.first_delivery_after}) {
      if (first) end = std::max(end, *first);
    }
    for (const auto* meter : {&ledger.confirms_after_fault, &ledger.arrivals_after_fault}) {
      if (meter->max_gap() >= kOutagePause && meter->gap_end()) {
        end = std::max(end, *meter->gap_end());
      }
    }
    const bool flowing = !reconnected_at || (ledger.first_confirm_after.has_value() &&
                                             ledger.first_delivery_after.has_value());
    if (flowing) report["recovery_ms"] = ms(end - start);
  }
  if (!options.report.empty()) {
    std::ofstream out(options.report);
    out << report.dump(2) << "\n";
  }
  std::cout << "summary published=" << sequence << " confirmed=" << ledger.confirmed.size()
            << " not_confirmed=" << failed << " consumed=" << ledger.consumed.size()
            << " deliveries=" << ledger.deliveries << " duplicated=" << duplicated
            << " lost=" << lost << " max_confirm_gap_ms=" << ms(ledger.confirms.max_gap())
            << " max_delivery_gap_ms=" << ms(ledger.arrivals.max_gap())
            << " recovery_ms=" << report["recovery_ms"].dump() << std::endl;
  if (lost != 0) {
    int shown = 0;
    for (const auto& id : ledger.confirmed) {
      if (ledger.consumed.count(id) != 0) continue;
      std::cout << "lost " << id << "\n";
      if (++shown == 20) break;
    }
  }
  return lost == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  notifs::messaging::common::LoggingSettings logging;
  logging.service = "failover_client";
  notifs::messaging::common::configure_logging(logging);
  Options options;
  try {
    options = parse(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "failover_client: " << error.what()
              << "\nusage: failover_client --urls LIST [--rate N] [--drain-seconds N] "
                 "[--report FILE]\n";
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& error) {
    std::cerr << "failover_client: " << error.what() << "\n";
    return 2;
  }
}
