#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "notifs/messaging/http/message.hpp"

namespace notifs::fakes {

// One request as the fake upstream received it.
struct RecordedRequest {
  std::string method;  // as sent, e.g. "GET"
  std::string target;
  messaging::http::Headers headers;
  std::string body;
  std::uint64_t connection = 0;  // 1-based index of the accepted connection it came on
};

// What the fake upstream does with one request.
struct Reaction {
  enum class Kind {
    respond,           // send a response
    close_connection,  // close the connection without a byte of response
    raw,               // send `raw` as is (not necessarily HTTP), then close unless
                       // close_after is false (then read the next request)
  };
  Kind kind = Kind::respond;
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds stall{0};  // wait this long before reacting
  bool close_after = false;            // respond with Connection: close, then close (raw: close)
  std::string raw;

  static Reaction respond(unsigned status, std::string body = "{}",
                          std::vector<std::pair<std::string, std::string>> headers = {});
  static Reaction retry_after(unsigned status, std::string value);
  static Reaction close_connection();
  static Reaction raw_bytes(std::string bytes);
  // Stalls before reacting (a slow upstream; a stalled one when longer than the test).
  Reaction after(std::chrono::milliseconds wait) &&;
};

// Makes the fake upstream speak HTTPS with a fresh self-signed certificate (EC P-256, valid
// for an hour) naming these hosts; trust it in the client with tls_ca_file = ca_file().
struct TlsIdentity {
  std::vector<std::string> dns_names{"localhost"};
  std::vector<std::string> ip_addresses{"127.0.0.1"};
};

// A fake upstream HTTP/1.1 server for ServiceClient tests, written on raw Asio/Beast (not
// our HttpServer, so the client is not tested against itself). It listens on 127.0.0.1 on a
// port the OS picks and runs its own io thread.
//
// Each request takes the next scripted Reaction (FIFO); when the script is empty the
// default reaction applies (200 "{}" unless set). Every request is recorded, and accepted
// connections are counted, so tests can prove retries, headers and keep-alive reuse.
// stop() makes the upstream go away (listener and every connection closed; connects are
// refused); restart() brings it back on the same port.
//
// Connections are counted when accepted (before any TLS handshake).
//
// Thread-safe: scripting and inspection from the test thread while the io thread serves.
class ScriptedHttpServer {
 public:
  ScriptedHttpServer();                          // plain HTTP
  explicit ScriptedHttpServer(TlsIdentity tls);  // HTTPS
  ~ScriptedHttpServer();
  ScriptedHttpServer(const ScriptedHttpServer&) = delete;
  ScriptedHttpServer& operator=(const ScriptedHttpServer&) = delete;

  std::uint16_t port() const;
  std::string url() const;  // "http://127.0.0.1:<port>" ("https://..." with TLS)
  // With TLS: a PEM file holding the server's certificate, removed with the server.
  std::string ca_file() const;
  // With TLS: handshakes that failed (e.g. the client refused the certificate).
  std::size_t failed_handshakes() const;

  void push(Reaction reaction);
  void respond(unsigned status, std::string body = "{}",
               std::vector<std::pair<std::string, std::string>> headers = {});
  void stall(std::chrono::milliseconds wait, unsigned status = 200);
  void close_connection();
  void set_default(Reaction reaction);
  std::size_t script_left() const;

  std::vector<RecordedRequest> requests() const;
  std::size_t request_count() const;
  std::size_t connection_count() const;  // accepted since construction
  // Waits until at least `count` requests have arrived; false on timeout.
  bool wait_for_requests(std::size_t count, std::chrono::milliseconds timeout) const;

  // The upstream goes away: stop listening and close every connection. Idempotent.
  void stop();
  // Listens again on the same port. Throws std::system_error if it cannot.
  void restart();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace notifs::fakes
