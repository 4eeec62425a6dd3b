#include "smtp_sender.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "notifs/messaging/common/logging.hpp"

namespace notifs::worker {
namespace {

// curl_global_init is not guaranteed thread-safe on every build, so it runs once, before
// the first handle, guarded by the function-local static's initialisation. It is never
// undone: the process may still hold handles when statics are destroyed.
void ensure_curl_initialised() {
  static const CURLcode kInit = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (kInit != CURLE_OK) {
    throw std::runtime_error(std::string("curl_global_init failed: ") + curl_easy_strerror(kInit));
  }
}

struct EasyDeleter {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct MultiDeleter {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct UrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlStringDeleter {
  void operator()(char* text) const { curl_free(text); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;
using MultiHandle = std::unique_ptr<CURLM, MultiDeleter>;
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;
using UrlHandle = std::unique_ptr<CURLU, UrlDeleter>;
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

std::string url_part(CURLU* url, CURLUPart part) {
  char* raw = nullptr;
  if (curl_url_get(url, part, &raw, 0) != CURLUE_OK) {
    return {};
  }
  const CurlString owned(raw);
  return owned ? std::string(owned.get()) : std::string();
}

struct ParsedUrl {
  bool implicit_tls = false;
  std::string name;  // scheme://host:port, no credentials
};

ParsedUrl parse_smtp_url(const std::string& text) {
  const UrlHandle url(curl_url());
  if (!url) {
    throw std::runtime_error("curl_url failed");
  }
  // The exception text never quotes `text`: it may hold a password.
  if (curl_url_set(url.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) {
    throw std::invalid_argument("SMTP URL cannot be parsed (expected smtp[s]://[user:pass@]host[:port])");
  }
  const auto scheme = url_part(url.get(), CURLUPART_SCHEME);
  const auto host = url_part(url.get(), CURLUPART_HOST);
  if ((scheme != "smtp" && scheme != "smtps") || host.empty()) {
    throw std::invalid_argument("SMTP URL must be smtp:// or smtps:// with a host, got scheme '" +
                                scheme + "'");
  }
  auto port = url_part(url.get(), CURLUPART_PORT);
  if (port.empty()) {
    port = scheme == "smtps" ? "465" : "25";
  }
  return ParsedUrl{scheme == "smtps", scheme + "://" + host + ":" + port};
}

struct Job {
  SmtpEnvelope envelope;
  SmtpSender::Callback done;
};

// One easy handle and the state of the transaction it runs. Handles are reused from one
// message to the next: their options stay set, and the multi handle's connection cache
// hands them a warm connection.
struct Transfer {
  EasyHandle easy;
  Job job;
  Slist recipients;
  std::size_t offset = 0;
  // Every byte of the message has been handed to libcurl. Until then the end-of-data marker
  // cannot have gone out, so no server can have accepted the message: a failure before
  // this is safe to send elsewhere at once (SendResult::nothing_sent).
  bool body_sent = false;
  std::string last_reply;     // the server's latest reply line, e.g. "250 2.0.0 Ok: queued"
  std::string failure_reply;  // its first 4xx/5xx reply: what the QUIT after it must not hide
  char error[CURL_ERROR_SIZE] = {};
};

std::size_t read_body(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  const auto& bytes = transfer.job.envelope.message;
  const std::size_t n = std::min(size * count, bytes.size() - transfer.offset);
  std::memcpy(buffer, bytes.data() + transfer.offset, n);
  transfer.offset += n;
  // Set as the last bytes are handed over, not when the callback is next asked for more:
  // with the size known up front libcurl may not ask again before sending the marker.
  if (transfer.offset == bytes.size()) {
    transfer.body_sent = true;
  }
  return n;
}

// For SMTP libcurl passes every server reply line here, as it does for FTP.
std::size_t record_reply(char* data, std::size_t size, std::size_t count, void* user) {
  auto& transfer = *static_cast<Transfer*>(user);
  std::string_view line(data, size * count);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.remove_suffix(1);
  }
  if (line.empty()) {
    return size * count;
  }
  line = line.substr(0, 300);
  transfer.last_reply.assign(line);
  // The last line of a reply is "NNN text" ("NNN-text" continues). libcurl still reports a
  // failure's reply after sending QUIT, so the first failure is kept apart from later lines.
  const bool final_line = line.size() == 3 || (line.size() > 3 && line[3] == ' ');
  if (final_line && transfer.failure_reply.empty() && (line[0] == '4' || line[0] == '5')) {
    transfer.failure_reply.assign(line);
  }
  return size * count;
}

// `text` with every byte outside printable ASCII as \xNN, so that what an error quotes
// cannot break a log line or a status event.
std::string printable(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const char c : text.substr(0, 256)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '\\') {
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 15];
    } else {
      out += c;
    }
  }
  return out;
}

bool is_auth_code(long code) { return code == 530 || code == 534 || code == 535 || code == 538; }

// The command a failure answered, read from libcurl's error text ("RCPT failed: 550").
std::string_view failed_command(const Transfer& transfer) {
  const std::string_view error(transfer.error);
  if (error.starts_with("MAIL failed")) {
    return "MAIL FROM";
  }
  if (error.starts_with("RCPT failed")) {
    return "RCPT TO";
  }
  if (error.starts_with("DATA failed")) {
    return "DATA";
  }
  if (transfer.body_sent) {
    return "end of data";
  }
  return {};
}

// A send that never reached the provider for a reason of ours (queue full, stopping, a bad
// envelope): no breaker failure, and nothing went out.
SendResult not_started(std::string detail) {
  auto result = SendResult::transient_failure(std::move(detail), false);
  result.nothing_sent = true;
  return result;
}

SendResult classify_transfer(CURLcode code, long reply, const Transfer& transfer) {
  const std::string& reply_line =
      transfer.failure_reply.empty() ? transfer.last_reply : transfer.failure_reply;
  const std::string reply_text = reply_line.empty() ? std::to_string(reply) : reply_line;
  if (code == CURLE_OK) {
    return SendResult::delivered_ok(reply_text);
  }
  const std::string curl_text = transfer.error[0] != '\0' ? transfer.error : curl_easy_strerror(code);
  const bool transport = code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
                         code == CURLE_OPERATION_TIMEDOUT || code == CURLE_GOT_NOTHING ||
                         code == CURLE_RECV_ERROR || code == CURLE_SSL_CONNECT_ERROR ||
                         code == CURLE_PEER_FAILED_VERIFICATION;
  if (code == CURLE_ABORTED_BY_CALLBACK) {
    return SendResult::transient_failure("smtp sender stopped", false);
  }
  if (transport || reply < 400 || reply > 599) {
    return SendResult::transient_failure("smtp transport error: " + curl_text, true);
  }
  const auto command = failed_command(transfer);
  if (command.empty() || code == CURLE_LOGIN_DENIED || code == CURLE_USE_SSL_FAILED) {
    // Greeting, EHLO, STARTTLS or AUTH: nothing about this message, everything about the
    // provider or our configuration of it.
    return SendResult::transient_failure(
        "smtp session refused: " + reply_text + " (" + curl_text + ")", true);
  }
  const std::string detail = reply_text + " (" + std::string(command) + ")";
  if (reply < 500) {
    return SendResult::transient_failure(detail, reply == 421);
  }
  if (is_auth_code(reply)) {
    return SendResult::transient_failure(detail, true);
  }
  return SendResult::permanent_failure(detail);
}

SendResult classify(CURLcode code, long reply, const Transfer& transfer) {
  auto result = classify_transfer(code, reply, transfer);
  // Connection refused, DNS, TLS, a refused greeting, EHLO, AUTH, MAIL, RCPT or DATA, a
  // connection lost or a timeout before the whole message went out: all of them before the
  // end-of-data marker, so the server took nothing. After it, a lost connection or a
  // timeout may hide a message the server accepted.
  if (result.outcome != SendOutcome::delivered && !transfer.body_sent) {
    result.nothing_sent = true;
  }
  return result;
}

void notify_done(const SmtpSender::Callback& done, SendResult result) {
  // A throwing callback must not take the sender thread (and every other send) down.
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    messaging::common::logger("smtp")->error("send callback threw err={}", e.what());
  } catch (...) {
    messaging::common::logger("smtp")->error("send callback threw a non-exception");
  }
}

}  // namespace

class SmtpSender::Impl {
 public:
  explicit Impl(SmtpSettings settings) : settings_(std::move(settings)) {
    if (settings_.max_connections == 0) {
      throw std::invalid_argument("SMTP max_connections must be at least 1");
    }
    ensure_curl_initialised();
    const auto parsed = parse_smtp_url(settings_.url);
    name_ = parsed.name;
    implicit_tls_ = parsed.implicit_tls;
    multi_.reset(curl_multi_init());
    if (!multi_) {
      throw std::runtime_error("curl_multi_init failed for " + name_);
    }
    const auto connections = static_cast<long>(settings_.max_connections);
    // The cache keeps one idle connection per slot so every slot can reuse its own.
    curl_multi_setopt(multi_.get(), CURLMOPT_MAXCONNECTS, connections);
    curl_multi_setopt(multi_.get(), CURLMOPT_MAX_TOTAL_CONNECTIONS, connections);
    thread_ = std::thread([this] { run(); });
  }

