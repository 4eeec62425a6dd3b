#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "notifs/messaging/resilience/backoff.hpp"

namespace notifs::messaging::amqp {

struct ConnectionSettings {
  std::string url = "amqp://guest:guest@127.0.0.1:5672/%2f";  // amqp:// or amqps://
  std::string tls_ca_file;        // amqps: PEM bundle to trust (empty: the system CAs)
  bool tls_verify_peer = true;    // amqps: verify the broker's certificate chain
  bool tls_verify_hostname = true;  // amqps: and that it names the host of the URL
  std::chrono::seconds heartbeat{30};               // 0 disables heartbeats
  std::chrono::milliseconds connect_timeout{5000};  // TCP + TLS + AMQP handshake
  std::chrono::milliseconds rpc_timeout{10000};     // one synchronous AMQP method
  std::string connection_name = "notifs";           // shown in the management UI
  resilience::BackoffSettings reconnect{std::chrono::milliseconds{200},
                                        std::chrono::milliseconds{10000}, 2.0};
};

// The URL with its password replaced by "***", for logs and printed configuration.
std::string mask_url(std::string_view url);

// Throws std::invalid_argument naming the problem when `url` is not a usable
// amqp:// or amqps:// URL.
void validate_url(std::string_view url);

}  // namespace notifs::messaging::amqp
