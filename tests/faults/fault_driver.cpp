// fault_driver: the steady load and the ledger check of tests/faults/run (issue 8).
//
//   fault_driver load --gateway URL --api-key KEY --users FILE --tag TAG --out FILE
//                     [--rate PER_SECOND] [--poison-every N] [--connections C]
//     POSTs email notifications to the gateway at PER_SECOND (open loop: a slot missed by
//     more than a second is skipped, not made up in a burst) until SIGTERM or SIGINT,
//     round-robin over the user ids of FILE. Every Nth one leaves out the template variable
//     `link`: template_service answers 422 missing_variables and the worker fails it
//     permanently, so `failed` is exercised too. On stop, writes one line per POST to FILE.
//
//   fault_driver check --gateway URL --api-key KEY --users FILE --loads DIR --tag TAG
//                      --mail DIR --ledger-db URL --amqp URL --fault-end NS --timeout S
//                      --row FILE [--note TEXT]
//     Waits up to S seconds for quiescence (queues empty, no notification queued,
//     processing or retrying, every delivered one in the mail folder, every failed one in
//     failed.queue), then checks every POST of every DIR/*.tsv (earlier faults included)
//     and appends fault TAG's row to FILE. Exit status 1 when anything is lost, stuck,
//     missing from failed.queue or sent twice after its send was recorded.
//
//   fault_driver queues --amqp URL QUEUE...
//     Ready messages of each queue, one "QUEUE COUNT" line each.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "broker_probe.hpp"
#include "http_session.hpp"

namespace {

namespace faults = notifs::faults;
namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Set by SIGTERM/SIGINT: the load's threads finish the POST they are in and stop.
volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

std::int64_t wall_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// --- arguments ---------------------------------------------------------------------------

class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i < argc; ++i) {
      std::string flag = argv[i];
      if (flag.rfind("--", 0) != 0) {
        positional_.push_back(flag);
        continue;
      }
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      values_[flag.substr(2)] = argv[++i];
    }
  }
  std::string text(const std::string& name) const {
    const auto it = values_.find(name);
    if (it == values_.end()) throw std::invalid_argument("--" + name + " is required");
    return it->second;
  }
  std::string text(const std::string& name, const std::string& fallback) const {
    const auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  double number(const std::string& name, double fallback) const {
    const auto it = values_.find(name);
    if (it == values_.end()) return fallback;
    std::size_t used = 0;
    const double value = std::stod(it->second, &used);
    if (used != it->second.size() || value <= 0) {
      throw std::invalid_argument("--" + name + " must be a positive number");
    }
    return value;
  }
  std::int64_t integer(const std::string& name) const {
    const std::string value = text(name);
    std::size_t used = 0;
    const long long parsed = std::stoll(value, &used);
    if (used != value.size()) throw std::invalid_argument("--" + name + " must be an integer");
    return parsed;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  if (lines.empty()) throw std::runtime_error(path + " is empty");
  return lines;
}

// --- the load ----------------------------------------------------------------------------

// One POST and its answer; a line of the load's output file.
struct Post {
  std::string tag;
  std::uint64_t index = 0;
  std::string request_id;
  std::string user_id;
  bool poison = false;
  std::int64_t sent_ns = 0;
  std::int64_t answered_ns = 0;
  long status = 0;  // 0: no answer
  std::string notification_id;
  std::string error;  // a short reason for anything but 202
};

std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return text.substr(0, 200);
}

void write_posts(const std::string& path, const std::vector<Post>& posts) {
  std::ofstream out(path, std::ios::trunc);
  for (const auto& p : posts) {
    out << p.tag << '\t' << p.index << '\t' << p.request_id << '\t' << p.user_id << '\t'
        << (p.poison ? 1 : 0) << '\t' << p.sent_ns << '\t' << p.answered_ns << '\t' << p.status
        << '\t' << (p.notification_id.empty() ? "-" : p.notification_id) << '\t'
        << (p.error.empty() ? "-" : one_line(p.error)) << '\n';
  }
  if (!out.flush()) throw std::runtime_error("cannot write " + path);
}

