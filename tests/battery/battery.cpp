// The bad-input battery (issue 8, item 4): every endpoint of a running suite (started by
// tests/battery/run from sanitizer builds) gets malformed, hostile and oversized input, and
// every answer must be the contract's 4xx envelope: never a 5xx, never a hang. Then slow
// clients (they must be cut off without starving anyone), a CR/LF template variable sent
// through to the email worker (no injected mail header), and a flood of bad requests that
// must leave good requests' latency within 2x of what it was just before.
//
//   battery [--flood N] [--only cases|slow|mail|flood]...
//
// The suite's addresses and secrets come from the environment scripts/run writes
// (GATEWAY_URL, USER_SERVICE_URL, TEMPLATE_SERVICE_URL, EMAIL_WORKER_URL, PUSH_WORKER_URL,
// API_KEY, SERVICE_TOKEN, MAIL_DIR). The flood runs BATTERY_FLOOD_CONNECTIONS connections
// (default 6) paced at BATTERY_FLOOD_RATE bad requests a second (default 2000; 0: as fast
// as answered) in windows that alternate with quiet ones. Exit status 0 when every check
// passed.

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cases.hpp"
#include "raw_http.hpp"

namespace notifs::tests::battery {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// A sanitizer build answers slower than a release one: generous, but far below "a hang".
constexpr auto kAnswerTimeout = 15s;

std::string env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    throw std::runtime_error(std::string("environment variable ") + name + " is not set");
  }
  return value;
}

Endpoint endpoint_of(const char* variable) {
  const auto url = env(variable);
  auto endpoint = parse_base_url(url);
  if (!endpoint) throw std::runtime_error(std::string(variable) + " is not http://host:port: " + url);
  return *endpoint;
}

std::string random_uuid() {
  std::random_device device;
  std::mt19937_64 random(device());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 32; ++i) {
    if (i == 8 || i == 12 || i == 16 || i == 20) out += '-';
    out += kHex[random() & 0xF];
  }
  out[14] = '4';
  return out;
}

std::string printable(std::string_view text, std::size_t limit = 160) {
  std::string out;
  for (const char c : text.substr(0, limit)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte < 0x7f) {
      out += c;
    } else {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    }
  }
  if (text.size() > limit) out += "...";
  return out;
}

// --- one answer against the contract -----------------------------------------------------

std::optional<std::string> check_envelope(const RawResponse& response, const Expect& expect) {
  const auto content_type = response.header("Content-Type");
  if (!content_type || content_type->rfind("application/json", 0) != 0) {
    return "Content-Type is " + printable(content_type.value_or("missing"));
  }
  const auto body = json::parse(response.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) return "body is not a JSON object";
  for (const auto* key : {"success", "data", "error", "message", "meta"}) {
    if (!body.contains(key)) return std::string("envelope has no '") + key + "'";
  }
  if (!body["message"].is_string()) return "message is not a string";
  if (response.status >= 400) {
    if (body["success"] != false || !body["data"].is_null() || !body["meta"].is_null()) {
      return "failure envelope with success/data/meta wrong";
    }
    const auto& error = body["error"];
    if (!error.is_object() || !error.contains("code") || !error["code"].is_string() ||
        error["code"].get<std::string>().empty() || !error.contains("details") ||
        !error["details"].is_array()) {
      return "error is not {code, details}";
    }
    for (const auto& detail : error["details"]) {
      if (!detail.is_object() || !detail.contains("field") || !detail["field"].is_string() ||
          !detail.contains("problem") || !detail["problem"].is_string()) {
        return "a detail is not {field, problem}";
      }
    }
    if (!expect.code.empty() && error["code"] != expect.code) {
      return "error.code " + error["code"].get<std::string>() + ", expected " + expect.code;
    }
  } else if (body["success"] != true || !body["error"].is_null()) {
    return "success envelope with success/error wrong";
  }
  return std::nullopt;
}

