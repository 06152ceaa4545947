// GuardState: what a service's guards keep beyond the circuit's record (CircuitRecord's columns),
// so that a restart resumes them exactly: the circuit's failure-rate window and HALF_OPEN trials,
// and the retry budget's first-attempt window and pacing. The engine stores it, encoded, in the
// circuit's row (CircuitRecord::windows, column circuits.windows), in the transaction of every
// batch that changed it: one row per changed service per batch.
//
// Encoding, format 1. Every integer is a base-128 varint (7 bits a byte, least significant first,
// the high bit set on all bytes but the last, as in protobuf); those marked `s` are signed and
// zigzag-mapped first ((n << 1) ^ (n >> 63), so small negatives stay short):
//
//   state    := format=1  circuit  budget
//   circuit  := counter(retry failures)  counter(first failures, ReportFailure)
//               counter(first failures, RecordOutcomes)  counter(successes)
//               k  k × trial envelope id  trial successes  drained (0 | 1)
//   budget   := 0 (no budget)
//             | 1  counter(successes)  counter(failures, RecordOutcomes)
//               counter(first failures, ReportFailure)  s last deferral (unix µs; INT64_MIN: none)
//   counter  := bucket length (µs)  s head (unix µs / bucket length; INT64_MIN: never used)
//               k  k × s count    (newest first: bucket head, head − 1, ...; the zeros after the
//                                  last nonzero count are left out, so an idle counter is 3 bytes)
//
// Format 2 (written only when the circuit's HALF_OPEN trials have a holder, fleet-wide guards)
// is format 1 with `holder := n  n bytes` (the replica's name) right after `drained`.
//
// A busy service (every bucket of every counter in use) takes about a kilobyte; a quiet one a few
// dozen bytes. A new format gets a new number; Decode refuses one it does not know.
#ifndef RETRYD_SERVER_CORE_GUARD_STATE_H_
#define RETRYD_SERVER_CORE_GUARD_STATE_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/circuit_breaker.h"
#include "server/core/retry_budget.h"

namespace retryd {

struct GuardState {
  CircuitBreaker::Windows circuit;
  std::optional<RetryBudget::Windows> budget;  // Absent: the service has no budget.
};

std::string EncodeGuardState(const GuardState& state);
// DATA_LOSS when `encoded` is not a whole, well-formed state of a known format.
absl::StatusOr<GuardState> DecodeGuardState(absl::string_view encoded);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_GUARD_STATE_H_
