#include "detail/asio.hpp"

#include "fakes/scripted_http_server.hpp"

#include <boost/asio/ssl.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <random>
#include <stdexcept>

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

namespace notifs::fakes {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

Reaction Reaction::respond(unsigned status, std::string body,
                           std::vector<std::pair<std::string, std::string>> headers) {
  Reaction reaction;
  reaction.kind = Kind::respond;
  reaction.status = status;
  reaction.body = std::move(body);
  reaction.headers = std::move(headers);
  return reaction;
}

Reaction Reaction::retry_after(unsigned status, std::string value) {
  return respond(status, R"({"success":false})", {{"Retry-After", std::move(value)}});
}

Reaction Reaction::close_connection() {
  Reaction reaction;
  reaction.kind = Kind::close_connection;
  return reaction;
}

Reaction Reaction::raw_bytes(std::string bytes) {
  Reaction reaction;
  reaction.kind = Kind::raw;
  reaction.raw = std::move(bytes);
  reaction.close_after = true;
  return reaction;
}

Reaction Reaction::after(std::chrono::milliseconds wait) && {
  stall = wait;
  return std::move(*this);
}

namespace {

class Session;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct X509ExtensionFree {
  void operator()(X509_EXTENSION* ext) const { X509_EXTENSION_free(ext); }
};
struct FileClose {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

[[noreturn]] void openssl_fail(const std::string& what) {
  throw std::runtime_error("ScriptedHttpServer TLS setup: " + what + " failed");
}

void add_extension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, X509ExtensionFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) openssl_fail("adding extension " + value);
}

// A throwaway self-signed certificate for the given names, and its key.
std::pair<std::unique_ptr<X509, X509Free>, std::unique_ptr<EVP_PKEY, PkeyFree>> make_identity(
    const TlsIdentity& identity) {
  std::unique_ptr<EVP_PKEY, PkeyFree> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) openssl_fail("key generation");
  std::unique_ptr<X509, X509Free> cert(X509_new());
  if (!cert) openssl_fail("X509_new");
  X509_set_version(cert.get(), 2);
  std::random_device seed;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(seed() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  const std::string common_name =
      identity.dns_names.empty() ? std::string("scripted-upstream") : identity.dns_names.front();
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  std::string san;
  for (const auto& dns : identity.dns_names) san += (san.empty() ? "" : ",") + ("DNS:" + dns);
  for (const auto& ip : identity.ip_addresses) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  if (!san.empty()) add_extension(cert.get(), NID_subject_alt_name, san);
  // Its own issuer: the client trusts it as an anchor through tls_ca_file.
  add_extension(cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) openssl_fail("signing");
  return {std::move(cert), std::move(key)};
}

}  // namespace

struct ScriptedHttpServer::Impl {
  ~Impl() {
    if (!ca_path.empty()) {
      std::error_code ignored;
      std::filesystem::remove(ca_path, ignored);
    }
  }

  void enable_tls(const TlsIdentity& identity);

  asio::io_context ioc;
  std::optional<ssl::context> tls;
  std::string ca_path;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor{ioc};
  std::uint16_t port = 0;
  std::thread thread;

  mutable std::mutex mutex;
  mutable std::condition_variable arrived;
  std::deque<Reaction> script;
  Reaction fallback = Reaction::respond(200);
  std::vector<RecordedRequest> recorded;
  std::size_t connections = 0;
  std::size_t failed_handshakes = 0;

  std::vector<std::weak_ptr<Session>> sessions;  // io thread only

  void listen(std::uint16_t on_port);
  void accept();
  void close_all();  // io thread only
  Reaction next(RecordedRequest request);

  // Runs `fn` on the io thread and waits for it.
  template <typename Fn>
  void run_on_io(Fn fn) {
    std::promise<void> done;
    auto future = done.get_future();
    asio::post(ioc, [&] {
      try {
        fn();
        done.set_value();
      } catch (...) {
        done.set_exception(std::current_exception());
      }
    });
    future.get();
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Next = std::function<Reaction(RecordedRequest)>;
  using HandshakeFailed = std::function<void()>;
  Session(Next next, tcp::socket socket, std::uint64_t index, ssl::context* tls,
          HandshakeFailed on_handshake_failed)
      : next_(std::move(next)),
        on_handshake_failed_(std::move(on_handshake_failed)),
        timer_(socket.get_executor()),
        index_(index) {
    if (tls != nullptr) {
      tls_.emplace(std::move(socket), *tls);
    } else {
      socket_.emplace(std::move(socket));
    }
  }

  void start() {
    if (!tls_) {
      read();
      return;
    }
    tls_->async_handshake(ssl::stream_base::server,
                          [self = shared_from_this()](beast::error_code ec) {
                            if (ec) {
                              self->on_handshake_failed_();
                              self->close();
                              return;
                            }
                            self->read();
                          });
  }

  void close() {
    beast::error_code ignored;
    timer_.cancel();
    auto& sock = lowest();
    if (sock.is_open()) {
      sock.shutdown(tcp::socket::shutdown_both, ignored);
      sock.close(ignored);
    }
  }

 private:
  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *socket_; }