// Why `exchange` breaks the contract for `expect`, or nullopt.
std::optional<std::string> check(const Exchange& exchange, const Expect& expect) {
  if (exchange.outcome != Outcome::response) {
    if (expect.closed_ok && exchange.outcome == Outcome::closed) return std::nullopt;
    return std::string(to_string(exchange.outcome)) +
           (exchange.error.empty() ? "" : " (" + printable(exchange.error, 80) + ")");
  }
  const auto& response = exchange.response;
  for (const auto& [name, value] : response.headers) {
    if (name.find("Injected") != std::string::npos || name.find("injected") != std::string::npos) {
      return "the answer carries an injected header: " + printable(name);
    }
    for (const char c : name + value) {
      const auto byte = static_cast<unsigned char>(c);
      if ((byte < 0x20 && c != '\t') || byte >= 0x7f) {
        return "header " + printable(name) + " has a non-printable byte: " + printable(value);
      }
    }
  }
  const auto id = response.header("X-Request-ID");
  if (!id || id->empty()) return "no X-Request-ID";
  if (!expect.request_id.empty() && *id != expect.request_id) {
    return "X-Request-ID " + printable(*id) + ", expected the caller's " + expect.request_id;
  }
  const int status = response.status;
  if (status >= 500) return "status " + std::to_string(status) + " (5xx)";
  const bool listed = std::find(expect.statuses.begin(), expect.statuses.end(), status) !=
                      expect.statuses.end();
  if (expect.success) {
    if (status < 200 || status > 299) return "status " + std::to_string(status) + ", expected 2xx";
  } else if (expect.statuses.empty() ? (status < 400 || status > 499) : !listed) {
    std::string wanted;
    for (const int s : expect.statuses) wanted += (wanted.empty() ? "" : "/") + std::to_string(s);
    return "status " + std::to_string(status) + ", expected " + (wanted.empty() ? "a 4xx" : wanted);
  }
  if (auto problem = check_envelope(response, expect)) {
    return *problem + " [status " + std::to_string(status) + "]";
  }
  return std::nullopt;
}

Exchange run_case(const Case& c) {
  if (!c.half_close) {
    return exchange_once(c.target->endpoint, c.request, kAnswerTimeout);
  }
  const auto deadline = Clock::now() + kAnswerTimeout;
  Exchange result;
  std::string error;
  auto connection = Connection::open(c.target->endpoint, 5s, error);
  if (!connection.is_open()) {
    result.outcome = Outcome::connect_failed;
    result.error = error;
    return result;
  }
  connection.send_all(c.request, deadline);
  connection.shutdown_write();
  return connection.read_response(deadline);
}

// --- a small JSON client for setup and good requests -------------------------------------

struct JsonAnswer {
  int status = 0;
  json body;
  std::string error;
};

JsonAnswer call(const Target& target, std::string_view method, std::string_view path,
                const std::string& body = {}, std::vector<std::pair<std::string, std::string>> extra = {}) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (!target.auth.empty()) headers.emplace_back("Authorization", target.auth);
  if (!body.empty()) headers.emplace_back("Content-Type", "application/json");
  for (auto& header : extra) headers.push_back(std::move(header));
  const auto exchange =
      exchange_once(target.endpoint, build_request(method, path, headers, body), kAnswerTimeout);
  JsonAnswer answer;
  if (exchange.outcome != Outcome::response) {
    answer.error = std::string(to_string(exchange.outcome)) + " " + exchange.error;
    return answer;
  }
  answer.status = exchange.response.status;
  answer.body = json::parse(exchange.response.body, nullptr, false);
  return answer;
}

JsonAnswer must(JsonAnswer answer, std::initializer_list<int> statuses, const std::string& what) {
  if (std::find(statuses.begin(), statuses.end(), answer.status) == statuses.end()) {
    throw std::runtime_error(what + " failed: status " + std::to_string(answer.status) + " " +
                             answer.error + " " + printable(answer.body.dump(), 300));
  }
  return answer;
}

// --- the summary -------------------------------------------------------------------------

struct Row {
  std::string endpoint;
  int cases = 0;
  int passed = 0;
};