std::vector<Post> read_posts(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::vector<Post> posts;
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> cells;
    std::stringstream split(line);
    for (std::string cell; std::getline(split, cell, '\t');) cells.push_back(cell);
    if (cells.size() != 10) throw std::runtime_error(path.string() + ": malformed line: " + line);
    Post p;
    p.tag = cells[0];
    p.index = std::stoull(cells[1]);
    p.request_id = cells[2];
    p.user_id = cells[3];
    p.poison = cells[4] == "1";
    p.sent_ns = std::stoll(cells[5]);
    p.answered_ns = std::stoll(cells[6]);
    p.status = std::stol(cells[7]);
    p.notification_id = cells[8] == "-" ? "" : cells[8];
    p.error = cells[9] == "-" ? "" : cells[9];
    posts.push_back(std::move(p));
  }
  return posts;
}

std::string error_of(const faults::HttpReply& reply) {
  if (reply.status == 0) return reply.error;
  try {
    const auto body = json::parse(reply.body);
    if (body.contains("error") && body["error"].is_object()) {
      return body["error"].value("code", std::string("?"));
    }
  } catch (const json::exception&) {
  }
  return reply.body.substr(0, 80);
}

int run_load(const Args& args) {
  const std::string url = args.text("gateway") + "/api/v1/notifications";
  const std::string api_key = args.text("api-key");
  const auto users = read_lines(args.text("users"));
  const std::string tag = args.text("tag");
  const std::string out = args.text("out");
  const double rate = args.number("rate", 60);
  const auto poison_every = static_cast<std::uint64_t>(args.number("poison-every", 10));
  const auto connections = static_cast<std::size_t>(args.number("connections", 32));

  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);

  std::mutex mutex;
  std::vector<Post> posts;
  std::atomic<std::uint64_t> next_slot{0};
  std::atomic<std::uint64_t> skipped{0};
  const auto start = Clock::now();
  const std::chrono::duration<double> interval(1.0 / rate);

  auto poster = [&] {
    faults::HttpSession session(api_key, 15s);
    std::vector<Post> mine;
    while (g_stop == 0) {
      const std::uint64_t slot = next_slot.fetch_add(1);
      const auto due =
          start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(slot));
      auto now = Clock::now();
      // Slots missed while every connection waited on a slow gateway (an outage) are
      // dropped: a catch-up burst afterwards would measure the burst, not the recovery.
      if (now - due > 1s) {
        skipped.fetch_add(1);
        continue;
      }
      while (now < due && g_stop == 0) {
        std::this_thread::sleep_for(std::min<Clock::duration>(due - now, 50ms));
        now = Clock::now();
      }
      if (g_stop != 0) break;

      Post post;
      post.tag = tag;
      post.index = slot;
      post.request_id = "faults-" + tag + "-" + std::to_string(slot);
      post.user_id = users[slot % users.size()];
      post.poison = slot % poison_every == poison_every - 1;
      json variables = {{"name", "Fault " + std::to_string(slot)}};
      if (!post.poison) variables["link"] = "https://example.com/faults/" + post.request_id;
      const json body = {{"notification_type", "email"},
                         {"user_id", post.user_id},
                         {"template_code", "welcome_email"},
                         {"variables", variables},
                         {"request_id", post.request_id},
                         {"metadata", {{"fault", tag}}}};
      post.sent_ns = wall_ns();
      const auto reply = session.post_json(url, body.dump());
      post.answered_ns = wall_ns();
      post.status = reply.status;
      if (reply.status == 202) {
        try {
          post.notification_id = json::parse(reply.body).at("data").at("notification_id");
        } catch (const json::exception& e) {
          post.error = std::string("202 without a notification_id: ") + e.what();
        }
      } else {
        post.error = error_of(reply);
      }
      mine.push_back(std::move(post));
    }
    const std::lock_guard lock(mutex);
    posts.insert(posts.end(), std::make_move_iterator(mine.begin()),
                 std::make_move_iterator(mine.end()));
  };

  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < connections; ++i) threads.emplace_back(poster);
  for (auto& thread : threads) thread.join();

  std::sort(posts.begin(), posts.end(),
            [](const Post& a, const Post& b) { return a.index < b.index; });
  write_posts(out, posts);
  std::map<std::string, std::size_t> outcomes;
  for (const auto& p : posts) {
    ++outcomes[p.status == 0 ? "no answer" : std::to_string(p.status) +
                                                 (p.error.empty() ? "" : " " + p.error)];
  }
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  std::cout << "[load] " << tag << ": " << posts.size() << " POSTs in " << std::fixed
            << std::setprecision(1) << took << " s (" << skipped.load()
            << " slots skipped while the gateway was slow):";
  for (const auto& [what, count] : outcomes) std::cout << " " << count << "x " << what << ";";
  std::cout << std::endl;
  return 0;
}

