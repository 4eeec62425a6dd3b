// Open-loop HTTP load at a fixed offered rate, for the latency half of bench/gateway.sh.
// wrk keeps a fixed number of requests in flight (closed loop): when the server stalls,
// wrk stops sending, and the requests it did not send never show up in its percentiles
// (coordinated omission). Here request i is due at start + i / rate whatever happened to
// the earlier ones; it goes out on the first idle keep-alive connection, and its latency
// is measured from when it was due, so time spent waiting for a connection counts.
//
//   http_rate_bench --url http://127.0.0.1:PORT/PATH --rate N --duration S
//                   [--connections K] [--header "Name: value"]... [--method POST]
//                   [--body TEXT] [--users FILE] [--request-prefix TEXT] [--drain S]
//
// TEXT may hold {user_id} (line i % n of FILE) and {request_id} (PREFIX-i); each request
// fills them in. Prints the figures and one machine-readable "RESULT key=value ..." line.
#include "detail/asio.hpp"

#include "bench_args.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

namespace bench = notifs::bench;

namespace asio = notifs::messaging::detail::asio;
namespace beast = notifs::messaging::detail::beast;
namespace bhttp = notifs::messaging::detail::bhttp;
using tcp = notifs::messaging::detail::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string host;
  std::string port;
  std::string target;
  bhttp::verb method = bhttp::verb::get;
  double rate = 0;
  double duration_s = 0;
  std::size_t connections = 32;
  double drain_s = 30;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::string> users;
  std::string request_prefix = "rate";
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "http_rate_bench: " << problem
            << "\nusage: http_rate_bench --url http://HOST:PORT/PATH --rate N --duration S "
               "[--connections K] [--header 'Name: value']... [--method GET|POST] "
               "[--body TEXT] [--users FILE] [--request-prefix TEXT] [--drain S]\n";
  std::exit(2);
}

Options parse_or_throw(int argc, char** argv) {
  Options options;
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--url") {
      auto url = bench::parse_http_url(value);
      options.host = std::move(url.host);
      options.port = std::move(url.port);
      options.target = std::move(url.target);
      have_url = true;
    } else if (flag == "--rate") {
      options.rate = bench::positive_number(flag, value);
    } else if (flag == "--duration") {
      options.duration_s = bench::positive_number(flag, value);
    } else if (flag == "--drain") {
      options.drain_s = bench::positive_number(flag, value);
    } else if (flag == "--connections") {
      options.connections = static_cast<std::size_t>(bench::positive_number(flag, value));
    } else if (flag == "--header") {
      options.headers.push_back(bench::parse_header(value));
    } else if (flag == "--method") {
      options.method = bhttp::string_to_verb(value);
      if (options.method == bhttp::verb::unknown) usage("unknown method " + value);
    } else if (flag == "--body") {
      options.body = value;
    } else if (flag == "--users") {
      options.users = bench::read_lines(value);
    } else if (flag == "--request-prefix") {
      options.request_prefix = value;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (!have_url) usage("--url is required");
  if (options.rate <= 0 || options.duration_s <= 0) usage("--rate and --duration are required");
  if (options.body.find("{user_id}") != std::string::npos && options.users.empty()) {
    usage("the body uses {user_id}: pass --users FILE");
  }
  return options;
}

Options parse(int argc, char** argv) {
  try {
    return parse_or_throw(argc, argv);
  } catch (const bench::UsageError& error) {
    usage(error.what());
  }
}

struct Results {
  std::vector<std::uint32_t> latency_us;  // from the due time
  std::vector<std::uint32_t> service_us;  // from the moment it was written
  std::map<unsigned, std::size_t> statuses;
  std::size_t errors = 0;  // connect, write or read failures
  Clock::duration max_send_lag{};  // how late the generator itself was
};

class Generator;

// One keep-alive connection carrying one request at a time.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, Generator& generator) : stream_(io), generator_(generator) {}

  void connect(const tcp::resolver::results_type& endpoints);
  void send(std::uint64_t index, Clock::time_point due);
  bool ready() const { return ready_; }

 private:
  void on_response(beast::error_code ec);
  void fail();

  beast::tcp_stream stream_;
  Generator& generator_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
  bhttp::response<bhttp::string_body> response_;
  Clock::time_point due_{};
  Clock::time_point sent_{};
  bool ready_ = false;
};

class Generator {
 public:
  Generator(asio::io_context& io, Options options)
      : io_(io), options_(std::move(options)), timer_(io),
        total_(static_cast<std::uint64_t>(std::llround(options_.rate * options_.duration_s))) {
    results_.latency_us.reserve(total_);
    results_.service_us.reserve(total_);
  }