class Summary {
 public:
  void record(const std::string& endpoint, bool passed) {
    auto it = std::find_if(rows_.begin(), rows_.end(),
                           [&](const Row& row) { return row.endpoint == endpoint; });
    if (it == rows_.end()) {
      rows_.push_back({endpoint, 0, 0});
      it = rows_.end() - 1;
    }
    ++it->cases;
    it->passed += passed ? 1 : 0;
  }
  bool all_passed() const {
    return std::all_of(rows_.begin(), rows_.end(), [](const Row& r) { return r.cases == r.passed; });
  }
  void print() const {
    std::size_t width = 8;
    for (const auto& row : rows_) width = std::max(width, row.endpoint.size());
    int cases = 0, passed = 0;
    std::printf("\n%-*s %7s %7s\n", static_cast<int>(width), "endpoint", "cases", "passed");
    for (const auto& row : rows_) {
      std::printf("%-*s %7d %7d%s\n", static_cast<int>(width), row.endpoint.c_str(), row.cases,
                  row.passed, row.cases == row.passed ? "" : "  <-- FAILED");
      cases += row.cases;
      passed += row.passed;
    }
    std::printf("%-*s %7d %7d\n", static_cast<int>(width), "total", cases, passed);
  }

 private:
  std::vector<Row> rows_;
};

void fail_line(const std::string& endpoint, const std::string& name, const std::string& why) {
  std::printf("FAIL  %s | %s: %s\n", endpoint.c_str(), printable(name).c_str(), why.c_str());
  std::fflush(stdout);
}

// --- the parts ---------------------------------------------------------------------------

void run_table(const Fixture& fixture, Summary& summary) {
  const auto cases = make_cases(fixture);
  std::printf("[battery] %zu cases\n", cases.size());
  std::fflush(stdout);
  const auto started = Clock::now();
  for (const auto& c : cases) {
    const auto exchange = run_case(c);
    const auto problem = check(exchange, c.expect);
    if (problem) fail_line(c.endpoint, c.name, *problem);
    summary.record(c.endpoint, !problem);
  }
  // Whatever was thrown at them, every process must still be alive and well.
  for (const Target* target : {&fixture.gateway, &fixture.users, &fixture.templates,
                               &fixture.email_worker, &fixture.push_worker}) {
    const auto answer = call(*target, "GET", "/health");
    const bool ok = answer.status == 200;
    if (!ok) fail_line(target->name + " GET /health", "alive after the cases", answer.error);
    summary.record(target->name + " GET /health (after)", ok);
  }
  std::printf("[battery] cases took %.1f s\n",
              std::chrono::duration<double>(Clock::now() - started).count());
}

