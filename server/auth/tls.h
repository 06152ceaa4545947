// TLS for the gRPC port: the certificate files of `ServerConfig.tls` / the --tls-* flags, read and
// checked at start-up (so a missing file, a key that does not match the certificate or an
// unparsable CA fails before anything listens), and the grpc::ServerCredentials built from them.
#ifndef RETRYD_SERVER_AUTH_TLS_H_
#define RETRYD_SERVER_AUTH_TLS_H_

#include <memory>
#include <string>

#include <grpcpp/security/server_credentials.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd {

enum class ClientAuth {
  kNone,     // No client certificate asked for.
  kRequest,  // Asked for; optional, but verified against the client CA when sent.
  kRequire,  // Required and verified against the client CA (mTLS).
};

// Parses "none", "request" or "require" ("" = none).
bool ParseClientAuth(absl::string_view text, ClientAuth* out);
absl::string_view ClientAuthName(ClientAuth mode);

// Where the settings came from, for error messages: each field names its flag when a flag set it
// (e.g. "--tls-cert"), else its config field (e.g. "tls.cert_file").
struct TlsSources {
  std::string cert = "tls.cert_file";
  std::string key = "tls.key_file";
  std::string client_ca = "tls.client_ca_file";
  std::string client_auth = "tls.client_auth";
};

struct TlsPaths {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  std::string client_auth;  // "", "none", "request" or "require".
};

// The loaded PEM material.
struct TlsSettings {
  std::string cert_pem;
  std::string key_pem;
  std::string client_ca_pem;  // Empty when client_auth is kNone.
  ClientAuth client_auth = ClientAuth::kNone;
};

// Whether `paths` ask for TLS: a file is set, or client_auth is something else than none.
bool TlsConfigured(const TlsPaths& paths);

// Reads and checks the files: cert and key are both required, the key must match the
// certificate; request/require need a client CA (which must hold at least one certificate), and
// a client CA without request/require is refused as a likely mistake. INVALID_ARGUMENT whose
// message starts with the setting's name from `sources`, e.g. "--tls-key /x/key.pem: cannot read
// (No such file or directory)", or with both names of a missing one ("--tls-key
// (tls.key_file): missing; ...").
absl::StatusOr<TlsSettings> LoadTls(const TlsPaths& paths, const TlsSources& sources);

// SslServerCredentials for `settings`. kRequest maps to
// GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY and kRequire to
// GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY: a certificate is always verified
// when sent, never left to the application (the *_BUT_DONT_VERIFY modes), because its identity
// ends up in the audit log.
std::shared_ptr<grpc::ServerCredentials> ServerCredentialsFor(const TlsSettings& settings);

}  // namespace retryd

#endif  // RETRYD_SERVER_AUTH_TLS_H_
