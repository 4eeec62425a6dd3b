#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "notifs/messaging/resilience/backoff.hpp"

namespace notifs::messaging::amqp {

struct ConnectionSettings {
  // amqp:// or amqps://; for a cluster, a comma-separated list of such URLs, one per node
  // ("amqp://u:p@node-1:5672/%2f,amqp://u:p@node-2:5672/%2f"). Every connection attempt
  // takes the next address of the list, so a connection that lost its node reconnects to
  // another one; see split_urls for how the list is cut.
  std::string url = "amqp://guest:guest@127.0.0.1:5672/%2f";
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

// The addresses of a ConnectionSettings::url, in order, each trimmed of spaces and tabs.
// The text is cut at every comma that starts a new URL ("scheme://", any scheme, so that a
// wrong one is an item of its own); any other comma belongs to the URL it is in (a raw ','
// in a password or vhost), so a single URL comes back whole. An item left empty by a stray comma stays in the result as "" (validate_url
// refuses it). Does not validate; does not throw.
std::vector<std::string> split_urls(std::string_view urls);

// The URL (or each URL of a list) with its password replaced by "***", for logs and
// printed configuration.
std::string mask_url(std::string_view url);

// Throws std::invalid_argument naming the problem (and, for a list, which address) when
// `url` is not a usable amqp:// or amqps:// URL or list of them.
void validate_url(std::string_view url);

}  // namespace notifs::messaging::amqp