// Slow clients: each sends a byte a second and never finishes its request (or sends
// nothing at all). The server must close each within its request timeout (10 s) plus a
// margin, and answer others promptly meanwhile.
void run_slow_clients(const Fixture& fixture, Summary& summary) {
  constexpr auto kCutOffBound = 25s;  // request_timeout 10 s, plus a loaded sanitizer build
  constexpr auto kGoodBound = 3s;     // a good request while they trickle
  constexpr int kPerKind = 6;
  struct Slow {
    const Target* target;
    std::string kind;
    Connection connection;
    std::string trickle;
    std::size_t sent = 0;
    Clock::time_point next_send;
    std::optional<Clock::time_point> closed_at;
    std::string received;
  };
  const std::vector<const Target*> targets = {&fixture.gateway, &fixture.users, &fixture.templates,
                                              &fixture.email_worker, &fixture.push_worker};
  std::vector<Slow> slow;
  const auto started = Clock::now();
  for (const Target* target : targets) {
    for (int i = 0; i < kPerKind; ++i) {
      for (const std::string kind : {"slow headers", "slow body", "silent"}) {
        std::string error;
        auto connection = Connection::open(target->endpoint, 5s, error);
        if (!connection.is_open()) {
          fail_line(target->name + " slow clients", kind, "connect failed: " + error);
          summary.record(target->name + " slow clients", false);
          continue;
        }
        std::string trickle;
        if (kind == "slow headers") {
          connection.send_all("GET /health HTTP/1.1\r\nHost: x\r\n", Clock::now() + 5s);
          trickle = "X-Slow: " + std::string(200, 'z');
        } else if (kind == "slow body") {
          connection.send_all(
              "POST /api/v1/nothing HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 500\r\n\r\n",
              Clock::now() + 5s);
          trickle = "{\"a\":\"" + std::string(400, 'z');
        }
        slow.push_back({target, kind, std::move(connection), trickle, 0, Clock::now(), {}, {}});
      }
    }
  }
  std::printf("[battery] %zu slow connections open\n", slow.size());
  std::fflush(stdout);

  // The good requests, from another thread, every 200 ms to each process.
  std::atomic<bool> done{false};
  std::mutex good_mutex;
  std::map<std::string, std::vector<double>> good_ms;
  std::map<std::string, int> good_failures;
  std::thread good([&] {
    while (!done.load()) {
      for (const Target* target : targets) {
        const auto exchange = exchange_once(
            target->endpoint, build_request("GET", "/health", {}), kGoodBound);
        std::lock_guard lock(good_mutex);
        if (exchange.outcome == Outcome::response && exchange.response.status == 200) {
          good_ms[target->name].push_back(std::chrono::duration<double, std::milli>(exchange.elapsed).count());
        } else {
          ++good_failures[target->name];
        }
      }
      std::this_thread::sleep_for(200ms);
    }
  });

  while (Clock::now() - started < kCutOffBound) {
    std::vector<pollfd> fds;
    std::vector<Slow*> owners;
    auto next_wake = Clock::now() + 1s;
    for (auto& s : slow) {
      if (s.closed_at) continue;
      fds.push_back({s.connection.fd(), POLLIN, 0});
      owners.push_back(&s);
      if (!s.trickle.empty()) next_wake = std::min(next_wake, s.next_send);
    }
    if (fds.empty()) break;
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_wake - Clock::now());
    ::poll(fds.data(), fds.size(), static_cast<int>(std::max<long long>(wait.count(), 0)));
    for (std::size_t i = 0; i < fds.size(); ++i) {
      Slow& s = *owners[i];
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (s.connection.wait_closed(Clock::now() + 50ms, s.received)) {
          s.closed_at = Clock::now();
          continue;
        }
      }
      if (!s.trickle.empty() && Clock::now() >= s.next_send && s.sent < s.trickle.size()) {
        if (!s.connection.send_all(std::string_view(s.trickle).substr(s.sent, 1), Clock::now() + 1s)) {
          s.closed_at = Clock::now();  // the server reset it: cut off
          continue;
        }
        ++s.sent;
        s.next_send = Clock::now() + 1s;
      }
    }
  }
  done = true;
  good.join();

  std::map<std::string, double> longest;
  for (auto& s : slow) {
    const std::string endpoint = s.target->name + " slow clients";
    std::optional<std::string> problem;
    if (!s.closed_at) {
      problem = "still open after " + std::to_string(kCutOffBound.count()) + " s";
    } else if (!s.received.empty() && s.received.rfind("HTTP/1.1 5", 0) == 0) {
      problem = "answered with a 5xx: " + printable(s.received, 60);
    }
    if (s.closed_at) {
      const double seconds = std::chrono::duration<double>(*s.closed_at - started).count();
      longest[s.target->name] = std::max(longest[s.target->name], seconds);
    }
    if (problem) fail_line(endpoint, s.kind, *problem);
    summary.record(endpoint, !problem);
  }
  for (const Target* target : targets) {
    auto& samples = good_ms[target->name];
    std::sort(samples.begin(), samples.end());
    const int failures = good_failures[target->name];
    const double worst = samples.empty() ? 0 : samples.back();
    std::printf("[battery] %s: slow clients cut off after at most %.1f s; %zu good requests "
                "meanwhile, slowest %.1f ms, %d failed\n",
                target->name.c_str(), longest[target->name], samples.size(), worst, failures);
    const bool ok = failures == 0 && !samples.empty();
    if (!ok) fail_line(target->name + " slow clients", "good requests meanwhile",
                       std::to_string(failures) + " failed or slower than 3 s");
    summary.record(target->name + " slow clients", ok);
  }
}

