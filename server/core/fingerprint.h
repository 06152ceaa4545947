// Failure fingerprints: dead letters that failed "the same way" share one. The error message is
// normalised first — quoted values become <q>, and every id or number (decimal, hex with or
// without letters, UUID, mixed like "ord_9f1c") becomes one placeholder, <id> — so
// "order 123 not found" and "order a3f9c2d1 not found" group together, while a different service,
// class, error code or message wording gives a different fingerprint.
#ifndef RETRYD_SERVER_CORE_FINGERPRINT_H_
#define RETRYD_SERVER_CORE_FINGERPRINT_H_

#include <string>

#include "absl/strings/string_view.h"
#include "server/core/envelope.h"

namespace retryd {

// Number of hex digits in a fingerprint.
inline constexpr int kFingerprintLength = 16;

// Placeholder of every id and number in a normalised message.
inline constexpr char kIdPlaceholder[] = "<id>";

// The message with quoted values → <q>, and whitespace runs collapsed to one space (trimmed).
// Tokens are runs of letters, digits, '_' and '-'; a token that holds a digit, or is a run of at
// least 8 hex letters, is an id and becomes <id> as a whole ("30s", "ord_9f1c", "deadbeef",
// "3f2b8c1e-9a4d-4e2f-8b7a-1c2d3e4f5a6b" → <id>). Stored fingerprints depend on this function:
// changing it needs a store migration that recomputes them (server/store/sqlite_store.cc).
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
