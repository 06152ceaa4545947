// Real X.509 certificates for the TLS tests, made at test time with OpenSSL's libcrypto (the
// library retryd links; no `openssl` binary needed): a self-signed CA, and certificates it signs
// for servers and clients. EC P-256 keys, valid from an hour ago for a day, PEM files in a
// directory of the test's own.
#ifndef RETRYD_TESTS_TESTING_TEST_CERTS_H_
#define RETRYD_TESTS_TESTING_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace retryd::testing {

// A certificate and its unencrypted private key, as PEM files.
struct CertPaths {
  std::string cert;
  std::string key;
};

// A new self-signed CA with common name `cn`: "<dir>/<name>.crt" and "<dir>/<name>.key".
absl::StatusOr<CertPaths> MakeCa(const std::string& dir, const std::string& name,
                                 const std::string& cn);

// A certificate signed by `ca` for both server and client use, with common name `cn` and
// subject alternative names `sans` in OpenSSL's syntax ("DNS:localhost,IP:127.0.0.1"; "" for
// none): "<dir>/<name>.crt" and "<dir>/<name>.key".
absl::StatusOr<CertPaths> IssueCert(const std::string& dir, const std::string& name,
                                    const CertPaths& ca, const std::string& cn,
                                    const std::string& sans);

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_TEST_CERTS_H_