// Waits until the notification's status is one of `final_states`; returns the status.
std::string wait_status(const Fixture& fixture, const std::string& id, std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  std::string status;
  while (Clock::now() < deadline) {
    const auto answer = call(fixture.gateway, "GET", "/api/v1/notifications/" + id);
    if (answer.status == 200 && answer.body.is_object()) {
      status = answer.body["data"].value("status", "");
      if (status == "delivered" || status == "failed" || status == "skipped") return status;
    }
    std::this_thread::sleep_for(300ms);
  }
  return status.empty() ? "unknown" : status;
}

std::string send_notification(const Fixture& fixture, const std::string& name,
                              const std::string& request_id) {
  const json body = {{"notification_type", "email"},
                     {"user_id", fixture.user_id},
                     {"template_code", fixture.template_code},
                     {"variables", {{"name", name}}},
                     {"request_id", request_id}};
  auto answer = must(call(fixture.gateway, "POST", "/api/v1/notifications", body.dump()), {202},
                     "POST /api/v1/notifications (" + request_id + ")");
  return answer.body["data"]["notification_id"].get<std::string>();
}

// The header block of every mail file: no line may start with the injected header's name.
std::vector<std::string> injected_mail(const std::string& mail_dir, const std::string& marker,
                                       std::size_t& files) {
  std::vector<std::string> found;
  files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(mail_dir)) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) break;  // end of the header block
      if (line.rfind(marker, 0) == 0) found.push_back(entry.path().string());
    }
  }
  return found;
}

// A CR/LF template variable sent through to the email worker: the subject "Hello {{name}}"
// would carry it into a header. The mail must not arrive with the injected header (the
// worker refuses such a subject: the notification ends failed); a control notification
// proves the path delivers at all.
std::string run_mail_injection(const Fixture& fixture, Summary& summary) {
  const std::string endpoint = "email worker: CR/LF variable into SMTP headers";
  const std::string marker = "X-Battery-Injected";
  const auto control = send_notification(fixture, "Ada", "battery-control-" + fixture.run_tag);
  const auto injected = send_notification(fixture, "Ada\r\n" + marker + ": yes\r\nBcc: victim@example.com",
                                          "battery-inject-crlf-" + fixture.run_tag);
  const auto injected_lf = send_notification(fixture, "Ada\n" + marker + ": yes",
                                             "battery-inject-lf-" + fixture.run_tag);
  const auto control_status = wait_status(fixture, control, 60s);
  const auto injected_status = wait_status(fixture, injected, 60s);
  const auto injected_lf_status = wait_status(fixture, injected_lf, 60s);
  std::printf("[battery] mail: control %s, CR LF variable %s, LF variable %s\n",
              control_status.c_str(), injected_status.c_str(), injected_lf_status.c_str());
  const bool control_ok = control_status == "delivered";
  if (!control_ok) fail_line(endpoint, "control notification", "ended " + control_status);
  summary.record(endpoint, control_ok);
  for (const auto& [label, status] : {std::pair{"CR LF", injected_status}, {"LF", injected_lf_status}}) {
    const bool ok = status == "failed" || status == "delivered";
    if (!ok) fail_line(endpoint, std::string(label) + " variable", "did not end (" + status + ")");
    summary.record(endpoint, ok);
  }
  std::size_t files = 0;
  const auto hits = injected_mail(env("MAIL_DIR"), marker, files);
  for (const auto& file : hits) fail_line(endpoint, "mail file", "injected header in " + file);
  const bool clean = hits.empty() && files > 0;
  if (files == 0) fail_line(endpoint, "mail files", "no mail arrived at all");
  std::printf("[battery] mail: %zu files in MAIL_DIR, %zu with an injected header\n", files, hits.size());
  summary.record(endpoint, clean);
  return control;
}

// --- the flood ---------------------------------------------------------------------------

double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto index = static_cast<std::size_t>(p * static_cast<double>(samples.size() - 1));
  return samples[index];
}

struct FloodResult {
  double quiet_p50 = 0, quiet_p90 = 0, flood_p50 = 0, flood_p90 = 0;
  std::size_t quiet_n = 0, flood_n = 0;
  long bad_sent = 0, bad_wrong = 0, good_failed = 0;
  double seconds = 0;
};

