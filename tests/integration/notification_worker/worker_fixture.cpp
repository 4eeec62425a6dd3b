#include "integration/notification_worker/worker_fixture.hpp"

#include <amqp.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>
#include <prometheus/registry.h>

#include "notifs/messaging/common/request_id.hpp"

namespace notifs::worker_test {

namespace amqp = messaging::amqp;
namespace http = messaging::http;
using namespace std::chrono_literals;

namespace {

http::ServiceClientSettings upstream_client(std::string name, std::uint16_t port) {
  http::ServiceClientSettings client;
  client.name = std::move(name);
  client.base_url = "http://127.0.0.1:" + std::to_string(port);
  client.service_token = gateway_test::kServiceToken;
  client.connect_timeout = 1000ms;
  client.attempt_timeout = 2000ms;
  client.deadline = 5000ms;
  client.max_attempts = 2;
  client.backoff = {10ms, 50ms, 2.0};
  client.retry_budget = {1000.0, 0.1};
  return client;
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return lower(a) == lower(b); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes "=XX" escapes (and '_' as a space when `underscore_space`: RFC 2047's Q).
std::string decode_q(std::string_view text, bool underscore_space) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '_' && underscore_space) {
      out += ' ';
    } else if (c == '=') {
      INFO("truncated escape in " << text);
      REQUIRE(i + 2 < text.size());
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      INFO("bad escape in " << text);
      REQUIRE((high >= 0 && low >= 0));
      out += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

bool complete_dump(const std::string& dump) { return dump.ends_with("\n\n"); }

}  // namespace

// --- WorkerFixture ---------------------------------------------------------------------

WorkerFixture::WorkerFixture(gateway_test::GatewayOptions options)
    : gateway_(std::make_unique<gateway_test::GatewayFixture>(options)),
      smtp_(std::make_unique<test_support::SmtpSink>()) {
  // A queue of our own on notifications.status sees every event the workers publish; the
  // gateway's status.queue is the gateway's. It expires if a crashed test leaves it.
  status_tap_ = names().status_exchange() + ".tap";
  probe().declare_queue(status_tap_, {{"x-queue-type", "classic"}, {"x-expires", 600000}});
  auto& connection = probe().connection();
  const std::string exchange = names().status_exchange();
  const std::string key(amqp::TopologyNames::kStatusRoutingKey);
  amqp_queue_bind(connection.state(), amqp_test::BrokerProbe::kChannel,
                  amqp_cstring_bytes(status_tap_.c_str()), amqp_cstring_bytes(exchange.c_str()),
                  amqp_cstring_bytes(key.c_str()), amqp_empty_table);
  connection.check_last_reply("queue.bind " + status_tap_, amqp_test::BrokerProbe::kChannel);
}

WorkerFixture::~WorkerFixture() {
  stop_workers();
  try {
    probe().delete_queue(status_tap_);
  } catch (...) {
    // Best effort: it expires by itself.
  }
}

pg_test::TestSchema& WorkerFixture::ledger_schema(std::string_view channel) {
  auto found = ledgers_.find(channel);
  if (found == ledgers_.end()) {
    found = ledgers_.emplace(std::string(channel), std::make_unique<pg_test::TestSchema>()).first;
  }
  return *found->second;
}

worker::WorkerSettings WorkerFixture::worker_settings(std::string_view channel) {
  worker::WorkerSettings settings;
  settings.channel = std::string(channel);
  auto& service = settings.service;
  service.server.service_name = "notification_worker_test";
  service.server.address = "127.0.0.1";
  service.server.port = 0;
  service.server.io_threads = 1;
  service.server.blocking_threads = 2;
  service.server.shutdown_grace = 5s;
  service.database.url = ledger_schema(channel).url();
  service.database.name = "postgres";
  service.database.size = 4;  // 2 ledger writers + 2 HTTP workers
  service.database.application_name = "notification_worker_test";
  service.service_token = gateway_test::kServiceToken;
  service.startup_timeout = 20s;

  settings.amqp = amqp_test::connection_settings("notification_worker_test " + settings.channel);
  settings.topology = gateway_->topology();
  settings.publisher.connection = settings.amqp;
  settings.publisher.topology = settings.topology;
  settings.publisher.connections = 1;
  settings.concurrency = 32;
  settings.stop_timeout = 10s;

  settings.template_service = upstream_client("template_service", gateway_->templates().port());
  if (channel == "push") {
    settings.user_service = upstream_client("user_service", gateway_->users().port());
  }

  worker::SmtpSettings smtp;
  smtp.url = smtp_->url();
  smtp.max_connections = 4;
  smtp.connect_timeout = 1000ms;
  smtp.transfer_timeout = 5000ms;
  settings.email.from = kSmtpFrom;
  settings.email.providers = {smtp};
  // As read_worker_settings does: a send waiting for a free connection is not a slow server.
  settings.email.breaker.slow_call_threshold = smtp.transfer_timeout;

  worker::PushSenderSettings push;
  push.name = "push-1";
  push.url = push_.url();
  push.token = kPushProviderToken;
  push.client = upstream_client("push-1", push_.port());
  settings.push.providers = {push};
  return settings;
}

worker::WorkerApp& WorkerFixture::start_worker(worker::WorkerSettings settings) {
  auto app = std::make_unique<worker::WorkerApp>(std::move(settings),
                                                 std::make_shared<prometheus::Registry>());
  app->start();
  workers_.push_back(std::move(app));
  return *workers_.back();
}

void WorkerFixture::stop_workers() {
  for (auto& app : workers_) {
    app->stop();
  }
}

int WorkerFixture::recorded_sends(std::string_view channel, const std::string& notification_id) {
  REQUIRE(messaging::common::is_uuid(notification_id));
  const auto count = ledger_schema(channel).query_value(
      "SELECT count(*) FROM sent_notifications WHERE notification_id = '" + notification_id + "'");
  return std::stoi(count);
}

json WorkerFixture::notification(const std::string& notification_id) {
  const auto response = gateway_->get("/api/v1/notifications/" + notification_id);
  INFO(response.body);
  REQUIRE(response.status == 200);
  return response.json()["data"];
}

json WorkerFixture::wait_for_status(const std::string& notification_id, std::string_view status,
                                    std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  json data;
  for (;;) {
    data = notification(notification_id);
    const auto now_status = data.value("status", std::string());
    if (now_status == status) {
      return data;
    }
    const auto parsed = contract::status_from_string(now_status);
    if (parsed && contract::is_terminal(*parsed)) {
      FAIL("notification " << notification_id << " ended " << now_status << ", not " << status
                           << ": " << data.dump());
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      FAIL("notification " << notification_id << " is not " << status << " after "
                           << within.count() << " ms: " << data.dump());
    }
    std::this_thread::sleep_for(50ms);
  }
}

void WorkerFixture::drain_status_tap() {
  while (auto delivery = probe().get(status_tap_)) {
    try {
      events_.push_back(contract::decode_status_event(delivery->body));
    } catch (const std::exception& error) {
      FAIL("a status event that does not decode: " << error.what() << ": " << delivery->body);
    }
  }
}

std::vector<contract::StatusEvent> WorkerFixture::status_events(const std::string& notification_id) {
  drain_status_tap();
  std::vector<contract::StatusEvent> out;
  std::copy_if(events_.begin(), events_.end(), std::back_inserter(out),
               [&](const contract::StatusEvent& event) {
                 return event.notification_id == notification_id;
               });
  return out;
}

std::vector<contract::StatusEvent> WorkerFixture::wait_for_events(const std::string& notification_id,
                                                                  contract::Status status,
                                                                  std::size_t count,
                                                                  std::chrono::milliseconds within) {
  std::vector<contract::StatusEvent> events;
  const bool arrived = amqp_test::wait_until(
      [&] {
        events = status_events(notification_id);
        return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const auto& e) {
                 return e.status == status;
               })) >= count;
      },
      within, 50ms);
  if (!arrived) {
    std::string seen;
    for (const auto& event : events) {
      seen += " " + std::string(contract::to_string(event.status)) + "#" +
              std::to_string(event.attempt);
    }
    FAIL("fewer than " << count << " '" << contract::to_string(status) << "' events for "
                       << notification_id << " within " << within.count() << " ms; seen:" << seen);
  }
  return events;
}

