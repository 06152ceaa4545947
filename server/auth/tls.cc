#include "server/auth/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include <grpcpp/security/server_credentials.h>

#include "absl/strings/str_cat.h"

namespace retryd {
namespace {

// Owners of OpenSSL objects.
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

absl::Status Invalid(absl::string_view field, absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", path, ": ", what));
}

absl::StatusOr<std::string> ReadPem(absl::string_view field, const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return Invalid(field, path, absl::StrCat("cannot read (", std::strerror(errno), ")"));
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Invalid(field, path, "cannot read");
  if (ss.str().empty()) return Invalid(field, path, "is empty");
  return ss.str();
}

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// A passphrase callback that has none: an encrypted key fails instead of prompting on a terminal.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return 0; }

X509Ptr FirstCertificate(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr) : nullptr);
  ERR_clear_error();
  return cert;
}

}  // namespace

bool ParseClientAuth(absl::string_view text, ClientAuth* out) {
  if (text.empty() || text == "none") {
    *out = ClientAuth::kNone;
  } else if (text == "request") {
    *out = ClientAuth::kRequest;
  } else if (text == "require") {
    *out = ClientAuth::kRequire;
  } else {
    return false;
  }
  return true;
}

absl::string_view ClientAuthName(ClientAuth mode) {
  switch (mode) {
    case ClientAuth::kNone: return "none";
    case ClientAuth::kRequest: return "request";
    case ClientAuth::kRequire: return "require";
  }
  return "none";
}

bool TlsConfigured(const TlsPaths& paths) {
  return !paths.cert_file.empty() || !paths.key_file.empty() || !paths.client_ca_file.empty() ||
         !(paths.client_auth.empty() || paths.client_auth == "none");
}

absl::StatusOr<TlsSettings> LoadTls(const TlsPaths& paths, const TlsSources& sources) {
  TlsSettings s;
  if (!ParseClientAuth(paths.client_auth, &s.client_auth)) {
    return absl::InvalidArgumentError(absl::StrCat(
        sources.client_auth, ": must be none, request or require, got \"", paths.client_auth,
        "\""));
  }
  // A missing setting came from neither place: both are named.
  if (paths.cert_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-cert (tls.cert_file): missing; TLS needs a certificate and its key (",
        sources.key, " is set)"));
  }
  if (paths.key_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-key (tls.key_file): missing; TLS needs a certificate and its key (", sources.cert,
        " is set)"));
  }
  if (s.client_auth == ClientAuth::kNone && !paths.client_ca_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        sources.client_ca, ": a client CA is only used with --tls-client-auth (tls.client_auth) "
                           "request or require"));
  }
  if (s.client_auth != ClientAuth::kNone && paths.client_ca_file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--tls-client-ca (tls.client_ca_file): missing; ", sources.client_auth, " ",
        ClientAuthName(s.client_auth), " needs the CA that signs client certificates"));
  }

  auto cert_pem = ReadPem(sources.cert, paths.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  X509Ptr cert = FirstCertificate(*cert_pem);
  if (cert == nullptr) return Invalid(sources.cert, paths.cert_file, "no PEM certificate in it");

  auto key_pem = ReadPem(sources.key, paths.key_file);
  if (!key_pem.ok()) return key_pem.status();
  BioPtr key_bio = MemBio(*key_pem);
  PkeyPtr key(key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, NoPassphrase, nullptr)
                      : nullptr);
  ERR_clear_error();
  if (key == nullptr) {
    return Invalid(sources.key, paths.key_file, "no unencrypted PEM private key in it");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return Invalid(sources.key, paths.key_file,
                   absl::StrCat("does not match the certificate of ", sources.cert));
  }
  s.cert_pem = std::move(*cert_pem);
  s.key_pem = std::move(*key_pem);

  if (s.client_auth != ClientAuth::kNone) {
    auto ca_pem = ReadPem(sources.client_ca, paths.client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    if (FirstCertificate(*ca_pem) == nullptr) {
      return Invalid(sources.client_ca, paths.client_ca_file, "no PEM certificate in it");
    }
    s.client_ca_pem = std::move(*ca_pem);
  }
  return s;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsSettings& settings) {
  grpc_ssl_client_certificate_request_type request = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  if (settings.client_auth == ClientAuth::kRequest) {
    request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  } else if (settings.client_auth == ClientAuth::kRequire) {
    request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  grpc::SslServerCredentialsOptions options(request);
  options.pem_root_certs = settings.client_ca_pem;
  options.pem_key_cert_pairs.push_back({settings.key_pem, settings.cert_pem});
  return grpc::SslServerCredentials(options);
}

}  // namespace retryd
