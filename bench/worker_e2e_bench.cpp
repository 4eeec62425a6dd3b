// End to end for bench/worker.sh: POSTs N notifications to the gateway as fast as C
// keep-alive connections carry them (closed loop), records each one's send time and the
// notification_id of its 202, then waits until every accepted one has arrived in an
// smtp-sink dump folder, matched by its Message-ID (<notification_id@domain>). A
// message's receipt time is its dump file's mtime (the sink's last write, at the end of
// DATA; the file system stamps it with the coarse wall clock, so a few ms of grain).
//
//   worker_e2e_bench --url http://127.0.0.1:PORT/PATH --sink DIR [--count N]
//                    [--connections C] [--header "Name: value"]... [--body TEXT]
//                    [--users FILE] [--request-prefix TEXT] [--wait S]
//                    [--ids-out FILE] [--post-only]
//   worker_e2e_bench --ids-in FILE --sink DIR [--since NS] [--wait S]
//
// TEXT may hold {user_id} (line i % n of FILE) and {request_id} (PREFIX-i). --ids-out
// writes one "notification_id sent_ns answered_ns status" line per request; with
// --post-only nothing else happens. --ids-in skips the POSTs and waits for the
// notifications of such a file; --since NS (wall-clock nanoseconds, e.g. when the worker
// was started on a full queue) is then where the delivery rate counts from instead of
// the first POST. Prints the figures and one machine-readable "RESULT key=value ..."
// line. Exit status: 0 when every POST was accepted and every accepted notification
// arrived once, 1 otherwise, 2 on bad usage.
#include "detail/asio.hpp"

#include "bench_args.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace {

namespace bench = notifs::bench;

namespace asio = notifs::messaging::detail::asio;
namespace beast = notifs::messaging::detail::beast;
namespace bhttp = notifs::messaging::detail::bhttp;
namespace fs = std::filesystem;
using tcp = notifs::messaging::detail::tcp;

// Wall-clock nanoseconds: the sink's file times are wall-clock too.
using Nanos = std::int64_t;
Nanos wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Options {
  std::string host;
  std::string port;
  std::string target;
  std::size_t count = 10000;
  std::size_t connections = 64;
  double wait_s = 120;
  fs::path sink;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::vector<std::string> users;
  std::string request_prefix = "e2e";
  std::string ids_out;
  std::string ids_in;
  bool post_only = false;
  std::int64_t since = 0;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "worker_e2e_bench: " << problem
            << "\nusage: worker_e2e_bench --url http://HOST:PORT/PATH --sink DIR [--count N] "
               "[--connections C] [--header 'Name: value']... [--body TEXT] [--users FILE] "
               "[--request-prefix TEXT] [--wait S] [--ids-out FILE] [--post-only]\n"
               "       worker_e2e_bench --ids-in FILE --sink DIR [--since NS] [--wait S]\n";
  std::exit(2);
}

Options parse_or_throw(int argc, char** argv) {
  Options options;
  bool have_url = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--post-only") {
      options.post_only = true;
      continue;
    }
    if (i + 1 >= argc) usage(flag + " needs a value");
    const std::string value = argv[++i];
    if (flag == "--url") {
      auto url = bench::parse_http_url(value);
      options.host = std::move(url.host);
      options.port = std::move(url.port);
      options.target = std::move(url.target);
      have_url = true;
    } else if (flag == "--sink") {
      options.sink = value;
    } else if (flag == "--count") {
      options.count = static_cast<std::size_t>(bench::positive_number(flag, value));
    } else if (flag == "--connections") {
      options.connections = static_cast<std::size_t>(bench::positive_number(flag, value));
    } else if (flag == "--wait") {
      options.wait_s = bench::positive_number(flag, value);
    } else if (flag == "--header") {
      options.headers.push_back(bench::parse_header(value));
    } else if (flag == "--body") {
      options.body = value;
    } else if (flag == "--users") {
      options.users = bench::read_lines(value);
    } else if (flag == "--request-prefix") {
      options.request_prefix = value;
    } else if (flag == "--ids-out") {
      options.ids_out = value;
    } else if (flag == "--ids-in") {
      options.ids_in = value;
    } else if (flag == "--since") {
      options.since = static_cast<std::int64_t>(bench::positive_number(flag, value));
    } else {
      usage("unknown option " + flag);
    }
  }
  if (!have_url && options.ids_in.empty()) usage("--url or --ids-in is required");
  if (options.post_only && !options.ids_in.empty()) {
    usage("--post-only and --ids-in exclude each other");
  }
  if (!options.post_only) {
    if (options.sink.empty()) usage("--sink is required");
    if (!fs::is_directory(options.sink)) usage(options.sink.string() + " is not a folder");
  }
  if (options.body.find("{user_id}") != std::string::npos && options.users.empty()) {
    usage("the body uses {user_id}: pass --users FILE");
  }
  options.connections = std::min(options.connections, options.count);
  return options;
}