struct FloodSettings {
  long total = 10000;     // bad requests
  int connections = 6;    // each a thread of its own
  double rate = 2000;     // bad requests per second while flooding; 0: as fast as answered
  std::chrono::milliseconds window{500};
};

// Good requests (GET of a real notification, one after another on one keep-alive
// connection) run all along, while the flood is switched on and off in alternate windows:
// "before" is every quiet window, "during" every flood window. Interleaving them cancels
// the slow drift of a shared machine's load, which a single before/after pair cannot.
FloodResult flood_once(const Fixture& fixture, const std::string& good_id,
                       const FloodSettings& settings) {
  const Target& gateway = fixture.gateway;
  const std::string auth = gateway.auth;
  using H = std::vector<std::pair<std::string, std::string>>;
  const H json_auth = {{"Authorization", auth}, {"Content-Type", "application/json"}};
  // Each is answered with a 4xx on a connection that stays open, but the last, after
  // which the server closes it (and the thread opens another).
  const std::vector<std::string> bad = {
      build_request("POST", "/api/v1/notifications", json_auth, "{"),
      build_request("POST", "/api/v1/notifications", json_auth, "{\"notification_type\":\"sms\"}"),
      build_request("POST", "/api/v1/notifications", {{"Content-Type", "application/json"}}, "{}"),
      build_request("GET", "/api/v1/notifications/not-a-uuid", {{"Authorization", auth}}),
      build_request("GET", "/api/v1/notifications?page=0", {{"Authorization", auth}}),
      build_request("GET", "/api/v1/no-such-thing", {}),
      build_request("POST", "/api/v1/notifications",
                    {{"Authorization", auth}, {"Content-Type", "text/plain"}}, "x"),
      build_request("POST", "/api/v1/notifications", json_auth, std::string(20000, '[')),
      "BROKEN REQUEST\r\n\r\n",
  };
  const std::string good =
      build_request("GET", "/api/v1/notifications/" + good_id, {{"Authorization", auth}});

  std::atomic<bool> flooding{false};
  std::atomic<bool> finished{false};
  std::atomic<long> toggled_at_us{0};  // since `started`, when `flooding` last changed
  std::atomic<long> next{0};
  std::atomic<long> wrong{0};
  std::mutex print_mutex;
  const auto started = Clock::now();
  auto now_us = [&] {
    return static_cast<long>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count());
  };

  std::vector<double> quiet, flood;
  long good_failed = 0;
  std::thread measurer([&] {
    std::string error;
    Connection connection;
    std::size_t warm_up = 50;  // caches, connection pools, the allocator
    // Answers still queued from the last window are not the next window's.
    const long settle_us = 50000;
    while (!finished.load()) {
      if (!connection.is_open()) connection = Connection::open(gateway.endpoint, 5s, error);
      const bool state = flooding.load();
      const long began = now_us();
      const auto deadline = Clock::now() + kAnswerTimeout;
      Exchange exchange;
      if (connection.is_open() && connection.send_all(good, deadline)) {
        exchange = connection.read_response(deadline);
      }
      const double ms = static_cast<double>(now_us() - began) / 1000.0;
      if (exchange.outcome != Outcome::response || exchange.response.status != 200) {
        ++good_failed;
        connection.close();
        continue;
      }
      if (warm_up > 0) {
        --warm_up;
        continue;
      }
      const bool clean = flooding.load() == state && toggled_at_us.load() + settle_us <= began;
      if (clean) (state ? flood : quiet).push_back(ms);
    }
  });

  std::vector<std::thread> threads;
  for (int t = 0; t < settings.connections; ++t) {
    threads.emplace_back([&, t] {
      Connection connection;
      std::string error;
      const auto interval = std::chrono::duration<double>(
          settings.rate > 0 ? settings.connections / settings.rate : 0.0);
      auto due = Clock::now();
      while (!finished.load()) {
        if (!flooding.load()) {
          std::this_thread::sleep_for(1ms);
          due = Clock::now();
          continue;
        }
        const long i = next.fetch_add(1);
        if (i >= settings.total) break;
        // Paced: each thread's share of the rate, whatever the answers' speed.
        std::this_thread::sleep_until(due);
        due += std::chrono::duration_cast<Clock::duration>(interval);
        const auto& request = bad[static_cast<std::size_t>(i + t) % bad.size()];
        if (!connection.is_open()) connection = Connection::open(gateway.endpoint, 5s, error);
        const auto deadline = Clock::now() + kAnswerTimeout;
        Exchange exchange;
        if (connection.is_open()) {
          connection.send_all(request, deadline);
          exchange = connection.read_response(deadline);
        }
        const bool ok = exchange.outcome == Outcome::response &&
                        exchange.response.status >= 400 && exchange.response.status < 500;
        if (!ok && wrong.fetch_add(1) < 5) {
          std::lock_guard lock(print_mutex);
          std::printf("FAIL  gateway flood | bad request %ld: %s\n", i,
                      exchange.outcome == Outcome::response
                          ? ("status " + std::to_string(exchange.response.status)).c_str()
                          : std::string(to_string(exchange.outcome)).c_str());
        }
        const auto connection_header = exchange.response.header("Connection");
        if (!ok || (connection_header && *connection_header == "close")) connection.close();
      }
    });
  }

  // The switch: quiet, flood, quiet, ... until every bad request went, then one more
  // quiet window so that the last flood window has a quiet neighbour on each side.
  std::this_thread::sleep_for(1s);  // the warm-up
  while (next.load() < settings.total) {
    std::this_thread::sleep_for(settings.window);
    toggled_at_us = now_us();
    flooding = !flooding.load();
  }
  flooding = false;
  toggled_at_us = now_us();
  std::this_thread::sleep_for(settings.window);
  finished = true;
  for (auto& thread : threads) thread.join();
  measurer.join();

  FloodResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  result.quiet_p50 = percentile(quiet, 0.5);
  result.quiet_p90 = percentile(quiet, 0.9);
  result.flood_p50 = percentile(flood, 0.5);
  result.flood_p90 = percentile(flood, 0.9);
  result.quiet_n = quiet.size();
  result.flood_n = flood.size();
  result.bad_sent = std::min(next.load(), settings.total);
  result.bad_wrong = wrong.load();
  result.good_failed = good_failed;
  return result;
}