// --- what the check reads ----------------------------------------------------------------

// The gateway's view of one notification.
struct Record {
  std::string status;
  std::string request_id;
  std::string updated_at;
  std::string last_error;
};

json get_envelope(faults::HttpSession& session, const std::string& url) {
  const auto reply = session.get(url);
  if (reply.status != 200) {
    throw std::runtime_error("GET " + url + ": " +
                             (reply.status == 0 ? reply.error : std::to_string(reply.status)) +
                             " " + reply.body.substr(0, 200));
  }
  return json::parse(reply.body);
}

// The notifications of these users still queued (pending rows included: the gateway lists
// them as queued), processing or retrying: id -> request_id.
std::unordered_map<std::string, std::string> list_unsettled(faults::HttpSession& session,
                                                            const std::string& gateway,
                                                            const std::vector<std::string>& users) {
  std::unordered_map<std::string, std::string> unsettled;
  for (const auto& user : users) {
    for (const char* status : {"queued", "processing", "retrying"}) {
      for (int page = 1;; ++page) {
        const auto body = get_envelope(session, gateway + "/api/v1/notifications?user_id=" +
                                                    user + "&status=" + status +
                                                    "&limit=100&page=" + std::to_string(page));
        for (const auto& item : body.at("data")) {
          unsettled[item.at("notification_id").get<std::string>()] = item.at("request_id");
        }
        if (!body.at("meta").at("has_next").get<bool>()) break;
      }
    }
  }
  return unsettled;
}

// Every notification of these users, by id (pages of 100, the contract's cap).
std::unordered_map<std::string, Record> list_all(faults::HttpSession& session,
                                                 const std::string& gateway,
                                                 const std::vector<std::string>& users) {
  std::unordered_map<std::string, Record> records;
  for (const auto& user : users) {
    for (int page = 1;; ++page) {
      const auto body = get_envelope(session, gateway + "/api/v1/notifications?user_id=" + user +
                                                  "&limit=100&page=" + std::to_string(page));
      for (const auto& item : body.at("data")) {
        Record r;
        r.status = item.at("status");
        r.request_id = item.at("request_id");
        r.updated_at = item.at("updated_at");
        if (item.contains("last_error") && item["last_error"].is_string()) {
          r.last_error = item["last_error"];
        }
        records[item.at("notification_id").get<std::string>()] = std::move(r);
      }
      if (!body.at("meta").at("has_next").get<bool>()) break;
    }
  }
  return records;
}

// RFC 3339 ("2026-11-30T01:56:46.123Z", or with an offset) to Unix nanoseconds.
std::optional<std::int64_t> parse_rfc3339(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  std::int64_t ns = static_cast<std::int64_t>(timegm(&tm)) * 1000000000;
  std::size_t at = static_cast<std::size_t>(consumed);
  if (at < text.size() && text[at] == '.') {
    std::int64_t scale = 100000000;
    for (++at; at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])); ++at) {
      ns += (text[at] - '0') * scale;
      scale /= 10;
    }
  }
  if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
    int hours = 0;
    int minutes = 0;
    if (std::sscanf(text.c_str() + at + 1, "%2d:%2d", &hours, &minutes) != 2) return std::nullopt;
    const std::int64_t offset = (hours * 3600LL + minutes * 60LL) * 1000000000;
    ns += text[at] == '+' ? -offset : offset;
  }
  return ns;
}

// The sink's folder: one file per message, matched to its notification by the Message-ID
// header (<notification_id@domain>). Scanned incrementally: a file is read once it shows
// a Message-ID; one still without a header after 10 s is not an email of ours.
class MailIndex {
 public:
  explicit MailIndex(fs::path folder) : folder_(std::move(folder)) {}