const std::vector<amqp::Delivery>& WorkerFixture::failed_messages(std::size_t count,
                                                                  std::chrono::milliseconds within) {
  const auto queue = names().failed_queue();
  amqp_test::wait_until(
      [&] {
        while (auto delivery = probe().get(queue)) {
          failed_.push_back(std::move(*delivery));
        }
        return failed_.size() >= count;
      },
      within, 50ms);
  return failed_;
}

std::optional<amqp::Delivery> WorkerFixture::failed_message(const std::string& message_id,
                                                            std::chrono::milliseconds within) {
  const auto queue = names().failed_queue();
  std::optional<amqp::Delivery> found;
  amqp_test::wait_until(
      [&] {
        while (auto delivery = probe().get(queue)) {
          failed_.push_back(std::move(*delivery));
        }
        for (const auto& delivery : failed_) {
          if (delivery.message_id == message_id) {
            found = delivery;
            return true;
          }
        }
        return false;
      },
      within, 50ms);
  return found;
}

// --- Received emails -------------------------------------------------------------------

std::vector<std::string> emails_for(const test_support::SmtpSink& sink,
                                    const std::string& notification_id) {
  const std::string marker = "\nMessage-ID: <" + notification_id + "@";
  std::vector<std::string> out;
  for (auto& dump : sink.messages(0, 0ms)) {
    if (complete_dump(dump) && dump.find(marker) != std::string::npos) {
      out.push_back(std::move(dump));
    }
  }
  return out;
}

