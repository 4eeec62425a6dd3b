#pragma once

#include <string>
#include <string_view>

#include "notifs/messaging/amqp/connection_settings.hpp"
#include "notifs/runtime/config_reader.hpp"

namespace notifs::runtime {

// The broker connection every RabbitMQ client process reads the same way:
//   RABBITMQ_URL         one amqp:// or amqps:// URL, or a cluster's nodes as a
//                        comma-separated list of them (each connection attempt takes the
//                        next one, so clients move to a surviving node). Printed as ***.
//   RABBITMQ_CA_FILE     amqps: a PEM bundle to trust instead of the system CAs.
//   RABBITMQ_TLS_VERIFY  amqps: verify the broker's certificate and name (default true).
// `connection_name` is what the management UI shows for the connection.
messaging::amqp::ConnectionSettings read_broker_settings(ConfigReader& config,
                                                         std::string connection_name);

// A PEM bundle of CAs named by the variable `name` (empty when unset). An unreadable file
// is a problem now, at start, instead of a TLS failure on every later connection.
std::string read_ca_file(ConfigReader& config, std::string_view name);

}  // namespace notifs::runtime
