// Shared-mode lease tokens: "L1.<envelope id>.<lease generation>.<secret>". Any replica can check
// one against the envelope's row: the id finds the row, the generation must be the row's current
// one (fencing: a token issued before the row was claimed again is stale), and the secret's
// sha256 must be the row's lease_secret_hash (the secret, 128 bits from the CSPRNG, is never
// stored). "L1" versions the format.
#ifndef RETRYD_SERVER_STORE_PG_PG_LEASE_TOKEN_H_
#define RETRYD_SERVER_STORE_PG_PG_LEASE_TOKEN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd::pg {

struct LeaseTokenParts {
  int64_t id = 0;
  int64_t generation = 0;
  std::string secret;  // 32 lowercase hex digits.
};

// A fresh secret for a token (INTERNAL if the CSPRNG fails).
absl::StatusOr<std::string> NewLeaseSecret();
std::string FormatLeaseToken(int64_t id, int64_t generation, absl::string_view secret);
// nullopt for anything that is not a well-formed L1 token.
std::optional<LeaseTokenParts> ParseLeaseToken(absl::string_view token);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_LEASE_TOKEN_H_