  void scan() {
    const auto now = fs::file_time_type::clock::now();
    for (const auto& entry : fs::directory_iterator(folder_)) {
      if (!entry.is_regular_file()) continue;
      const std::string name = entry.path().filename();
      if (done_.count(name) != 0) continue;
      if (auto id = message_id(entry.path())) {
        files_[*id].push_back(entry.path());
        done_.insert(name);
      } else if (now - entry.last_write_time() > 10s) {
        ++without_id_;
        done_.insert(name);
      }
    }
  }

  std::size_t arrivals(const std::string& id) const {
    const auto it = files_.find(id);
    return it == files_.end() ? 0 : it->second.size();
  }
  const std::unordered_map<std::string, std::vector<fs::path>>& files() const { return files_; }
  std::size_t without_id() const { return without_id_; }

  // When the sink finished writing the file: the end of that SMTP transaction's DATA.
  static std::int64_t written_ns(const fs::path& file) {
    struct stat info {};
    if (::stat(file.c_str(), &info) != 0) return 0;
    return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  }

 private:
  static std::optional<std::string> message_id(const fs::path& file) {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) break;  // end of the headers
      if (line.size() < 11) continue;
      std::string name = line.substr(0, 11);
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (name != "message-id:") continue;
      const auto open = line.find('<');
      const auto at = line.find('@', open);
      if (open == std::string::npos || at == std::string::npos) return std::nullopt;
      return line.substr(open + 1, at - open - 1);
    }
    return std::nullopt;
  }

  fs::path folder_;
  std::unordered_map<std::string, std::vector<fs::path>> files_;
  std::unordered_set<std::string> done_;
  std::size_t without_id_ = 0;
};

// sent_notifications.sent_at (Unix nanoseconds, to the microsecond) of these ids.
std::unordered_map<std::string, std::int64_t> recorded_sends(const std::string& url,
                                                             const std::vector<std::string>& ids) {
  std::unordered_map<std::string, std::int64_t> sent;
  if (ids.empty()) return sent;
  pqxx::connection connection(url);
  pqxx::nontransaction tx(connection);
  std::string list;
  for (const auto& id : ids) list += (list.empty() ? "" : ",") + tx.quote(id);
  const auto rows = tx.exec(
      "SELECT notification_id::text, (extract(epoch FROM sent_at) * 1000000)::bigint "
      "FROM sent_notifications WHERE notification_id::text IN (" + list + ")");
  for (const auto& row : rows) {
    sent[row[0].as<std::string>()] = row[1].as<std::int64_t>() * 1000;
  }
  return sent;
}

// --- the check ---------------------------------------------------------------------------

// What one fault's notifications came to.
struct Tally {
  std::size_t posted = 0;
  std::size_t accepted = 0;  // 202
  std::size_t delivered = 0;
  std::size_t failed = 0;
  std::size_t failed_good = 0;       // failed although their template could render
  std::size_t lost = 0;              // accepted, not delivered (with a mail) nor failed
  std::size_t missing_dead_letter = 0;
  std::size_t poison_delivered = 0;
  std::size_t duplicate_recorded = 0;  // a copy arrived after the send was recorded
  std::size_t duplicate_mid_send = 0;  // copies all before the record: the kill -9 window
  std::int64_t recovery_ns = 0;
};

bool tally_failed(const Tally& t) {
  return t.lost != 0 || t.missing_dead_letter != 0 || t.poison_delivered != 0 ||
         t.duplicate_recorded != 0;
}

// Named examples of each kind of problem, a few per kind.
class Problems {
 public:
  void add(const std::string& kind, const std::string& example) {
    auto& list = examples_[kind];
    ++counts_[kind];
    if (list.size() < 5) list.push_back(example);
  }
  void print() const {
    for (const auto& [kind, count] : counts_) {
      std::cout << "[check] PROBLEM " << kind << ": " << count << std::endl;
      for (const auto& example : examples_.at(kind)) {
        std::cout << "          " << example << std::endl;
      }
    }
  }
  bool empty() const { return counts_.empty(); }

 private:
  std::map<std::string, std::size_t> counts_;
  std::map<std::string, std::vector<std::string>> examples_;
};

struct Snapshot {
  std::unordered_map<std::string, Record> records;
  std::unordered_map<std::string, std::string> dead_letters;  // id -> reason
  std::size_t dead_letters_total = 0;
};