Options parse(int argc, char** argv) {
  try {
    return parse_or_throw(argc, argv);
  } catch (const bench::UsageError& error) {
    usage(error.what());
  }
}

// The "notification_id" string of the gateway's answer, without a JSON parser: the bench
// links only the messaging library, and the field's value is a UUID (no escapes).
std::string notification_id_of(const std::string& body) {
  const std::string key = "\"notification_id\"";
  auto at = body.find(key);
  if (at == std::string::npos) return {};
  at = body.find(':', at + key.size());
  if (at == std::string::npos) return {};
  const auto open = body.find('"', at + 1);
  if (open == std::string::npos) return {};
  const auto close = body.find('"', open + 1);
  if (close == std::string::npos) return {};
  return body.substr(open + 1, close - open - 1);
}

struct Post {
  Nanos sent = 0;      // just before the request was written
  Nanos answered = 0;  // when its answer had been read
  unsigned status = 0;
  std::string notification_id;
  Nanos received = 0;  // the sink file's mtime; 0 until it is seen
  fs::path file;
};

class Poster;

// One keep-alive connection carrying one request at a time.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(asio::io_context& io, Poster& poster) : stream_(io), poster_(poster) {}
  void connect(const tcp::resolver::results_type& endpoints);

 private:
  void send_next();
  void on_response(beast::error_code ec);
  void fail();

  beast::tcp_stream stream_;
  Poster& poster_;
  beast::flat_buffer buffer_;
  bhttp::request<bhttp::string_body> request_;
  bhttp::response<bhttp::string_body> response_;
  std::size_t index_ = 0;
};

class Poster {
 public:
  Poster(asio::io_context& io, const Options& options, std::vector<Post>& posts)
      : io_(io), options_(options), posts_(posts) {}

  void start() {
    tcp::resolver resolver(io_);
    endpoints_ = resolver.resolve(options_.host, options_.port);
    for (std::size_t i = 0; i < options_.connections; ++i) {
      std::make_shared<Connection>(io_, *this)->connect(endpoints_);
    }
  }

  // The next request to send, or nothing when all are out.
  std::optional<std::size_t> take() {
    if (next_ >= posts_.size()) return std::nullopt;
    return next_++;
  }
  std::string body_of(std::size_t index) const {
    return bench::fill_body(options_.body, options_.users, options_.request_prefix, index);
  }
  const Options& options() const { return options_; }
  const tcp::resolver::results_type& endpoints() const { return endpoints_; }
  Post& post(std::size_t index) { return posts_[index]; }

  // A request that got no answer is not sent again: it may have been accepted.
  void on_error(bool lost_request) {
    ++errors_;
    if (lost_request) ++lost_;
  }
  std::size_t errors() const { return errors_; }
  std::size_t lost() const { return lost_; }
  // A connection that cannot connect at all gives up after a few tries.
  bool may_retry_connect() { return ++connect_failures_ < 100; }

 private:
  asio::io_context& io_;
  const Options& options_;
  std::vector<Post>& posts_;
  tcp::resolver::results_type endpoints_;
  std::size_t next_ = 0;
  std::size_t errors_ = 0;
  std::size_t lost_ = 0;
  std::size_t connect_failures_ = 0;
};