  // Runs `fn` with whichever stream this session speaks.
  template <typename Fn>
  void with_stream(Fn&& fn) {
    if (tls_) {
      fn(*tls_);
    } else {
      fn(*socket_);
    }
  }

  void read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024 * 1024);
    with_stream([this](auto& stream) {
      bhttp::async_read(stream, buffer_, *parser_,
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          self->on_read(ec);
                        });
    });
  }

  void on_read(beast::error_code ec) {
    if (ec) {
      close();
      return;
    }
    auto request = parser_->release();
    RecordedRequest recorded;
    recorded.method = std::string(request.method_string());
    recorded.target = std::string(request.target());
    for (const auto& field : request) {
      recorded.headers.add(std::string(field.name_string()), std::string(field.value()));
    }
    recorded.body = request.body();
    recorded.connection = index_;
    const bool keep_alive = request.keep_alive();
    const bool head = request.method() == bhttp::verb::head;
    Reaction reaction = next_(std::move(recorded));
    if (reaction.stall.count() > 0) {
      timer_.expires_after(reaction.stall);
      timer_.async_wait([self = shared_from_this(), reaction, keep_alive,
                         head](beast::error_code timer_ec) {
        if (timer_ec) return;  // stopped while stalling
        self->act(reaction, keep_alive, head);
      });
      return;
    }
    act(reaction, keep_alive, head);
  }

  void act(const Reaction& reaction, bool keep_alive, bool head) {
    if (!lowest().is_open()) return;
    switch (reaction.kind) {
      case Reaction::Kind::close_connection:
        close();
        return;
      case Reaction::Kind::raw: {
        auto bytes = std::make_shared<std::string>(reaction.raw);
        with_stream([&](auto& stream) {
          asio::async_write(stream, asio::buffer(*bytes),
                            [self = shared_from_this(), bytes,
                             close = reaction.close_after](beast::error_code ec, std::size_t) {
                              if (ec || close) {
                                self->close();
                                return;
                              }
                              self->read();
                            });
        });
        return;
      }
      case Reaction::Kind::respond:
        break;
    }
    auto response = std::make_shared<bhttp::response<bhttp::string_body>>();
    response->version(11);
    response->result(reaction.status);
    response->set(bhttp::field::server, "scripted-upstream");
    bool has_type = false;
    for (const auto& [name, value] : reaction.headers) {
      response->insert(name, value);
      has_type = has_type || beast::iequals(name, "content-type");
    }
    if (!has_type) response->set(bhttp::field::content_type, "application/json");
    response->body() = reaction.body;
    const bool keep = keep_alive && !reaction.close_after;
    response->keep_alive(keep);
    response->prepare_payload();
    if (head) response->body().clear();  // Content-Length stays that of the GET
    with_stream([&](auto& stream) {
      bhttp::async_write(stream, *response,
                         [self = shared_from_this(), response, keep](beast::error_code ec,
                                                                     std::size_t) {
                           if (ec || !keep) {
                             self->close();
                             return;
                           }
                           self->read();
                         });
    });
  }

  Next next_;
  HandshakeFailed on_handshake_failed_;
  std::optional<tcp::socket> socket_;             // plain HTTP
  std::optional<ssl::stream<tcp::socket>> tls_;   // HTTPS
  asio::steady_timer timer_;
  std::uint64_t index_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
};

}  // namespace

void ScriptedHttpServer::Impl::listen(std::uint16_t on_port) {
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), on_port);
  acceptor.open(endpoint.protocol());
  // Restarting on the same port must not wait for TIME_WAIT of the old connections.
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(asio::socket_base::max_listen_connections);
  port = acceptor.local_endpoint().port();
  accept();
}

void ScriptedHttpServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec) return;  // closed by stop()
    std::uint64_t index = 0;
    {
      std::lock_guard lock(mutex);
      index = ++connections;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto session = std::make_shared<Session>(
        [this](RecordedRequest request) { return next(std::move(request)); }, std::move(socket),
        index, tls ? &*tls : nullptr, [this] {
          std::lock_guard lock(mutex);
          ++failed_handshakes;
        });
    std::erase_if(sessions, [](const auto& weak) { return weak.expired(); });
    sessions.push_back(session);
    session->start();
    accept();
  });
}

void ScriptedHttpServer::Impl::close_all() {
  beast::error_code ignored;
  acceptor.close(ignored);
  for (auto& weak : sessions) {
    if (auto session = weak.lock()) session->close();
  }
  sessions.clear();
}

Reaction ScriptedHttpServer::Impl::next(RecordedRequest request) {
  std::lock_guard lock(mutex);
  recorded.push_back(std::move(request));
  arrived.notify_all();
  if (script.empty()) return fallback;
  Reaction reaction = std::move(script.front());
  script.pop_front();
  return reaction;
}

void ScriptedHttpServer::Impl::enable_tls(const TlsIdentity& identity) {
  auto [cert, key] = make_identity(identity);
  tls.emplace(ssl::context::tls_server);
  if (SSL_CTX_use_certificate(tls->native_handle(), cert.get()) != 1 ||
      SSL_CTX_use_PrivateKey(tls->native_handle(), key.get()) != 1) {
    openssl_fail("loading the certificate");
  }
  std::random_device seed;
  const auto path = std::filesystem::temp_directory_path() /
                    ("scripted-upstream-" + std::to_string(seed()) + "-" +
                     std::to_string(seed()) + ".pem");
  std::unique_ptr<std::FILE, FileClose> file(std::fopen(path.c_str(), "w"));
  if (!file || PEM_write_X509(file.get(), cert.get()) != 1) openssl_fail("writing " + path.string());
  ca_path = path.string();
}

ScriptedHttpServer::ScriptedHttpServer(TlsIdentity tls) : impl_(std::make_shared<Impl>()) {
  impl_->enable_tls(tls);
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->listen(0);
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

ScriptedHttpServer::ScriptedHttpServer() : impl_(std::make_shared<Impl>()) {
  impl_->work.emplace(impl_->ioc.get_executor());
  impl_->listen(0);
  impl_->thread = std::thread([impl = impl_.get()] { impl->ioc.run(); });
}

ScriptedHttpServer::~ScriptedHttpServer() {
  impl_->run_on_io([impl = impl_.get()] { impl->close_all(); });
  impl_->work.reset();
  impl_->ioc.stop();
  impl_->thread.join();
}

std::uint16_t ScriptedHttpServer::port() const { return impl_->port; }

std::string ScriptedHttpServer::url() const {
  return (impl_->tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(impl_->port);
}

std::string ScriptedHttpServer::ca_file() const { return impl_->ca_path; }

std::size_t ScriptedHttpServer::failed_handshakes() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->failed_handshakes;
}

void ScriptedHttpServer::push(Reaction reaction) {
  std::lock_guard lock(impl_->mutex);
  impl_->script.push_back(std::move(reaction));
}

void ScriptedHttpServer::respond(unsigned status, std::string body,
                                 std::vector<std::pair<std::string, std::string>> headers) {
  push(Reaction::respond(status, std::move(body), std::move(headers)));
}

void ScriptedHttpServer::stall(std::chrono::milliseconds wait, unsigned status) {
  push(Reaction::respond(status).after(wait));
}

void ScriptedHttpServer::close_connection() { push(Reaction::close_connection()); }

void ScriptedHttpServer::set_default(Reaction reaction) {
  std::lock_guard lock(impl_->mutex);
  impl_->fallback = std::move(reaction);
}

std::size_t ScriptedHttpServer::script_left() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->script.size();
}

std::vector<RecordedRequest> ScriptedHttpServer::requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded;
}

std::size_t ScriptedHttpServer::request_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->recorded.size();
}

std::size_t ScriptedHttpServer::connection_count() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->connections;
}

bool ScriptedHttpServer::wait_for_requests(std::size_t count,
                                           std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex);
  return impl_->arrived.wait_for(lock, timeout, [&] { return impl_->recorded.size() >= count; });
}

void ScriptedHttpServer::stop() {
  impl_->run_on_io([impl = impl_.get()] { impl->close_all(); });
}

void ScriptedHttpServer::restart() {
  impl_->run_on_io([impl = impl_.get()] {
    impl->close_all();
    impl->listen(impl->port);
  });
}

}  // namespace notifs::fakes