double env_number(const char* name, double fallback) {
  const char* value = std::getenv(name);
  return value == nullptr || *value == '\0' ? fallback : std::atof(value);
}

void run_flood(const Fixture& fixture, const std::string& good_id, long total, Summary& summary) {
  const std::string endpoint = "gateway flood of bad requests";
  FloodSettings settings;
  settings.total = total;
  settings.connections = static_cast<int>(env_number("BATTERY_FLOOD_CONNECTIONS", 6));
  settings.rate = env_number("BATTERY_FLOOD_RATE", 2000);
  constexpr double kFactor = 2.0;
  for (int attempt = 1; attempt <= 2; ++attempt) {
    const auto r = flood_once(fixture, good_id, settings);
    std::printf("[battery] flood attempt %d: %ld bad requests on %d connections (paced at %.0f/s "
                "in alternate %lld ms windows, %.1f s in all), %ld not answered with a 4xx\n",
                attempt, r.bad_sent, settings.connections, settings.rate,
                static_cast<long long>(settings.window.count()), r.seconds, r.bad_wrong);
    std::printf("[battery] good GET latency without the flood: p50 %.2f ms, p90 %.2f ms (%zu "
                "requests); during it: p50 %.2f ms, p90 %.2f ms (%zu requests); %ld failed\n",
                r.quiet_p50, r.quiet_p90, r.quiet_n, r.flood_p50, r.flood_p90, r.flood_n,
                r.good_failed);
    // Correctness is exact and not retried: every bad request gets its 4xx, every good one
    // its 200.
    if (r.bad_wrong != 0 || r.good_failed != 0 || r.bad_sent != total) {
      fail_line(endpoint, "answers",
                std::to_string(r.bad_wrong) + " bad requests without a 4xx, " +
                    std::to_string(r.good_failed) + " good requests failed");
      summary.record(endpoint, false);
      return;
    }
    // Timing is noisy on a shared machine: a robust statistic, and one retry.
    const bool enough = r.quiet_n >= 100 && r.flood_n >= 100;
    const double ratio = r.quiet_p50 > 0 ? r.flood_p50 / r.quiet_p50 : 0;
    std::printf("[battery] flood attempt %d: good p50 during / without = %.2f (bound %.1f)%s\n",
                attempt, ratio, kFactor, enough ? "" : "; too few good requests");
    if (enough && ratio <= kFactor) {
      summary.record(endpoint, true);
      return;
    }
  }
  fail_line(endpoint, "latency", "good requests' p50 during the flood above 2x, twice");
  summary.record(endpoint, false);
}