void Connection::connect(const tcp::resolver::results_type& endpoints) {
  stream_.async_connect(endpoints, [self = shared_from_this()](beast::error_code ec,
                                                               const tcp::endpoint&) {
    if (ec) {
      self->poster_.on_error(false);
      if (self->poster_.may_retry_connect()) self->connect(self->poster_.endpoints());
      return;
    }
    self->stream_.socket().set_option(tcp::no_delay(true));
    self->send_next();
  });
}

void Connection::send_next() {
  const auto index = poster_.take();
  if (!index) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
    return;
  }
  index_ = *index;
  const auto& options = poster_.options();
  request_ = {};
  request_.method(bhttp::verb::post);
  request_.target(options.target);
  request_.version(11);
  request_.set(bhttp::field::host, options.host + ":" + options.port);
  for (const auto& [name, value] : options.headers) request_.set(name, value);
  request_.set(bhttp::field::content_type, "application/json");
  request_.body() = poster_.body_of(index_);
  request_.keep_alive(true);
  request_.prepare_payload();
  stream_.expires_after(std::chrono::seconds(30));
  poster_.post(index_).sent = wall_ns();
  bhttp::async_write(stream_, request_, [self = shared_from_this()](beast::error_code ec,
                                                                    std::size_t) {
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
  auto& post = poster_.post(index_);
  post.answered = wall_ns();
  post.status = response_.result_int();
  if (post.status == 202) post.notification_id = notification_id_of(response_.body());
  if (response_.keep_alive()) {
    send_next();
    return;
  }
  beast::error_code ignored;
  stream_.socket().close(ignored);
  buffer_.clear();
  connect(poster_.endpoints());
}

void Connection::fail() {
  beast::error_code ignored;
  stream_.socket().close(ignored);
  buffer_.clear();
  poster_.on_error(true);
  connect(poster_.endpoints());
}

Nanos mtime_ns(const fs::path& file) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return 0;
  return static_cast<Nanos>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

// The first 64 KiB of a file (the headers are near its top); empty when it cannot be read.
std::string read_head(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text(64 * 1024, '\0');
  std::size_t used = 0;
  while (used < text.size()) {
    const auto got = ::read(fd, text.data() + used, text.size() - used);
    if (got <= 0) break;
    used += static_cast<std::size_t>(got);
  }
  ::close(fd);
  text.resize(used);
  return text;
}

// Every Message-ID's local part in a dump file (one per file, unless the sink ever
// appends); a file being written may not show its headers yet.
std::vector<std::string> message_ids(const std::string& text) {
  std::vector<std::string> ids;
  const std::string key = "\nMessage-ID: <";
  for (auto at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    const auto start = at + key.size();
    const auto end = text.find_first_of("@>\r\n", start);
    if (end == std::string::npos || text[end] != '@') continue;
    ids.push_back(text.substr(start, end - start));
  }
  return ids;
}

struct Receipts {
  std::size_t matched = 0;
  std::size_t duplicates = 0;  // a Message-ID seen in a second file: a double send
  std::size_t foreign = 0;     // files with no Message-ID of ours
};

// Scans the sink until every accepted notification is there or the deadline passes.
Receipts collect(const Options& options, std::vector<Post>& posts, std::size_t accepted,
                 std::chrono::steady_clock::time_point deadline) {
  std::unordered_map<std::string, std::size_t> by_id;
  by_id.reserve(posts.size());
  for (std::size_t i = 0; i < posts.size(); ++i) {
    if (!posts[i].notification_id.empty()) by_id.emplace(posts[i].notification_id, i);
  }
  Receipts receipts;
  std::unordered_set<std::string> done;
  // Files without a Message-ID yet, with the time they were first seen so.
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> pending;
  while (true) {
    const auto matched_before = receipts.matched;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(options.sink, ec)) {
      const auto name = entry.path().filename().string();
      if (done.count(name) != 0) continue;
      const auto ids = message_ids(read_head(entry.path()));
      if (ids.empty()) {
        // Still being written, or not a message of ours: give it a few seconds.
        const auto now = std::chrono::steady_clock::now();
        const auto [it, added] = pending.emplace(name, now);
        if (now - it->second > std::chrono::seconds(5)) {
          ++receipts.foreign;
          done.insert(name);
          pending.erase(it);
        }
        continue;
      }
      pending.erase(name);
      done.insert(name);
      for (const auto& id : ids) {
        const auto found = by_id.find(id);
        if (found == by_id.end()) {
          ++receipts.foreign;
        } else if (!posts[found->second].file.empty()) {
          ++receipts.duplicates;
        } else {
          posts[found->second].file = entry.path();
          ++receipts.matched;
        }
      }
    }
    if (receipts.matched >= accepted || std::chrono::steady_clock::now() >= deadline) break;
    // Receipt times are the files' own, so polling less while nothing arrives (a message
    // waiting in a retry tier) costs no precision, only the CPU the services would miss.
    const bool arriving = receipts.matched > matched_before;
    std::this_thread::sleep_for(std::chrono::milliseconds(arriving ? 100 : 500));
  }
  // A file seen mid-write has a later mtime once its last bytes are in.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (auto& post : posts) {
    if (!post.file.empty()) post.received = mtime_ns(post.file);
  }
  return receipts;
}

