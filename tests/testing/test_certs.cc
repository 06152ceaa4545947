#include "tests/testing/test_certs.h"

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retryd::testing {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct FileClose {
  void operator()(FILE* f) const { fclose(f); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using FilePtr = std::unique_ptr<FILE, FileClose>;

absl::Status Failed(absl::string_view what) {
  return absl::InternalError(absl::StrCat("test certificate: ", what, " failed"));
}

// Adds extension `nid` with OpenSSL config `value` ("critical,CA:TRUE"), issued by `issuer`.
absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return Failed(absl::StrCat("extension ", value));
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? absl::OkStatus() : Failed("X509_add_ext");
}

// A v3 certificate for `key` with subject CN `cn`, valid from an hour ago for a day; the caller
// sets the issuer, extensions and signs it.
X509Ptr NewCertificate(EVP_PKEY* key, const std::string& cn) {
  X509Ptr cert(X509_new());
  if (cert == nullptr) return nullptr;
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof(serial));
  serial[0] &= 0x7f;  // Positive.
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

absl::StatusOr<CertPaths> Write(const std::string& dir, const std::string& name, X509* cert,
                                EVP_PKEY* key) {
  CertPaths paths{absl::StrCat(dir, "/", name, ".crt"), absl::StrCat(dir, "/", name, ".key")};
  FilePtr c(fopen(paths.cert.c_str(), "w"));
  if (c == nullptr || PEM_write_X509(c.get(), cert) != 1) return Failed("writing " + paths.cert);
  FilePtr k(fopen(paths.key.c_str(), "w"));
  if (k == nullptr ||
      PEM_write_PrivateKey(k.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Failed("writing " + paths.key);
  }
  return paths;
}

// Reads back a CA's certificate and key.
absl::Status ReadCa(const CertPaths& ca, X509Ptr* cert, PkeyPtr* key) {
  FilePtr c(fopen(ca.cert.c_str(), "r"));
  FilePtr k(fopen(ca.key.c_str(), "r"));
  if (c == nullptr || k == nullptr) return Failed("opening the CA files");
  cert->reset(PEM_read_X509(c.get(), nullptr, nullptr, nullptr));
  key->reset(PEM_read_PrivateKey(k.get(), nullptr, nullptr, nullptr));
  return *cert != nullptr && *key != nullptr ? absl::OkStatus() : Failed("reading the CA");
}

}  // namespace

absl::StatusOr<CertPaths> MakeCa(const std::string& dir, const std::string& name,
                                 const std::string& cn) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("EC key generation");
  X509Ptr cert = NewCertificate(key.get(), cn);
  if (cert == nullptr) return Failed("X509_new");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
  absl::Status s = AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE");
  if (s.ok()) s = AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  if (s.ok()) s = AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash");
  if (!s.ok()) return s;
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return Failed("signing the CA");
  return Write(dir, name, cert.get(), key.get());
}

absl::StatusOr<CertPaths> IssueCert(const std::string& dir, const std::string& name,
                                    const CertPaths& ca, const std::string& cn,
                                    const std::string& sans) {
  X509Ptr ca_cert;
  PkeyPtr ca_key;
  absl::Status s = ReadCa(ca, &ca_cert, &ca_key);
  if (!s.ok()) return s;
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) return Failed("EC key generation");
  X509Ptr cert = NewCertificate(key.get(), cn);
  if (cert == nullptr) return Failed("X509_new");
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  s = AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  if (s.ok()) {
    s = AddExtension(cert.get(), ca_cert.get(), NID_key_usage,
                     "critical,digitalSignature,keyEncipherment");
  }
  if (s.ok()) {
    s = AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (s.ok()) s = AddExtension(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid");
  if (s.ok() && !sans.empty()) {
    s = AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name, sans);
  }
  if (!s.ok()) return s;
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) return Failed("signing");
  return Write(dir, name, cert.get(), key.get());
}

}  // namespace retryd::testing