  ~Impl() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    curl_multi_wakeup(multi_.get());
    thread_.join();
    // idle_ (easy handles, none still in the multi) goes before multi_, whose cleanup
    // closes the cached connections: member order below guarantees it.
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void send(SmtpEnvelope envelope, Callback done) {
    const char* refusal = nullptr;
    {
      const std::lock_guard lock(mutex_);
      if (stopping_) {
        refusal = "smtp sender stopped";
      } else if (waiting_ >= settings_.max_queued) {
        refusal = "smtp send queue full";
      } else {
        incoming_.push_back(Job{std::move(envelope), std::move(done)});
        ++waiting_;
      }
    }
    if (refusal != nullptr) {
      notify_done(done, not_started(refusal));
      return;
    }
    curl_multi_wakeup(multi_.get());
  }

  const std::string& name() const { return name_; }

 private:
  void run() {
    std::deque<Job> pending;
    for (;;) {
      bool stop = false;
      {
        const std::lock_guard lock(mutex_);
        std::move(incoming_.begin(), incoming_.end(), std::back_inserter(pending));
        incoming_.clear();
        stop = stopping_;
      }
      if (stop) {
        fail_pending(pending);
      }
      start(pending);
      int running = 0;
      if (const auto rc = curl_multi_perform(multi_.get(), &running); rc != CURLM_OK) {
        messaging::common::logger("smtp")->error("curl_multi_perform failed provider={} err={}",
                                                 name_, curl_multi_strerror(rc));
      }
      const bool finished_any = collect();
      if (stop && active_ == 0) {
        return;
      }
      if (finished_any && !pending.empty()) {
        continue;  // slots freed: start the next messages without waiting for a socket event
      }
      // Returns on socket activity, on libcurl's own timers, or on curl_multi_wakeup from
      // send() and the destructor.
      curl_multi_poll(multi_.get(), nullptr, 0, 1000, nullptr);
    }
  }