std::string wait_for_email(const test_support::SmtpSink& sink, const std::string& notification_id,
                           std::chrono::milliseconds within) {
  std::vector<std::string> found;
  const bool arrived = amqp_test::wait_until(
      [&] {
        found = emails_for(sink, notification_id);
        return !found.empty();
      },
      within, 50ms);
  if (!arrived) {
    FAIL("no email for notification " << notification_id << " within " << within.count()
                                      << " ms (" << sink.message_count() << " files at the sink)");
  }
  return found.front();
}

std::map<std::string, int> received_per_notification(const test_support::SmtpSink& sink) {
  static const std::regex message_id(R"(\nMessage-ID: <([0-9a-f-]{36})@)");
  std::map<std::string, int> counts;
  for (const auto& dump : sink.messages(0, 0ms)) {
    std::smatch match;
    if (complete_dump(dump) && std::regex_search(dump, match, message_id)) {
      ++counts[match[1].str()];
    }
  }
  return counts;
}

std::string ParsedMessage::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return {};
}

std::size_t ParsedMessage::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(headers.begin(), headers.end(), [&](const auto& h) {
    return iequals(h.first, name);
  }));
}

ParsedMessage parse_message(std::string_view text) {
  ParsedMessage message;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    const auto line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty()) {
      message.body = std::string(text.substr(std::min(at, text.size())));
      return message;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !message.headers.empty()) {
      message.headers.back().second += std::string(line);  // unfolding keeps the whitespace
      continue;
    }
    const auto colon = line.find(':');
    INFO("header line: " << line);
    REQUIRE(colon != std::string_view::npos);
    auto value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    message.headers.emplace_back(lower(line.substr(0, colon)), std::string(value));
  }
  return message;
}

std::vector<ParsedMessage> multipart_parts(const ParsedMessage& message) {
  static const std::regex boundary_param(R"re(boundary="?([^";]+)"?)re", std::regex::icase);
  const auto content_type = message.header("Content-Type");
  std::smatch match;
  INFO("Content-Type: " << content_type);
  REQUIRE(std::regex_search(content_type, match, boundary_param));
  const std::string delimiter = "--" + match[1].str();
  std::vector<ParsedMessage> parts;
  const std::string& body = message.body;
  auto at = body.find(delimiter + "\n");
  REQUIRE(at != std::string::npos);
  at += delimiter.size() + 1;
  for (;;) {
    const auto next = body.find("\n" + delimiter, at);
    REQUIRE(next != std::string::npos);
    parts.push_back(parse_message(std::string_view(body).substr(at, next - at)));
    at = next + 1 + delimiter.size();
    if (body.compare(at, 2, "--") == 0) {
      return parts;  // the close delimiter
    }
    REQUIRE(body.compare(at, 1, "\n") == 0);
    ++at;
  }
}

std::string decode_rfc2047(std::string_view value) {
  static const std::regex word(R"(=\?([^?]+)\?([BbQq])\?([^?]*)\?=)");
  std::string out;
  std::string pending_space;  // whitespace after an encoded-word, dropped if another follows
  bool after_word = false;
  const std::string text(value);
  auto begin = text.cbegin();
  std::smatch match;
  while (std::regex_search(begin, text.cend(), match, word)) {
    const std::string gap = match.prefix().str();
    const bool only_space = gap.find_first_not_of(" \t") == std::string::npos;
    if (!(after_word && only_space)) {
      out += gap;
    }
    INFO("charset of " << match[0].str());
    REQUIRE(iequals(match[1].str(), "utf-8"));
    const auto encoding = match[2].str();
    out += (encoding == "B" || encoding == "b") ? decode_base64(match[3].str())
                                                : decode_q(match[3].str(), true);
    after_word = true;
    begin = match.suffix().first;
  }
  out += std::string(begin, text.cend());
  return out;
}

std::string decode_quoted_printable(std::string_view text) {
  std::string out;
  std::size_t at = 0;
  while (at <= text.size()) {
    auto end = text.find('\n', at);
    const bool last = end == std::string_view::npos;
    if (last) end = text.size();
    auto line = text.substr(at, end - at);
    const bool soft = !line.empty() && line.back() == '=';
    if (soft) line.remove_suffix(1);
    out += decode_q(line, false);
    if (!soft && !last) out += '\n';
    at = end + 1;
  }
  return out;
}

std::string decode_base64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (const char c : text) {
    if (c == '=' || c == '\n' || c == '\r') continue;
    const auto index = kAlphabet.find(c);
    INFO("base64 text: " << text);
    REQUIRE(index != std::string_view::npos);
    buffer = (buffer << 6) | static_cast<std::uint32_t>(index);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace notifs::worker_test
