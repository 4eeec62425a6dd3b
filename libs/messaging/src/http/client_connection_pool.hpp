#pragma once

// Private to ServiceClient: one keep-alive connection to the upstream and the pool of idle
// ones. Includes Asio, so only .cpp files of src/http include it.

#include "detail/asio.hpp"

#include <boost/asio/ssl.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

namespace notifs::messaging::http::detail {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;

// A TCP (or TLS over TCP) connection with its read buffer. It has no executor of its own:
// the socket runs on the client's io_context and each user binds its handlers to its own
// strand. Only one call uses a connection at a time (it is taken out of the pool), which is
// what makes that safe.
class ClientConnection {
 public:
  ClientConnection(const asio::any_io_executor& executor, ssl::context* tls, std::uint64_t id);
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : socket_; }
  ssl::stream<tcp::socket>* tls() { return tls_ ? &*tls_ : nullptr; }
  boost::beast::flat_buffer& buffer() { return buffer_; }
  std::uint64_t id() const { return id_; }
  std::uint64_t requests() const { return requests_; }
  void count_request() { ++requests_; }

  // True when a pooled connection still looks usable: no EOF or error, and on plain HTTP
  // nothing to read (an idle HTTP/1.1 connection has no business receiving bytes; on TLS a
  // late session ticket may legitimately be pending). A non-blocking peek: it narrows the
  // keep-alive race without closing it, so callers still handle a stale connection.
  bool looks_alive();
  // Closes the socket; pending operations complete with operation_aborted. Idempotent.
  void close();

 private:
  std::uint64_t id_;
  std::uint64_t requests_ = 0;
  tcp::socket socket_;                             // used when tls_ is empty
  std::optional<ssl::stream<tcp::socket>> tls_;    // owns its own socket
  boost::beast::flat_buffer buffer_;
};

struct PoolSettings {
  std::size_t max_idle = 64;
  std::chrono::milliseconds idle_timeout{30000};
};

// Idle keep-alive connections to one upstream, most recently used first: the warmest
// connection is the least likely to have been closed by the server's idle timer. Older
// than idle_timeout, or beyond max_idle, they are closed. Thread-safe (one mutex; closing an
// idle socket does not block).
class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ConnectionPool(PoolSettings settings);

  // The freshest usable idle connection, or null.
  std::shared_ptr<ClientConnection> take();
  // Returns a connection after a complete keep-alive exchange.
  void put(std::shared_ptr<ClientConnection> connection);
  // Closes idle connections older than idle_timeout; returns how many.
  std::size_t sweep();
  // Closes every idle connection and refuses new ones (shutdown).
  void close_all();
  std::size_t idle_count() const;

 private:
  struct Idle {
    std::shared_ptr<ClientConnection> connection;
    Clock::time_point since;
  };
  std::size_t sweep_locked(Clock::time_point now);

  PoolSettings settings_;
  mutable std::mutex mutex_;
  std::deque<Idle> idle_;  // front = most recently returned
  bool closed_ = false;
};

}  // namespace notifs::messaging::http::detail