  void fail_pending(std::deque<Job>& pending) {
    {
      const std::lock_guard lock(mutex_);
      waiting_ -= pending.size();
    }
    for (auto& job : pending) {
      notify_done(job.done, not_started("smtp sender stopped"));
    }
    pending.clear();
  }

  void start(std::deque<Job>& pending) {
    while (active_ < settings_.max_connections && !pending.empty()) {
      auto transfer = take_transfer();
      if (!transfer) {
        return;  // logged; the jobs wait for a handle to come back
      }
      transfer->job = std::move(pending.front());
      pending.pop_front();
      {
        const std::lock_guard lock(mutex_);
        --waiting_;
      }
      if (const auto error = prepare(*transfer); !error.empty()) {
        notify_done(transfer->job.done, not_started(error));
        release(std::move(transfer));
        continue;
      }
      if (const auto rc = curl_multi_add_handle(multi_.get(), transfer->easy.get()); rc != CURLM_OK) {
        notify_done(transfer->job.done,
                    not_started(std::string("curl_multi_add_handle failed: ") + curl_multi_strerror(rc)));
        release(std::move(transfer));
        continue;
      }
      ++active_;
      // Owned through CURLOPT_PRIVATE while in the multi; collect() takes it back.
      static_cast<void>(transfer.release());
    }
  }

