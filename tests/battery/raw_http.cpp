#include "raw_http.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace notifs::tests::battery {

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
           return lower(x) == lower(y);
         });
}

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 60000));
}

std::string trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return std::string(text);
}

// Parses the status line and header block (without the final CRLF CRLF).
bool parse_head(std::string_view head, RawResponse& out) {
  const auto line_end = head.find("\r\n");
  const std::string_view status_line = head.substr(0, line_end);
  if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1.") {
    return false;
  }
  const auto code = status_line.substr(9, 3);
  const auto [ptr, ec] = std::from_chars(code.data(), code.data() + 3, out.status);
  if (ec != std::errc() || ptr != code.data() + 3) {
    return false;
  }
  std::size_t pos = line_end == std::string_view::npos ? head.size() : line_end + 2;
  while (pos < head.size()) {
    auto end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    const auto line = head.substr(pos, end - pos);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      return false;
    }
    out.headers.emplace_back(std::string(line.substr(0, colon)), trim(line.substr(colon + 1)));
    pos = end + 2;
  }
  return true;
}

}  // namespace

std::optional<Endpoint> parse_base_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) return std::nullopt;
  url.remove_prefix(kScheme.size());
  while (!url.empty() && url.back() == '/') url.remove_suffix(1);
  const auto colon = url.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  Endpoint endpoint;
  endpoint.host = std::string(url.substr(0, colon));
  unsigned port = 0;
  const auto digits = url.substr(colon + 1);
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || port == 0 || port > 65535) {
    return std::nullopt;
  }
  endpoint.port = static_cast<std::uint16_t>(port);
  return endpoint;
}

std::optional<std::string> RawResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (iequals(key, name)) return value;
  }
  return std::nullopt;
}

std::string_view to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::response: return "response";
    case Outcome::timed_out: return "no answer before the deadline";
    case Outcome::closed: return "connection closed without a response";
    case Outcome::connect_failed: return "connect failed";
    case Outcome::garbled: return "not an HTTP response";
  }
  return "?";
}

Connection::~Connection() { close(); }

Connection::Connection(Connection&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)) {}

Connection& Connection::operator=(Connection&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::move(other.buffer_);
  }
  return *this;
}

void Connection::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void Connection::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

Connection Connection::open(const Endpoint& endpoint, std::chrono::milliseconds timeout,
                            std::string& error) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return Connection();
  }
  Connection connection(fd);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(endpoint.port);
  if (::inet_pton(AF_INET, endpoint.host.c_str(), &address.sin_addr) != 1) {
    error = "not an IPv4 address: " + endpoint.host;
    return Connection();
  }
  // sockaddr_in is what connect() takes through its generic pointer type.
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0 &&
      errno != EINPROGRESS) {
    error = std::string("connect: ") + std::strerror(errno);
    return Connection();
  }
  pollfd waiting{fd, POLLOUT, 0};
  const int ready = ::poll(&waiting, 1, static_cast<int>(timeout.count()));
  int so_error = 0;
  socklen_t length = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length);
  if (ready <= 0 || so_error != 0) {
    error = ready <= 0 ? "connect timed out" : std::string("connect: ") + std::strerror(so_error);
    return Connection();
  }
  return connection;
}

bool Connection::send_all(std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    const auto sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(sent));
      continue;
    }
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd waiting{fd_, POLLOUT, 0};
      if (::poll(&waiting, 1, remaining_ms(deadline)) <= 0) {
        last_error_ = "send timed out";
        return false;
      }
      continue;
    }
    last_error_ = std::string("send: ") + std::strerror(errno);
    return false;
  }
  return true;
}

long Connection::fill(Clock::time_point deadline) {
  char chunk[16384];
  while (true) {
    const auto got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(got));
      return got;
    }
    if (got == 0) {
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      pollfd waiting{fd_, POLLIN, 0};
      const int ready = ::poll(&waiting, 1, remaining_ms(deadline));
      if (ready <= 0) {
        last_error_ = "timed out";
        return -1;
      }
      continue;
    }
    // A reset is the server closing: what it sent before is already in buffer_.
    last_error_ = std::string("recv: ") + std::strerror(errno);
    return errno == ECONNRESET ? 0 : -1;
  }
}

