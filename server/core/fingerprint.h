// Failure fingerprints: dead letters that failed "the same way" share one. The error message is
// normalised first — quoted values, UUIDs, hex ids and numbers are replaced by placeholders — so
// "order 123 not found" and "order 456 not found" group together, while a different service,
// class, error code or message wording gives a different fingerprint.
#ifndef RETRYD_SERVER_CORE_FINGERPRINT_H_
#define RETRYD_SERVER_CORE_FINGERPRINT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "server/core/envelope.h"

namespace retryd {

// Number of hex digits in a fingerprint.
inline constexpr int kFingerprintLength = 16;

// The message with quoted values → <q>, UUIDs → <uuid>, hex ids → <hex>, numbers → <n>, and
// whitespace runs collapsed to one space (trimmed).
std::string NormalizeErrorMessage(absl::string_view message);

// A stable 16-hex-digit id of (service, class, error code, normalised message). Stable across
// processes and builds (FNV-1a, not absl::Hash).
std::string FailureFingerprint(absl::string_view service, ErrorClass error_class,
                               absl::string_view error_code, absl::string_view message);

// The fingerprint of a dead letter's last failure (its decided class and last error).
std::string FailureFingerprint(const Envelope& e);

// True when `s` looks like a fingerprint (16 lowercase hex digits).
bool IsFingerprint(absl::string_view s);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_FINGERPRINT_H_
