#include "notifs/runtime/broker_settings.hpp"

#include <fstream>
#include <stdexcept>
#include <utility>

namespace notifs::runtime {

messaging::amqp::ConnectionSettings read_broker_settings(ConfigReader& config,
                                                         std::string connection_name) {
  messaging::amqp::ConnectionSettings settings;
  settings.connection_name = std::move(connection_name);
  // Read as a secret list, like SMTP_URL: every address may carry a password, and a bad
  // one is named by its position, masked.
  const auto items = config.list("RABBITMQ_URL", /*secret=*/true);
  if (items.empty()) {
    config.report_problem("RABBITMQ_URL",
                          "is required (an amqp:// or amqps:// URL; for a cluster, a "
                          "comma-separated list of them)");
  } else {
    std::string joined;
    for (const auto& item : items) {
      joined += (joined.empty() ? "" : ",") + item;
    }
    try {
      messaging::amqp::validate_url(joined);
      settings.url = std::move(joined);
    } catch (const std::invalid_argument& error) {
      config.report_problem("RABBITMQ_URL", error.what());
    }
  }
  settings.tls_ca_file = read_ca_file(config, "RABBITMQ_CA_FILE");
  const bool verify = config.boolean("RABBITMQ_TLS_VERIFY", true);
  settings.tls_verify_peer = verify;
  settings.tls_verify_hostname = verify;
  return settings;
}

std::string read_ca_file(ConfigReader& config, std::string_view name) {
  auto path = config.text(name, "");
  if (!path.empty() && !std::ifstream(path).good()) {
    config.report_problem(name, "cannot be read (a PEM file of trusted CAs)");
  }
  return path;
}

}  // namespace notifs::runtime
