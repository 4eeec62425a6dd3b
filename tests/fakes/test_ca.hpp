#pragma once

// A certificate authority made in memory for one test, so TLS clients can be tested with
// peer verification on: trust ca_file() and connect to a server presenting a certificate
// from issue(). Another TestCa is a CA the client does not trust. EC P-256 keys, valid
// from a minute ago for an hour. Files live in a private temporary folder removed with the
// object.
//
// Not thread-safe; construct and issue from the test thread.

#include <filesystem>
#include <string>
#include <vector>

namespace notifs::fakes {

// PEM files of a server certificate (leaf only) and its unencrypted private key.
struct TlsIdentityFiles {
  std::string cert_file;
  std::string key_file;
};

class TestCa {
 public:
  // Throws std::runtime_error when OpenSSL or the file system fails.
  explicit TestCa(const std::string& common_name = "notifs test CA");
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  // The CA certificate (PEM): what a client trusts.
  const std::string& ca_file() const { return ca_file_; }

  // A server certificate signed by this CA naming exactly these hosts (subjectAltName DNS
  // and IP entries; the first DNS name, else "server", is the subject CN).
  TlsIdentityFiles issue(const std::vector<std::string>& dns_names,
                         const std::vector<std::string>& ip_addresses = {});

 private:
  std::filesystem::path dir_;
  std::string ca_file_;
  std::string ca_key_pem_;
  std::string ca_cert_pem_;
  int issued_ = 0;
};

}  // namespace notifs::fakes