double ms(Nanos nanos) { return static_cast<double>(nanos) / 1e6; }
double seconds(Nanos nanos) { return static_cast<double>(nanos) / 1e9; }

// Nearest-rank percentile of sorted values.
Nanos percentile(const std::vector<Nanos>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

void write_ids(const std::string& path, const std::vector<Post>& posts) {
  std::ofstream out(path);
  for (const auto& post : posts) {
    out << (post.notification_id.empty() ? "-" : post.notification_id) << ' ' << post.sent << ' '
        << post.answered << ' ' << post.status << '\n';
  }
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<Post> read_ids(const std::string& path) {
  std::ifstream in(path);
  if (!in) usage("cannot read " + path);
  std::vector<Post> posts;
  Post post;
  std::string id;
  while (in >> id >> post.sent >> post.answered >> post.status) {
    post.notification_id = id == "-" ? std::string() : id;
    posts.push_back(post);
  }
  if (posts.empty()) usage(path + " holds no requests");
  return posts;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  std::vector<Post> posts;
  std::size_t errors = 0;
  std::size_t lost = 0;
  try {
    if (!options.ids_in.empty()) {
      posts = read_ids(options.ids_in);
    } else {
      posts.resize(options.count);
      asio::io_context io(1);
      Poster poster(io, options, posts);
      poster.start();
      io.run();
      errors = poster.errors();
      lost = poster.lost();
    }
    if (!options.ids_out.empty()) write_ids(options.ids_out, posts);
  } catch (const std::exception& error) {
    std::cerr << "worker_e2e_bench: " << error.what() << "\n";
    return 1;
  }
  const double post_cpu = cpu_seconds();

  std::map<unsigned, std::size_t> statuses;
  std::size_t accepted = 0;
  std::size_t no_id = 0;
  Nanos first_post = 0;
  Nanos last_answer = 0;
  std::vector<Nanos> answer_latency;
  for (const auto& post : posts) {
    if (post.sent != 0 && (first_post == 0 || post.sent < first_post)) first_post = post.sent;
    if (post.answered == 0) continue;
    ++statuses[post.status];
    last_answer = std::max(last_answer, post.answered);
    answer_latency.push_back(post.answered - post.sent);
    if (post.status == 202) {
      if (post.notification_id.empty()) {
        ++no_id;
      } else {
        ++accepted;
      }
    }
  }
  std::sort(answer_latency.begin(), answer_latency.end());
  const double post_span = seconds(last_answer - first_post);
  const double post_rate = post_span > 0 ? static_cast<double>(accepted) / post_span : 0.0;
  std::string status_text;
  std::string status_fields;
  for (const auto& [status, n] : statuses) {
    status_text += " " + std::to_string(status) + "=" + std::to_string(n);
    status_fields += " status_" + std::to_string(status) + "=" + std::to_string(n);
  }
  std::printf("POST: %zu requests, answered in %.3f s: %.0f accepted/s; statuses:%s; errors %zu"
              " (%zu requests without an answer); 202 without a notification_id: %zu\n",
              posts.size(), post_span, post_rate,
              status_text.empty() ? " none" : status_text.c_str(),
              errors, lost, no_id);
  std::printf("POST answer latency (ms): p50 %.2f  p99 %.2f  max %.2f\n",
              ms(percentile(answer_latency, 0.5)), ms(percentile(answer_latency, 0.99)),
              ms(percentile(answer_latency, 1.0)));
  std::fflush(stdout);
  if (options.post_only) {
    std::printf("RESULT requests=%zu accepted=%zu errors=%zu post_s=%.3f post_rate=%.0f%s\n",
                posts.size(), accepted, errors, post_span, post_rate, status_fields.c_str());
    return accepted == posts.size() ? 0 : 1;
  }

  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(options.wait_s));
  const Receipts receipts = collect(options, posts, accepted, deadline);

  std::vector<Nanos> received;
  std::vector<Nanos> latency;
  std::vector<std::string> missing;
  for (const auto& post : posts) {
    if (post.notification_id.empty()) continue;
    if (post.received == 0) {
      if (missing.size() < 5) missing.push_back(post.notification_id);
      continue;
    }
    received.push_back(post.received);
    latency.push_back(post.received - post.sent);
  }
  std::sort(received.begin(), received.end());
  std::sort(latency.begin(), latency.end());
  const Nanos start = options.since != 0 ? options.since : first_post;
  const Nanos last_receipt = received.empty() ? start : received.back();
  const double span = seconds(last_receipt - start);
  const double rate = span > 0 ? static_cast<double>(received.size()) / span : 0.0;
  // The middle 80% of receipts: the steady rate, without the start and the tail.
  double middle_rate = 0;
  if (received.size() >= 10) {
    const auto low = received.size() / 10;
    const auto high = received.size() - 1 - received.size() / 10;
    const double middle_span = seconds(received[high] - received[low]);
    if (middle_span > 0) middle_rate = static_cast<double>(high - low) / middle_span;
  }
  const double drain = seconds(last_receipt - last_answer);
  const char* from = options.since != 0 ? "--since" : "the first POST";

  std::printf("sink: %zu of %zu accepted notifications received (%zu double sends, %zu other"
              " files) in %.3f s from %s; the last one %.3f s after the last POST's answer\n",
              received.size(), accepted, receipts.duplicates, receipts.foreign, span, from, drain);
  if (!missing.empty()) {
    std::printf("missing, e.g.:");
    for (const auto& id : missing) std::printf(" %s", id.c_str());
    std::printf("\n");
  }
  std::printf("delivered: %.0f emails/s from %s to the last receipt, %.0f emails/s over the"
              " middle 80%% of receipts\n",
              rate, from, middle_rate);
  std::printf("POST to receipt (ms): p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
              ms(percentile(latency, 0.5)), ms(percentile(latency, 0.9)),
              ms(percentile(latency, 0.99)), ms(percentile(latency, 1.0)));
  std::printf("this program's CPU: %.2f s posting, %.2f s scanning the sink\n", post_cpu,
              cpu_seconds() - post_cpu);
  std::printf("RESULT requests=%zu accepted=%zu received=%zu double_sends=%zu errors=%zu"
              " post_s=%.3f post_rate=%.0f span_s=%.3f rate=%.0f middle_rate=%.0f"
              " drain_s=%.3f p50_ms=%.1f p90_ms=%.1f p99_ms=%.1f max_ms=%.1f%s\n",
              posts.size(), accepted, received.size(), receipts.duplicates, errors, post_span,
              post_rate, span, rate, middle_rate, drain, ms(percentile(latency, 0.5)),
              ms(percentile(latency, 0.9)), ms(percentile(latency, 0.99)),
              ms(percentile(latency, 1.0)), status_fields.c_str());
  const bool complete = accepted == posts.size() && received.size() == accepted &&
                        receipts.duplicates == 0;
  return complete ? 0 : 1;
}