  void start() {
    tcp::resolver resolver(io_);
    endpoints_ = resolver.resolve(options_.host, options_.port);
    for (std::size_t i = 0; i < options_.connections; ++i) {
      auto connection = std::make_shared<Connection>(io_, *this);
      connection->connect(endpoints_);
      all_.push_back(connection);
    }
    // Connecting is not part of the measurement: the schedule starts once all are up.
    connect_deadline_ = Clock::now() + std::chrono::seconds(10);
    wait_connected();
  }

  const Results& results() const { return results_; }
  std::uint64_t total() const { return total_; }
  std::uint64_t issued() const { return next_; }
  std::uint64_t unanswered() const { return in_flight_ + backlog_.size() + (total_ - next_); }
  double elapsed_s() const { return std::chrono::duration<double>(finished_ - start_).count(); }

  std::string fill_body(std::uint64_t index) const {
    return bench::fill_body(options_.body, options_.users, options_.request_prefix, index);
  }
  const Options& options() const { return options_; }

  void on_ready(const std::shared_ptr<Connection>& connection) {
    idle_.push_back(connection);
    dispatch();
  }

  void on_done(Clock::time_point due, Clock::time_point sent, unsigned status) {
    const auto now = Clock::now();
    --in_flight_;
    results_.latency_us.push_back(micros(now - due));
    results_.service_us.push_back(micros(now - sent));
    ++results_.statuses[status];
    maybe_finish();
  }

  void on_error(bool had_request) {
    ++results_.errors;
    if (had_request) --in_flight_;
    maybe_finish();
  }

  const tcp::resolver::results_type& endpoints() const { return endpoints_; }

 private:
  static std::uint32_t micros(Clock::duration d) {
    return static_cast<std::uint32_t>(
        std::min<long long>(std::chrono::duration_cast<std::chrono::microseconds>(d).count(),
                            UINT32_MAX));
  }

  void wait_connected() {
    std::size_t up = 0;
    for (const auto& c : all_) up += c->ready() ? 1 : 0;
    if (up == all_.size() || Clock::now() > connect_deadline_) {
      if (up == 0) throw std::runtime_error("no connection could be opened");
      start_ = Clock::now() + std::chrono::milliseconds(10);
      drain_deadline_ = start_ + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(options_.duration_s +
                                                                   options_.drain_s));
      tick();
      return;
    }
    timer_.expires_after(std::chrono::milliseconds(5));
    timer_.async_wait([this](beast::error_code ec) {
      if (!ec) wait_connected();
    });
  }

  void tick() {
    const auto now = Clock::now();
    while (next_ < total_ && due(next_) <= now) {
      results_.max_send_lag = std::max(results_.max_send_lag, now - due(next_));
      backlog_.emplace_back(next_, due(next_));
      ++next_;
    }
    dispatch();
    if (next_ < total_) {
      timer_.expires_at(due(next_));
    } else {
      // Everything is scheduled: wake now and then only to give up on stragglers.
      timer_.expires_after(std::chrono::milliseconds(100));
    }
    timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      if (next_ >= total_ && Clock::now() > drain_deadline_) {
        finish();
        return;
      }
      tick();
    });
  }

  Clock::time_point due(std::uint64_t index) const {
    return start_ + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(index) / options_.rate));
  }

  void dispatch() {
    while (!backlog_.empty() && !idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      const auto [index, when] = backlog_.front();
      backlog_.pop_front();
      ++in_flight_;
      connection->send(index, when);
    }
  }

  void maybe_finish() {
    if (next_ >= total_ && backlog_.empty() && in_flight_ == 0) finish();
  }

  void finish() {
    if (finished_ != Clock::time_point{}) return;
    finished_ = Clock::now();
    timer_.cancel();
    io_.stop();
  }

  asio::io_context& io_;
  Options options_;
  asio::steady_timer timer_;
  tcp::resolver::results_type endpoints_;
  std::vector<std::shared_ptr<Connection>> all_;
  std::vector<std::shared_ptr<Connection>> idle_;
  std::deque<std::pair<std::uint64_t, Clock::time_point>> backlog_;
  std::uint64_t total_;
  std::uint64_t next_ = 0;
  std::uint64_t in_flight_ = 0;
  Clock::time_point start_{};
  Clock::time_point connect_deadline_{};
  Clock::time_point drain_deadline_{};
  Clock::time_point finished_{};
  Results results_;
};

