#include "detail/asio.hpp"

#include "http/client_connection_pool.hpp"

namespace notifs::messaging::http::detail {

ClientConnection::ClientConnection(const asio::any_io_executor& executor, ssl::context* tls,
                                   std::uint64_t id)
    : id_(id), socket_(executor) {
  if (tls != nullptr) tls_.emplace(executor, *tls);
}

ClientConnection::~ClientConnection() { close(); }

bool ClientConnection::looks_alive() {
  auto& sock = socket();
  if (!sock.is_open()) return false;
  boost::system::error_code ec;
  sock.non_blocking(true, ec);
  if (ec) return false;
  char byte = 0;
  const auto n = sock.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
  boost::system::error_code ignored;
  sock.non_blocking(false, ignored);
  // would_block is the healthy answer: nothing pending, peer still there.
  if (ec == asio::error::would_block || ec == asio::error::try_again) return true;
  // Pending bytes on a TLS connection may be a late session ticket, which the next read
  // consumes; on plain HTTP they can only be garbage or the start of a close.
  if (!ec && n > 0 && tls_) return true;
  return false;
}

void ClientConnection::close() {
  boost::system::error_code ignored;
  auto& sock = socket();
  if (sock.is_open()) {
    sock.shutdown(tcp::socket::shutdown_both, ignored);
    sock.close(ignored);
  }
}

ConnectionPool::ConnectionPool(PoolSettings settings) : settings_(settings) {}

std::shared_ptr<ClientConnection> ConnectionPool::take() {
  std::lock_guard lock(mutex_);
  sweep_locked(Clock::now());
  while (!idle_.empty()) {
    auto connection = std::move(idle_.front().connection);
    idle_.pop_front();
    if (connection->looks_alive()) return connection;
    connection->close();
  }
  return nullptr;
}

void ConnectionPool::put(std::shared_ptr<ClientConnection> connection) {
  std::lock_guard lock(mutex_);
  if (closed_ || settings_.max_idle == 0) {
    connection->close();
    return;
  }
  idle_.push_front({std::move(connection), Clock::now()});
  while (idle_.size() > settings_.max_idle) {
    idle_.back().connection->close();
    idle_.pop_back();
  }
}

std::size_t ConnectionPool::sweep() {
  std::lock_guard lock(mutex_);
  return sweep_locked(Clock::now());
}

std::size_t ConnectionPool::sweep_locked(Clock::time_point now) {
  std::size_t closed = 0;
  // Oldest at the back.
  while (!idle_.empty() && now - idle_.back().since >= settings_.idle_timeout) {
    idle_.back().connection->close();
    idle_.pop_back();
    ++closed;
  }
  return closed;
}

void ConnectionPool::close_all() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  for (auto& idle : idle_) idle.connection->close();
  idle_.clear();
}

std::size_t ConnectionPool::idle_count() const {
  std::lock_guard lock(mutex_);
  return idle_.size();
}

}  // namespace notifs::messaging::http::detail