Exchange Connection::read_response(Clock::time_point deadline, bool head_request) {
  const auto started = Clock::now();
  Exchange result;
  auto finish = [&](Outcome outcome, std::string error = {}) {
    result.outcome = outcome;
    result.error = std::move(error);
    result.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
    return result;
  };
  // Header block.
  std::size_t head_end;
  while ((head_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
    const auto got = fill(deadline);
    if (got == 0) return finish(buffer_.empty() ? Outcome::closed : Outcome::garbled, buffer_);
    if (got < 0) return finish(Outcome::timed_out, last_error_);
  }
  if (!parse_head(std::string_view(buffer_).substr(0, head_end), result.response)) {
    return finish(Outcome::garbled, buffer_.substr(0, 200));
  }
  std::size_t pos = head_end + 4;
  auto& response = result.response;
  const bool no_body = head_request || response.status == 204 || response.status == 304 ||
                       (response.status >= 100 && response.status < 200);
  const auto te = response.header("Transfer-Encoding");
  const auto cl = response.header("Content-Length");
  if (no_body) {
    buffer_.erase(0, pos);
    return finish(Outcome::response);
  }
  if (te && te->find("chunked") != std::string::npos) {
    while (true) {
      std::size_t line_end;
      while ((line_end = buffer_.find("\r\n", pos)) == std::string::npos) {
        const auto got = fill(deadline);
        if (got <= 0) return finish(got == 0 ? Outcome::closed : Outcome::timed_out, "in a chunk");
      }
      std::size_t size = 0;
      const auto* first = buffer_.data() + pos;
      const auto [ptr, ec] = std::from_chars(first, buffer_.data() + line_end, size, 16);
      if (ec != std::errc() || ptr == first) return finish(Outcome::garbled, "bad chunk size");
      pos = line_end + 2;
      if (size == 0) {
        // Trailers (none expected) end with an empty line.
        while (buffer_.find("\r\n", pos) == std::string::npos) {
          if (fill(deadline) <= 0) return finish(Outcome::closed, "in the trailer");
        }
        pos = buffer_.find("\r\n", pos) + 2;
        break;
      }
      while (buffer_.size() < pos + size + 2) {
        const auto got = fill(deadline);
        if (got <= 0) return finish(got == 0 ? Outcome::closed : Outcome::timed_out, "in a chunk");
      }
      response.body.append(buffer_, pos, size);
      pos += size + 2;
    }
    buffer_.erase(0, pos);
    return finish(Outcome::response);
  }
  if (cl) {
    std::size_t length = 0;
    const auto [ptr, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), length);
    if (ec != std::errc() || ptr != cl->data() + cl->size()) {
      return finish(Outcome::garbled, "bad Content-Length " + *cl);
    }
    while (buffer_.size() < pos + length) {
      const auto got = fill(deadline);
      if (got <= 0) return finish(got == 0 ? Outcome::closed : Outcome::timed_out, "in the body");
    }
    response.body = buffer_.substr(pos, length);
    buffer_.erase(0, pos + length);
    return finish(Outcome::response);
  }
  // Neither: the body runs to the end of the connection.
  while (true) {
    const auto got = fill(deadline);
    if (got == 0) break;
    if (got < 0) return finish(Outcome::timed_out, "body without a length");
  }
  response.body = buffer_.substr(pos);
  buffer_.clear();
  return finish(Outcome::response);
}

bool Connection::wait_closed(Clock::time_point deadline, std::string& received) {
  while (true) {
    const auto before = buffer_.size();
    const auto got = fill(deadline);
    received.append(buffer_, before, std::string::npos);
    buffer_.clear();
    if (got == 0) return true;
    if (got < 0) return false;
  }
}

Exchange exchange_once(const Endpoint& endpoint, std::string_view request,
                       std::chrono::milliseconds timeout, bool head_request) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  Exchange result;
  std::string error;
  auto connection = Connection::open(endpoint, timeout, error);
  if (!connection.is_open()) {
    result.outcome = Outcome::connect_failed;
    result.error = error;
    return result;
  }
  // A server may answer (413, 431, 400) and close before the request is all sent: the
  // answer is still there to read, so a failed send is not the end of the exchange.
  connection.send_all(request, deadline);
  result = connection.read_response(deadline, head_request);
  result.elapsed = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
  return result;
}

std::string build_request(std::string_view method, std::string_view target,
                          const std::vector<std::pair<std::string, std::string>>& headers,
                          std::string_view body) {
  std::string out;
  out.reserve(256 + body.size());
  out.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  bool has_length = false;
  for (const auto& [name, value] : headers) {
    if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) has_length = true;
    out.append(name).append(": ").append(value).append("\r\n");
  }
  if (!body.empty() && !has_length) {
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  }
  out.append("\r\n").append(body);
  return out;
}

}  // namespace notifs::tests::battery