void Connection::connect(const tcp::resolver::results_type& endpoints) {
  ready_ = false;
  stream_.async_connect(endpoints, [self = shared_from_this()](beast::error_code ec,
                                                               const tcp::endpoint&) {
    if (ec) {
      self->generator_.on_error(false);
      return;
    }
    self->stream_.socket().set_option(tcp::no_delay(true));
    self->ready_ = true;
    self->generator_.on_ready(self);
  });
}

void Connection::send(std::uint64_t index, Clock::time_point due) {
  const auto& options = generator_.options();
  request_ = {};
  request_.method(options.method);
  request_.target(options.target);
  request_.version(11);
  request_.set(bhttp::field::host, options.host + ":" + options.port);
  for (const auto& [name, value] : options.headers) request_.set(name, value);
  if (!options.body.empty()) {
    request_.set(bhttp::field::content_type, "application/json");
    request_.body() = generator_.fill_body(index);
  }
  request_.keep_alive(true);
  request_.prepare_payload();
  due_ = due;
  sent_ = Clock::now();
  bhttp::async_write(stream_, request_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       if (ec) {
                         self->fail();
                         return;
                       }
                       self->response_ = {};
                       bhttp::async_read(self->stream_, self->buffer_, self->response_,
                                         [self](beast::error_code read_ec, std::size_t) {
                                           self->on_response(read_ec);
                                         });
                     });
}

void Connection::on_response(beast::error_code ec) {
  if (ec) {
    fail();
    return;
  }
  generator_.on_done(due_, sent_, response_.result_int());
  if (response_.keep_alive()) {
    generator_.on_ready(shared_from_this());
  } else {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    buffer_.clear();
    connect(generator_.endpoints());
  }
}

// The request is lost (counted as an error); the connection comes back fresh.
void Connection::fail() {
  beast::error_code ignored;
  stream_.socket().close(ignored);
  buffer_.clear();
  generator_.on_error(true);
  connect(generator_.endpoints());
}

double percentile_ms(std::vector<std::uint32_t>& sorted, double q) {
  if (sorted.empty()) return std::nan("");
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  const auto at = std::clamp<std::size_t>(rank, 1, sorted.size()) - 1;
  return static_cast<double>(sorted[at]) / 1000.0;
}

}  // namespace

int main(int argc, char** argv) {
  Options options = parse(argc, argv);
  try {
    asio::io_context io(1);
    Generator generator(io, options);
    generator.start();
    io.run();

    auto results = generator.results();
    std::sort(results.latency_us.begin(), results.latency_us.end());
    std::sort(results.service_us.begin(), results.service_us.end());
    const auto completed = results.latency_us.size();
    const double elapsed = generator.elapsed_s();
    std::printf("offered %.0f req/s for %.1f s over %zu connections: %llu due, %zu answered "
                "in %.1f s (%.0f req/s), %zu errors, %llu unanswered\n",
                options.rate, options.duration_s, options.connections,
                static_cast<unsigned long long>(generator.total()), completed, elapsed,
                static_cast<double>(completed) / elapsed, results.errors,
                static_cast<unsigned long long>(generator.unanswered()));
    auto& l = results.latency_us;
    auto& s = results.service_us;
    std::printf("latency from due time (ms): p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                percentile_ms(l, 0.5), percentile_ms(l, 0.9), percentile_ms(l, 0.99),
                percentile_ms(l, 0.999), percentile_ms(l, 1.0));
    std::printf("latency from write (ms):    p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                percentile_ms(s, 0.5), percentile_ms(s, 0.9), percentile_ms(s, 0.99),
                percentile_ms(s, 0.999), percentile_ms(s, 1.0));
    std::printf("generator's own worst lag behind schedule: %.2f ms\n",
                std::chrono::duration<double, std::milli>(results.max_send_lag).count());
    std::string statuses;
    for (const auto& [status, count] : results.statuses) {
      statuses += " status_" + std::to_string(status) + "=" + std::to_string(count);
    }
    std::printf("statuses:%s\n", statuses.empty() ? " none" : statuses.c_str());
    std::printf("RESULT offered_rps=%.0f completed=%zu errors=%zu unanswered=%llu p50_ms=%.3f "
                "p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f%s\n",
                options.rate, completed, results.errors,
                static_cast<unsigned long long>(generator.unanswered()), percentile_ms(l, 0.5),
                percentile_ms(l, 0.9), percentile_ms(l, 0.99), percentile_ms(l, 0.999),
                percentile_ms(l, 1.0), statuses.c_str());
    return 0;
  } catch (const std::exception& error) {
    std::cerr << "http_rate_bench: " << error.what() << "\n";
    return 1;
  }
}
