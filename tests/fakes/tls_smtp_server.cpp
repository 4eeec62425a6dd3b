#include "fakes/tls_smtp_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

namespace notifs::fakes {
namespace {

constexpr std::size_t kMaxLine = 64 * 1024;
constexpr std::size_t kMaxMessage = 16 * 1024 * 1024;

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

std::string upper(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

bool starts_with_command(const std::string& line, std::string_view command) {
  return upper(line.substr(0, command.size())) == command;
}

// One client connection, plain or encrypted, read a line at a time.
class Conn {
 public:
  explicit Conn(int fd) : fd_(fd) {}
  ~Conn() {
    if (ssl_) SSL_shutdown(ssl_.get());  // best effort: the peer may be gone
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  bool tls() const { return ssl_ != nullptr; }

  // Server side of a TLS handshake on the socket. Whatever the client sent before it is
  // dropped (RFC 3207: nothing from the plain phase may carry over).
  bool start_tls(SSL_CTX* ctx) {
    buffer_.clear();
    std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx));
    if (!ssl || SSL_set_fd(ssl.get(), fd_) != 1) return false;
    if (SSL_accept(ssl.get()) != 1) {
      ERR_clear_error();
      return false;
    }
    ssl_ = std::move(ssl);
    return true;
  }

  bool write(std::string_view text) {
    while (!text.empty()) {
      long n = 0;
      if (ssl_) {
        n = SSL_write(ssl_.get(), text.data(), static_cast<int>(text.size()));
      } else {
        n = ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL);
      }
      if (n <= 0) return false;
      text.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // The next line without its CRLF (or bare LF); false on end of stream, error or a line
  // over kMaxLine.
  bool read_line(std::string& line) {
    for (;;) {
      const auto end = buffer_.find('\n');
      if (end != std::string::npos) {
        line = buffer_.substr(0, end);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        buffer_.erase(0, end + 1);
        return true;
      }
      if (buffer_.size() > kMaxLine) return false;
      char chunk[4096];
      long n = 0;
      if (ssl_) {
        n = SSL_read(ssl_.get(), chunk, sizeof chunk);
      } else {
        n = ::recv(fd_, chunk, sizeof chunk, 0);
      }
      if (n <= 0) return false;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_;
  std::unique_ptr<SSL, SslFree> ssl_;
  std::string buffer_;
};

// RFC 4616: base64 of "authzid NUL user NUL password"; user and password, or nothing.
std::optional<std::pair<std::string, std::string>> decode_plain(const std::string& base64) {
  if (base64.empty() || base64.size() % 4 != 0) return std::nullopt;
  std::string decoded(base64.size() / 4 * 3, '\0');
  const int size = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(decoded.data()),
                                   reinterpret_cast<const unsigned char*>(base64.data()),
                                   static_cast<int>(base64.size()));
  if (size < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding's bytes too.
  const auto padding = static_cast<std::size_t>(std::count(base64.end() - 2, base64.end(), '='));
  decoded.resize(static_cast<std::size_t>(size) - padding);
  const auto first = decoded.find('\0');
  const auto second = first == std::string::npos ? first : decoded.find('\0', first + 1);
  if (second == std::string::npos) return std::nullopt;
  return std::make_pair(decoded.substr(first + 1, second - first - 1), decoded.substr(second + 1));
}

}  // namespace

struct TlsSmtpServer::Impl {
  SmtpTls mode;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx;
  int listen_fd = -1;
  std::uint16_t port = 0;
  std::atomic<bool> stopping{false};
  std::thread acceptor;

  mutable std::mutex mutex;
  mutable std::condition_variable arrived;
  std::vector<ReceivedMail> mails;
  std::vector<std::string> commands;
  std::vector<SmtpLogin> logins;
  std::size_t connections = 0;
  std::size_t failed_handshakes = 0;
  std::vector<int> open_fds;           // sessions' sockets, shut down on stop
  std::vector<std::thread> sessions;   // joined on stop

  void accept_loop() {
    while (!stopping) {
      pollfd waiting{listen_fd, POLLIN, 0};
      if (::poll(&waiting, 1, 100) <= 0) continue;
      const int fd = ::accept(listen_fd, nullptr, nullptr);
      if (fd < 0) continue;
      // A client that stalls must not hold a session thread past the test.
      timeval timeout{10, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
      const std::lock_guard lock(mutex);
      if (stopping) {
        ::close(fd);
        break;
      }
      ++connections;
      open_fds.push_back(fd);
      sessions.emplace_back([this, fd] { serve(fd); });
    }
  }

  void handshake_failed() {
    const std::lock_guard lock(mutex);
    ++failed_handshakes;
  }

  void serve(int fd) {
    // SSL_write on a socket the client has closed raises SIGPIPE in this thread; blocked
    // here, it cannot end the test process.
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
    {
      Conn conn(fd);
      if (mode == SmtpTls::implicit && !conn.start_tls(ctx.get())) {
        handshake_failed();
      } else {
        converse(conn);
      }
    }
    const std::lock_guard lock(mutex);
    open_fds.erase(std::remove(open_fds.begin(), open_fds.end(), fd), open_fds.end());
    ::close(fd);
  }

  void converse(Conn& conn) {
    if (!conn.write("220 localhost ESMTP notifs TLS test server\r\n")) return;
    ReceivedMail mail;
    std::string line;
    while (conn.read_line(line)) {
      {
        const std::lock_guard lock(mutex);
        commands.push_back(line);
      }
      bool ok = true;
      if (starts_with_command(line, "EHLO")) {
        std::string reply = "250-localhost\r\n";
        if (mode == SmtpTls::starttls && !conn.tls()) reply += "250-STARTTLS\r\n";
        if (conn.tls() || mode == SmtpTls::none) reply += "250-AUTH PLAIN\r\n";
        reply += "250-8BITMIME\r\n250 SIZE 16777216\r\n";
        ok = conn.write(reply);
      } else if (starts_with_command(line, "HELO")) {
        ok = conn.write("250 localhost\r\n");
      } else if (starts_with_command(line, "STARTTLS")) {
        if (mode != SmtpTls::starttls || conn.tls()) {
          ok = conn.write("502 5.5.1 STARTTLS not available\r\n");
        } else {
          if (!conn.write("220 2.0.0 Ready to start TLS\r\n")) return;
          if (!conn.start_tls(ctx.get())) {
            handshake_failed();
            return;
          }
          mail = ReceivedMail{};  // RFC 3207: the session starts over
        }
      } else if (starts_with_command(line, "AUTH PLAIN")) {
        std::string response = line.size() > 11 ? line.substr(11) : std::string();
        if (response.empty()) {
          if (!conn.write("334 \r\n") || !conn.read_line(response)) return;
        }
        const auto login = decode_plain(response);
        if (!login) {
          ok = conn.write("501 5.5.2 Cannot decode the response\r\n");
        } else {
          {
            const std::lock_guard lock(mutex);
            logins.push_back(SmtpLogin{login->first, login->second, conn.tls()});
          }
          ok = conn.write("235 2.7.0 Authentication successful\r\n");
        }
      } else if (starts_with_command(line, "MAIL FROM:")) {
        mail = ReceivedMail{};
        mail.mail_from = line.substr(10);
        ok = conn.write("250 2.1.0 Ok\r\n");
      } else if (starts_with_command(line, "RCPT TO:")) {
        mail.rcpt_to = line.substr(8);
        ok = conn.write("250 2.1.5 Ok\r\n");
      } else if (starts_with_command(line, "DATA")) {
        if (!conn.write("354 End data with <CR><LF>.<CR><LF>\r\n")) return;
        mail.over_tls = conn.tls();
        std::string body_line;
        bool complete = false;
        while (conn.read_line(body_line)) {
          if (body_line == ".") {
            complete = true;
            break;
          }
          if (!body_line.empty() && body_line.front() == '.') body_line.erase(0, 1);
          mail.data += body_line + "\r\n";
          if (mail.data.size() > kMaxMessage) return;
        }
        if (!complete) return;
        {
          const std::lock_guard lock(mutex);
          mails.push_back(mail);
          arrived.notify_all();
        }
        ok = conn.write("250 2.0.0 Ok: queued\r\n");
      } else if (starts_with_command(line, "RSET") || starts_with_command(line, "NOOP")) {
        mail = ReceivedMail{};
        ok = conn.write("250 2.0.0 Ok\r\n");
      } else if (starts_with_command(line, "QUIT")) {
        conn.write("221 2.0.0 Bye\r\n");
        return;
      } else {
        ok = conn.write("500 5.5.2 Error: command not recognized\r\n");
      }
      if (!ok) return;
    }
  }
};

TlsSmtpServer::TlsSmtpServer(SmtpTls mode, TlsIdentityFiles identity)
    : impl_(std::make_unique<Impl>()) {
  impl_->mode = mode;
  if (mode != SmtpTls::none) {
    impl_->ctx.reset(SSL_CTX_new(TLS_server_method()));
    if (!impl_->ctx ||
        SSL_CTX_use_certificate_file(impl_->ctx.get(), identity.cert_file.c_str(),
                                     SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(impl_->ctx.get(), identity.key_file.c_str(),
                                    SSL_FILETYPE_PEM) != 1) {
      ERR_clear_error();
      throw std::runtime_error("TlsSmtpServer: cannot load " + identity.cert_file);
    }
  }
  impl_->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (impl_->listen_fd < 0 ||
      ::bind(impl_->listen_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(impl_->listen_fd, 16) != 0 ||
      ::getsockname(impl_->listen_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
    throw std::runtime_error("TlsSmtpServer: cannot listen on 127.0.0.1");
  }
  impl_->port = ntohs(address.sin_port);
  impl_->acceptor = std::thread([impl = impl_.get()] { impl->accept_loop(); });
}

TlsSmtpServer::~TlsSmtpServer() {
  impl_->stopping = true;
  impl_->acceptor.join();
  std::vector<std::thread> sessions;
  {
    const std::lock_guard lock(impl_->mutex);
    for (const int fd : impl_->open_fds) ::shutdown(fd, SHUT_RDWR);
    sessions.swap(impl_->sessions);
  }
  for (auto& session : sessions) session.join();
  ::close(impl_->listen_fd);
}

std::uint16_t TlsSmtpServer::port() const { return impl_->port; }

std::string TlsSmtpServer::url(const std::string& host) const {
  return std::string(impl_->mode == SmtpTls::implicit ? "smtps://" : "smtp://") + host + ":" +
         std::to_string(impl_->port);
}

std::vector<ReceivedMail> TlsSmtpServer::messages() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->mails;
}

bool TlsSmtpServer::wait_for_messages(std::size_t count, std::chrono::milliseconds within) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->arrived.wait_for(lock, within, [&] { return impl_->mails.size() >= count; });
}

std::size_t TlsSmtpServer::connections() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->connections;
}

std::size_t TlsSmtpServer::failed_handshakes() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->failed_handshakes;
}

std::vector<SmtpLogin> TlsSmtpServer::logins() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->logins;
}

std::vector<std::string> TlsSmtpServer::commands() const {
  const std::lock_guard lock(impl_->mutex);
  return impl_->commands;
}

}  // namespace notifs::fakes