Snapshot take_snapshot(faults::HttpSession& session, const Args& args,
                       const std::vector<std::string>& users) {
  Snapshot snap;
  snap.records = list_all(session, args.text("gateway"), users);
  const auto letters = faults::peek_all(args.text("amqp"), "failed.queue");
  snap.dead_letters_total = letters.size();
  for (const auto& letter : letters) {
    auto& reason = snap.dead_letters[letter.message_id];
    if (reason.empty()) reason = letter.reason;
  }
  return snap;
}

// Whether every accepted notification has settled with its evidence: delivered with a
// mail in the sink, or failed with its message in failed.queue.
bool settled(const std::vector<Post>& posts, const Snapshot& snap, const MailIndex& mail) {
  for (const auto& p : posts) {
    if (p.status != 202 || p.notification_id.empty()) continue;
    const auto it = snap.records.find(p.notification_id);
    if (it == snap.records.end()) return false;
    if (it->second.status == "delivered" && mail.arrivals(p.notification_id) == 0) return false;
    if (it->second.status == "failed" && snap.dead_letters.count(p.notification_id) == 0) {
      return false;
    }
    if (it->second.status != "delivered" && it->second.status != "failed") return false;
  }
  return true;
}

int run_check(const Args& args) {
  const std::string gateway = args.text("gateway");
  const std::string tag = args.text("tag");
  const auto users = read_lines(args.text("users"));
  const std::int64_t fault_end = args.integer("fault-end");
  const double timeout_s = args.number("timeout", 90);
  const std::vector<std::string> busy_queues{"email.queue", "email.retry.1", "email.retry.2",
                                             "email.retry.3", "status.queue"};

  std::vector<Post> posts;
  std::vector<fs::path> loads;
  for (const auto& entry : fs::directory_iterator(args.text("loads"))) {
    if (entry.path().extension() == ".tsv") loads.push_back(entry.path());
  }
  std::sort(loads.begin(), loads.end());
  for (const auto& file : loads) {
    auto more = read_posts(file);
    posts.insert(posts.end(), more.begin(), more.end());
  }

  std::unordered_set<std::string> accepted;
  for (const auto& p : posts) {
    if (p.status == 202 && !p.notification_id.empty()) accepted.insert(p.notification_id);
  }

  faults::HttpSession session(args.text("api-key"), 20s);
  MailIndex mail(args.text("mail"));
  const auto started = Clock::now();
  const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(timeout_s));
  Snapshot snap;
  bool quiet = false;
  std::string waiting_for = "nothing yet";
  // Polls once a second: the cheap questions first (queue depths, unsettled counts), the
  // full listing only when they say the system looks idle.
  for (;;) {
    try {
      mail.scan();
      const auto depths = faults::ready_counts(args.text("amqp"), busy_queues);
      std::uint64_t queued = 0;
      std::string busy;
      for (std::size_t i = 0; i < depths.size(); ++i) {
        queued += depths[i];
        if (depths[i] != 0) busy += " " + busy_queues[i] + "=" + std::to_string(depths[i]);
      }
      if (queued != 0) {
        waiting_for = "messages in" + busy;
      } else {
        // Only notifications that got a 202 are waited for: a POST answered 503 may leave
        // a row the gateway lists as queued (see `orphans` below) and nothing will move it.
        std::size_t ours = 0;
        for (const auto& entry : list_unsettled(session, gateway, users)) {
          if (accepted.count(entry.first) != 0) ++ours;
        }
        if (ours != 0) {
          waiting_for = std::to_string(ours) + " accepted notifications still in flight";
        } else {
          snap = take_snapshot(session, args, users);
          quiet = settled(posts, snap, mail);
          waiting_for = "mails or dead letters of settled notifications";
        }
      }
    } catch (const std::exception& e) {
      waiting_for = std::string("an answer: ") + e.what();
    }
    if (quiet || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(1s);
  }
  const double quiet_after = std::chrono::duration<double>(Clock::now() - started).count();
  if (quiet) {
    std::cout << "[check] " << tag << ": quiescent after " << std::fixed << std::setprecision(1)
              << quiet_after << " s" << std::endl;
  } else {
    std::cout << "[check] " << tag << ": NOT quiescent after " << std::fixed
              << std::setprecision(1) << quiet_after << " s (timeout " << timeout_s
              << " s), waiting for " << waiting_for << std::endl;
  }
  // The verdict reads everything once more, whatever the wait ended on.
  Problems problems;
  try {
    mail.scan();
    snap = take_snapshot(session, args, users);
  } catch (const std::exception& e) {
    problems.add("the final reading failed", e.what());
  }

  // Duplicates: a second copy is a defect when it arrived after the first copy's send was
  // recorded (the worker checks the ledger before sending); copies that all arrived before
  // any record are the documented window of a worker dying mid-send.
  std::vector<std::string> twice;
  for (const auto& [id, files] : mail.files()) {
    if (files.size() > 1) twice.push_back(id);
  }
  std::unordered_map<std::string, std::int64_t> sent_at;
  try {
    sent_at = recorded_sends(args.text("ledger-db"), twice);
  } catch (const std::exception& e) {
    problems.add("the send ledger could not be read", e.what());
  }
  std::unordered_map<std::string, const Post*> by_id;
  for (const auto& p : posts) {
    if (!p.notification_id.empty()) by_id[p.notification_id] = &p;
  }
  std::map<std::string, Tally> tallies;
  std::unordered_set<std::string> recorded_twice;
  for (const auto& id : twice) {
    const auto& files = mail.files().at(id);
    const auto post = by_id.find(id);
    const std::string owner = post == by_id.end() ? "(no 202)" : post->second->tag;
    const auto recorded = sent_at.find(id);
    std::int64_t last_copy = 0;
    for (const auto& file : files) last_copy = std::max(last_copy, MailIndex::written_ns(file));
    if (recorded != sent_at.end() && last_copy > recorded->second) {
      recorded_twice.insert(id);
      ++tallies[owner].duplicate_recorded;
      problems.add("sent again after the send was recorded",
                   owner + " " + id + ": " + std::to_string(files.size()) + " copies, last " +
                       std::to_string((last_copy - recorded->second) / 1000000) +
                       " ms after sent_at");
    } else {
      ++tallies[owner].duplicate_mid_send;
    }
  }

  for (const auto& p : posts) {
    auto& t = tallies[p.tag];
    ++t.posted;
    if (p.status != 202 || p.notification_id.empty()) continue;
    ++t.accepted;
    const std::string name = p.tag + " " + p.notification_id + " (" + p.request_id + ")";
    const auto it = snap.records.find(p.notification_id);
    if (it == snap.records.end()) {
      ++t.lost;
      problems.add("accepted but unknown to the gateway", name);
      continue;
    }
    const Record& r = it->second;
    if (r.status == "delivered") {
      if (mail.arrivals(p.notification_id) == 0) {
        ++t.lost;
        problems.add("delivered but no mail arrived", name);
        continue;
      }
      ++t.delivered;
      if (p.poison) {
        ++t.poison_delivered;
        problems.add("delivered although its template cannot render", name);
      }
    } else if (r.status == "failed") {
      ++t.failed;
      if (!p.poison) ++t.failed_good;
      const auto letter = snap.dead_letters.find(p.notification_id);
      if (letter == snap.dead_letters.end()) {
        ++t.missing_dead_letter;
        problems.add("failed but not in failed.queue", name + ": " + r.last_error);
      } else if (letter->second.empty()) {
        ++t.missing_dead_letter;
        problems.add("in failed.queue without x-failure-reason", name);
      }
    } else {
      ++t.lost;
      problems.add("stuck in '" + r.status + "'", name + " updated " + r.updated_at);
      continue;
    }
  }
  // Recovery: how long after the fault ended the last notification accepted before its
  // end settled, or the first one accepted after it was delivered, whichever is later.
  {
    auto& t = tallies[tag];
    std::int64_t backlog = 0;
    std::optional<std::int64_t> first_new;
    for (const auto& p : posts) {
      if (p.tag != tag || p.notification_id.empty()) continue;
      const auto it = snap.records.find(p.notification_id);
      if (it == snap.records.end()) continue;
      const auto at = parse_rfc3339(it->second.updated_at);
      if (!at) continue;
      const bool terminal = it->second.status == "delivered" || it->second.status == "failed";
      if (p.sent_ns < fault_end && terminal) backlog = std::max(backlog, *at - fault_end);
      if (p.sent_ns >= fault_end && it->second.status == "delivered") {
        first_new = std::min(first_new.value_or(*at - fault_end), *at - fault_end);
      }
    }
    t.recovery_ns = std::max<std::int64_t>({0, backlog, first_new.value_or(0)});
  }

  // Rows the gateway lists although their POST got no 202: a claim that committed while
  // the gateway saw the database fail (it answered 503 and published nothing) stays
  // pending, listed as queued, until the client retries with the same request_id. Not a
  // broken promise (no 202 was given), but shown: an operator sees them as stuck.
  std::size_t orphans = 0;
  std::size_t unaccepted_settled = 0;
  for (const auto& [id, r] : snap.records) {
    if (accepted.count(id) != 0) continue;
    if (r.status == "delivered" || r.status == "failed") {
      ++unaccepted_settled;
    } else {
      ++orphans;
      if (orphans <= 5) {
        std::cout << "[check] note: " << id << " (" << r.request_id << ") is listed as '"
                  << r.status << "' but its POST got no 202" << std::endl;
      }
    }
  }
  std::size_t unaccepted_mail = 0;
  for (const auto& [id, files] : mail.files()) {
    if (by_id.count(id) == 0 || by_id.at(id)->status != 202) unaccepted_mail += files.size();
  }
  bool failure = !problems.empty() || !quiet;
  for (const auto& [name, t] : tallies) {
    if (name != tag && tally_failed(t)) {
      std::cout << "[check] earlier fault " << name << " now shows problems" << std::endl;
    }
    failure = failure || tally_failed(t);
  }
  problems.print();
  const auto& t = tallies[tag];
  std::cout << "[check] " << tag << ": " << t.posted << " posted, " << t.accepted << " accepted, "
            << t.delivered << " delivered, " << t.failed << " failed (" << t.failed_good
            << " with a renderable template), " << t.lost << " lost, " << t.duplicate_recorded
            << " recorded sends duplicated, " << t.duplicate_mid_send
            << " mid-send duplicates; failed.queue holds " << snap.dead_letters_total
            << " messages; mails without a 202: " << unaccepted_mail
            << "; without a 202 but listed: " << unaccepted_settled << " settled, " << orphans
            << " still queued"
            << "; files without a Message-ID: " << mail.without_id() << std::endl;

  std::string note = args.text("note", "-");
  if (orphans != 0) {
    note = (note == "-" ? "" : note + "; ") + std::to_string(orphans) +
           " listed as queued without a 202";
  }
  std::ofstream row(args.text("row"), std::ios::app);
  row << tag << '\t' << t.accepted << '\t' << (t.posted - t.accepted) << '\t' << t.delivered << '\t'
      << t.failed << '\t' << t.lost << '\t' << t.duplicate_recorded << '\t' << t.duplicate_mid_send
      << '\t' << std::fixed << std::setprecision(1)
      << static_cast<double>(t.recovery_ns) / 1e9 << '\t' << quiet_after << '\t'
      << (failure ? "FAIL" : "ok") << '\t' << note << '\n';
  if (!row.flush()) throw std::runtime_error("cannot append to " + args.text("row"));
  return failure ? 1 : 0;
}

int run_queues(const Args& args) {
  const auto& queues = args.positional();
  if (queues.empty()) throw std::invalid_argument("name at least one queue");
  const auto counts = faults::ready_counts(args.text("amqp"), queues);
  for (std::size_t i = 0; i < queues.size(); ++i) {
    std::cout << queues[i] << ' ' << counts[i] << '\n';
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: fault_driver load|check|queues ... (see the top of fault_driver.cpp)\n";
    return 2;
  }
  const std::string command = argv[1];
  try {
    faults::init_http();
    const Args args(argc, argv, 2);
    if (command == "load") return run_load(args);
    if (command == "check") return run_check(args);
    if (command == "queues") return run_queues(args);
    std::cerr << "fault_driver: unknown command " << command << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "fault_driver " << command << ": " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "fault_driver " << command << ": " << e.what() << "\n";
    return 1;
  }
}
