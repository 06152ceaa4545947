// Secrets a caller must not guess (lease tokens), from OpenSSL's CSPRNG, and their constant-time
// comparison. Jitter keeps its own seedable Random (random.h): tests stay exact, and nothing a
// caller sees of the jitter tells it anything about the secrets.
#ifndef RETRYD_SERVER_UTIL_SECURE_RANDOM_H_
#define RETRYD_SERVER_UTIL_SECURE_RANDOM_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace retryd {

// `bytes` random bytes from RAND_bytes, as 2 × `bytes` lowercase hex digits. INTERNAL if the
// CSPRNG fails (it then has no entropy; nothing guessable is handed out instead).
absl::StatusOr<std::string> SecureRandomHex(int bytes);

// a == b, in a time that depends on the lengths only.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_SECURE_RANDOM_H_