  // An idle transfer, or a new one with the options that never change set once.
  std::unique_ptr<Transfer> take_transfer() {
    if (!idle_.empty()) {
      auto transfer = std::move(idle_.back());
      idle_.pop_back();
      return transfer;
    }
    auto transfer = std::make_unique<Transfer>();
    transfer->easy.reset(curl_easy_init());
    if (!transfer->easy) {
      messaging::common::logger("smtp")->error("curl_easy_init failed provider={}", name_);
      return nullptr;
    }
    CURL* easy = transfer->easy.get();
    Transfer* self = transfer.get();
    curl_easy_setopt(easy, CURLOPT_URL, settings_.url.c_str());
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);  // we run on our own thread, not in a signal-safe world
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, &read_body);
    curl_easy_setopt(easy, CURLOPT_READDATA, self);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &record_reply);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, self);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, self->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, self);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count()));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.transfer_timeout.count()));
    if (!implicit_tls_) {
      curl_easy_setopt(easy, CURLOPT_USE_SSL,
                       static_cast<long>(settings_.require_tls ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    }
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, settings_.verify_tls ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, settings_.verify_tls ? 2L : 0L);
    if (!settings_.ca_file.empty()) {
      curl_easy_setopt(easy, CURLOPT_CAINFO, settings_.ca_file.c_str());
    }
    return transfer;
  }

  // Per-message options; an error text when the envelope cannot be used.
  static std::string prepare(Transfer& transfer) {
    const auto& envelope = transfer.job.envelope;
    for (const auto* address : {&envelope.from, &envelope.to}) {
      // CR/LF or angle brackets would smuggle SMTP commands, and a NUL would cut the address
      // short where libcurl reads it as a C string: no control byte, space or bracket.
      const bool invalid =
          address->empty() || std::any_of(address->begin(), address->end(), [](char c) {
            const auto byte = static_cast<unsigned char>(c);
            return byte <= 0x20 || byte == 0x7f || c == '<' || c == '>';
          });
      if (invalid) {
        return "invalid envelope address '" + printable(*address) + "'";
      }
    }
    transfer.offset = 0;
    transfer.body_sent = false;
    transfer.last_reply.clear();
    transfer.failure_reply.clear();
    transfer.error[0] = '\0';
    const std::string from = "<" + envelope.from + ">";
    const std::string to = "<" + envelope.to + ">";
    transfer.recipients.reset(curl_slist_append(nullptr, to.c_str()));
    if (!transfer.recipients) {
      return "curl_slist_append failed";
    }
    CURL* easy = transfer.easy.get();
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, from.c_str());  // libcurl copies strings
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, transfer.recipients.get());
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE,
                     static_cast<curl_off_t>(envelope.message.size()));
    return {};
  }

  bool collect() {
    bool any = false;
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_.get(), &left)) {
      if (message->msg != CURLMSG_DONE) {
        continue;
      }
      CURL* easy = message->easy_handle;
      const CURLcode code = message->data.result;  // read before remove: `message` dies with it
      Transfer* raw = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &raw);
      std::unique_ptr<Transfer> transfer(raw);
      long reply = 0;
      curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &reply);
      curl_multi_remove_handle(multi_.get(), easy);
      --active_;
      any = true;
      auto result = classify(code, reply, *transfer);
      if (result.outcome != SendOutcome::delivered) {
        messaging::common::logger("smtp")->debug(
            "send failed provider={} outcome={} provider_fault={} detail={}", name_,
            result.outcome == SendOutcome::permanent ? "permanent" : "transient",
            result.provider_fault, result.detail);
      }
      auto done = std::move(transfer->job.done);
      release(std::move(transfer));
      notify_done(done, std::move(result));
    }
    return any;
  }

  void release(std::unique_ptr<Transfer> transfer) {
    transfer->job = Job{};  // the message bytes and callback go now, the handle stays warm
    transfer->recipients.reset();
    idle_.push_back(std::move(transfer));
  }

  const SmtpSettings settings_;
  std::string name_;
  bool implicit_tls_ = false;
  MultiHandle multi_;  // declared before idle_: destroyed after every easy handle

  std::mutex mutex_;
  std::deque<Job> incoming_;  // guarded by mutex_
  std::size_t waiting_ = 0;   // guarded by mutex_: sends accepted and not yet started
  bool stopping_ = false;     // guarded by mutex_

  // Sender thread only.
  std::vector<std::unique_ptr<Transfer>> idle_;
  std::size_t active_ = 0;

  std::thread thread_;  // last: starts after every member above exists
};

SmtpSender::SmtpSender(SmtpSettings settings) : impl_(std::make_unique<Impl>(std::move(settings))) {}

SmtpSender::~SmtpSender() = default;

void SmtpSender::send(SmtpEnvelope envelope, Callback done) {
  impl_->send(std::move(envelope), std::move(done));
}

const std::string& SmtpSender::name() const { return impl_->name(); }

}  // namespace notifs::worker
