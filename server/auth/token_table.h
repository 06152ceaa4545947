// TokenTable: the bearer tokens of the config (`ServerConfig.auth.tokens`), validated once at
// start-up and kept as SHA-256 digests; a presented token is hashed once and compared with every
// digest in constant time. Nothing here knows about gRPC: authorizer.h reads the header and
// decides per method.
#ifndef RETRYD_SERVER_AUTH_TOKEN_TABLE_H_
#define RETRYD_SERVER_AUTH_TOKEN_TABLE_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "retryd/v1/config.pb.h"

namespace retryd {

enum class Role { kWorker, kOperator };

// "WORKER" or "OPERATOR", as in the config.
absl::string_view RoleName(Role role);

// A presented token longer than this is never looked up (no configured token is that long).
inline constexpr size_t kMaxBearerTokenBytes = 4096;

using Sha256Digest = std::array<uint8_t, 32>;

// SHA-256 of `data` (OpenSSL's libcrypto).
Sha256Digest Sha256(absl::string_view data);

// One configured token. Immutable once in a table.
struct TokenEntry {
  std::string name;  // The caller's identity in logs and audit events.
  Sha256Digest digest{};
  Role role = Role::kWorker;
  // kWorker only: exact service names and prefix patterns ("billing.*" matches
  // "billing.invoices", not "billing"). Empty = every service.
  std::vector<std::string> services;

  // Whether this token may act for `service`: always for an operator or an unrestricted worker.
  bool MayActFor(absl::string_view service) const;
  // Whether MayActFor() can ever say no.
  bool restricted() const { return role == Role::kWorker && !services.empty(); }
};

// An immutable, copyable set of tokens; thread-safe for concurrent reads.
class TokenTable {
 public:
  TokenTable() = default;

  // Validates `auth` and builds the table. INVALID_ARGUMENT whose message starts with the
  // offending field under `field_path` (e.g. "auth.tokens[1].sha256: ..."): a name must be
  // non-empty, printable and unique; sha256 is 64 hex digits, unique; role is WORKER or
  // OPERATOR; services (WORKER only) are service names or "prefix.*" patterns.
  static absl::StatusOr<TokenTable> FromConfig(const v1::AuthConfig& auth,
                                               absl::string_view field_path);

  // The entry whose digest is SHA-256(`token`), or nullptr. Takes the same time whichever entry
  // matches, or none (every digest is compared, each with CRYPTO_memcmp).
  const TokenEntry* Find(absl::string_view token) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  std::vector<TokenEntry> entries_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_AUTH_TOKEN_TABLE_H_