// --- setup -------------------------------------------------------------------------------

Fixture make_fixture() {
  Fixture f;
  f.api_key = env("API_KEY");
  const std::string service = "Bearer " + env("SERVICE_TOKEN");
  f.gateway = {"gateway", endpoint_of("GATEWAY_URL"), "Bearer " + f.api_key};
  f.users = {"user_service", endpoint_of("USER_SERVICE_URL"), service};
  f.templates = {"template_service", endpoint_of("TEMPLATE_SERVICE_URL"), service};
  f.email_worker = {"email_worker", endpoint_of("EMAIL_WORKER_URL"), ""};
  f.push_worker = {"push_worker", endpoint_of("PUSH_WORKER_URL"), ""};
  f.run_tag = std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count());
  f.unknown_uuid = random_uuid();

  const json user = {{"name", "Battery Recipient"},
                     {"email", "battery-" + f.run_tag + "@example.com"},
                     {"preferences", {{"email", true}, {"push", false}}}};
  f.user_id = must(call(f.users, "POST", "/api/v1/users", user.dump()), {201}, "creating the user")
                  .body["data"]["id"]
                  .get<std::string>();
  f.template_code = "battery_mail_" + f.run_tag;
  const json mail = {{"code", f.template_code},
                     {"channel", "email"},
                     {"locale", "en"},
                     {"subject", "Hello {{name}}"},
                     {"body", "A message from the bad-input battery."}};
  must(call(f.templates, "POST", "/api/v1/templates", mail.dump()), {201}, "creating the template");
  f.bomb_code = "battery_bomb_" + f.run_tag;
  const json bomb = {{"code", f.bomb_code},
                     {"channel", "email"},
                     {"locale", "en"},
                     {"subject", "Bomb"},
                     {"body", "{{#l}}{{#l}}{{#l}}{{#l}}{{x}}{{/l}}{{/l}}{{/l}}{{/l}}"}};
  must(call(f.templates, "POST", "/api/v1/templates", bomb.dump()), {201}, "creating the bomb template");
  return f;
}

int run(int argc, char** argv) {
  long flood = 10000;
  std::set<std::string> only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--flood" && i + 1 < argc) {
      flood = std::stol(argv[++i]);
    } else if (arg == "--only" && i + 1 < argc) {
      only.insert(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: battery [--flood N] [--only cases|slow|mail|flood]...\n");
      return 2;
    }
  }
  auto wanted = [&](const char* part) { return only.empty() || only.count(part) > 0; };
  const auto fixture = make_fixture();
  Summary summary;
  if (wanted("cases")) run_table(fixture, summary);
  std::string good_id;
  if (wanted("mail") || wanted("flood")) good_id = run_mail_injection(fixture, summary);
  if (wanted("slow")) run_slow_clients(fixture, summary);
  if (wanted("flood") && flood > 0) run_flood(fixture, good_id, flood, summary);
  summary.print();
  const bool passed = summary.all_passed();
  std::printf("[battery] %s\n", passed ? "PASSED" : "FAILED");
  return passed ? 0 : 1;
}

}  // namespace
}  // namespace notifs::tests::battery

int main(int argc, char** argv) {
  try {
    return notifs::tests::battery::run(argc, argv);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "battery: %s\n", error.what());
    return 1;
  }
}
