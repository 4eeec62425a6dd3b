// ServiceClient over https against the scripted upstream with a throwaway self-signed
// certificate: the peer is verified (chain and host name), SNI is sent, keep-alive works.

#include <chrono>
#include <future>
#include <string>

#include <catch2/catch.hpp>

#include "fakes/scripted_http_server.hpp"
#include "notifs/messaging/http/service_client.hpp"

using namespace std::chrono_literals;
using notifs::fakes::ScriptedHttpServer;
using notifs::fakes::TlsIdentity;
using notifs::messaging::http::ClientErrc;
using notifs::messaging::http::ClientRequest;
using notifs::messaging::http::ClientResult;
using notifs::messaging::http::Method;
using notifs::messaging::http::ServiceClient;
using notifs::messaging::http::ServiceClientSettings;

namespace {

ServiceClientSettings tls_settings(const std::string& url, const std::string& ca_file) {
  ServiceClientSettings settings;
  settings.name = "push_provider";
  settings.base_url = url;
  settings.tls_ca_file = ca_file;
  settings.max_attempts = 2;
  settings.backoff = {std::chrono::milliseconds(5), std::chrono::milliseconds(10), 2.0};
  return settings;
}

ClientResult get(ServiceClient& client, std::string target) {
  ClientRequest request;
  request.method = Method::get;
  request.target = std::move(target);
  std::promise<ClientResult> promise;
  auto future = promise.get_future();
  client.async_call(std::move(request), {},
                    [&promise](ClientResult result) { promise.set_value(std::move(result)); });
  REQUIRE(future.wait_for(30s) == std::future_status::ready);
  return future.get();
}

}  // namespace

TEST_CASE("client tls: https to a trusted certificate, by IP and by name", "[http][client]") {
  ScriptedHttpServer server(TlsIdentity{});
  REQUIRE(server.url().rfind("https://", 0) == 0);

  SECTION("by address: the certificate's IP SAN is checked") {
    ServiceClient client(tls_settings(server.url(), server.ca_file()));
    for (int i = 0; i < 5; ++i) {
      const auto result = get(client, "/secure/" + std::to_string(i));
      REQUIRE(result);
      CHECK(result.response.status == 200);
      CHECK(result.response.attempts == 1);
    }
    CHECK(server.connection_count() == 1);  // keep-alive over TLS
    CHECK(server.requests().at(0).headers.get("Host") ==
          "127.0.0.1:" + std::to_string(server.port()));
  }
  SECTION("by name: SNI and the DNS SAN") {
    ServiceClient client(
        tls_settings("https://localhost:" + std::to_string(server.port()), server.ca_file()));
    const auto result = get(client, "/secure");
    REQUIRE(result);
    CHECK(result.response.status == 200);
    CHECK(server.failed_handshakes() == 0);
  }
}

TEST_CASE("client tls: an untrusted certificate is refused", "[http][client]") {
  ScriptedHttpServer server(TlsIdentity{});
  // System CAs only: a self-signed certificate must not pass.
  ServiceClient client(tls_settings(server.url(), ""));
  const auto result = get(client, "/secure");
  CHECK(result.error == ClientErrc::connect_failed);
  CHECK(result.detail.find("TLS handshake") != std::string::npos);
  CHECK(server.request_count() == 0);
  CHECK(server.failed_handshakes() >= 1);
}

TEST_CASE("client tls: a certificate for another host is refused", "[http][client]") {
  ScriptedHttpServer server(TlsIdentity{{"other.example"}, {}});
  ServiceClient by_ip(tls_settings(server.url(), server.ca_file()));
  const auto refused = get(by_ip, "/secure");
  CHECK(refused.error == ClientErrc::connect_failed);
  // The chain is trusted (same file as the passing tests): only the name is wrong.
  CHECK(refused.detail.find("certificate verify failed") != std::string::npos);
  ServiceClient by_name(
      tls_settings("https://localhost:" + std::to_string(server.port()), server.ca_file()));
  CHECK(get(by_name, "/secure").error == ClientErrc::connect_failed);
  CHECK(server.request_count() == 0);
}

TEST_CASE("client tls: an unreadable CA file is refused at construction", "[http][client]") {
  auto settings = tls_settings("https://127.0.0.1:1", "/nonexistent/ca.pem");
  CHECK_THROWS_AS(ServiceClient(settings), std::invalid_argument);
}
