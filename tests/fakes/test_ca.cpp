#include "fakes/test_ca.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <fstream>
#include <memory>
#include <random>
#include <stdexcept>
#include <system_error>

namespace notifs::fakes {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct ExtensionFree {
  void operator()(X509_EXTENSION* ext) const { X509_EXTENSION_free(ext); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Cert = std::unique_ptr<X509, X509Free>;
using Bio = std::unique_ptr<BIO, BioFree>;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("TestCa: " + what + " failed");
}

Pkey new_key() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) fail("key generation");
  return key;
}

void add_extension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, ExtensionFree> ext(
      X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) fail("adding extension " + value);
}

// A certificate for `key` with subject CN `common_name`, not yet signed; issuer names and
// extensions are the caller's.
Cert new_cert(EVP_PKEY* key, const std::string& common_name) {
  Cert cert(X509_new());
  if (!cert) fail("X509_new");
  X509_set_version(cert.get(), 2);
  std::random_device seed;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(seed() & 0x7fffffff));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<std::size_t>(size));
}

std::string cert_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("writing a certificate");
  return bio_text(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    fail("writing a key");
  }
  return bio_text(bio.get());
}

Bio read_bio(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) fail("BIO_new_mem_buf");
  return bio;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) fail("writing " + path.string());
}

}  // namespace

TestCa::TestCa(const std::string& common_name) {
  std::string pattern = (std::filesystem::temp_directory_path() / "notifs-ca.XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) fail("mkdtemp");
  dir_ = pattern;
  const auto key = new_key();
  auto cert = new_cert(key.get(), common_name);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  add_extension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_extension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  add_extension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) fail("signing the CA");
  ca_cert_pem_ = cert_pem(cert.get());
  ca_key_pem_ = key_pem(key.get());
  ca_file_ = (dir_ / "ca.pem").string();
  write_file(ca_file_, ca_cert_pem_);
}

TestCa::~TestCa() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

TlsIdentityFiles TestCa::issue(const std::vector<std::string>& dns_names,
                               const std::vector<std::string>& ip_addresses) {
  const auto ca_bio = read_bio(ca_cert_pem_);
  const Cert ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
  const auto ca_key_bio = read_bio(ca_key_pem_);
  const Pkey ca_key(PEM_read_bio_PrivateKey(ca_key_bio.get(), nullptr, nullptr, nullptr));
  if (!ca || !ca_key) fail("reading the CA back");

  const auto key = new_key();
  auto cert = new_cert(key.get(), dns_names.empty() ? std::string("server") : dns_names.front());
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca.get()));
  std::string san;
  for (const auto& dns : dns_names) san += (san.empty() ? "" : ",") + ("DNS:" + dns);
  for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + ("IP:" + ip);
  if (!san.empty()) add_extension(cert.get(), ca.get(), NID_subject_alt_name, san);
  add_extension(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_extension(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth");
  add_extension(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always");
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) fail("signing a server certificate");

  ++issued_;
  TlsIdentityFiles files;
  files.cert_file = (dir_ / ("server-" + std::to_string(issued_) + ".pem")).string();
  files.key_file = (dir_ / ("server-" + std::to_string(issued_) + ".key")).string();
  write_file(files.cert_file, cert_pem(cert.get()));
  write_file(files.key_file, key_pem(key.get()));
  return files;
}

}  // namespace notifs::fakes
