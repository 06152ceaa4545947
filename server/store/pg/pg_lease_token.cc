#include "server/store/pg/pg_lease_token.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/util/secure_random.h"

namespace retryd::pg {

namespace {
constexpr int kSecretBytes = 16;
}  // namespace

absl::StatusOr<std::string> NewLeaseSecret() { return SecureRandomHex(kSecretBytes); }

std::string FormatLeaseToken(int64_t id, int64_t generation, absl::string_view secret) {
  return absl::StrCat("L1.", id, ".", generation, ".", secret);
}

std::optional<LeaseTokenParts> ParseLeaseToken(absl::string_view token) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  LeaseTokenParts out;
  if (parts.size() != 4 || parts[0] != "L1" || !absl::SimpleAtoi(parts[1], &out.id) ||
      !absl::SimpleAtoi(parts[2], &out.generation) || out.id <= 0 || out.generation <= 0 ||
      parts[3].size() != 2 * kSecretBytes) {
    return std::nullopt;
  }
  for (char c : parts[3]) {
    if (!absl::ascii_isxdigit(c) || absl::ascii_isupper(c)) return std::nullopt;
  }
  out.secret = std::string(parts[3]);
  return out;
}

}  // namespace retryd::pg
