// Backoff: the delay before the next retry, from a BackoffSpec, the attempt count and a random
// source. Pure functions; thread-safe as long as `rng` is.
#ifndef RETRYD_SERVER_CORE_BACKOFF_H_
#define RETRYD_SERVER_CORE_BACKOFF_H_

#include "absl/time/time.h"
#include "server/core/policy.h"
#include "server/util/random.h"

namespace retryd {

// The un-jittered exponential delay: min(spec.max, spec.initial × spec.multiplier^(attempt−1)).
// `attempt` is the number of attempts made so far; values below 1 count as 1. Large attempts
// saturate at spec.max (no overflow). Never negative.
absl::Duration BaseDelay(const BackoffSpec& spec, int attempt);

// The delay before the next retry, jittered per spec.jitter (u = rng.Uniform01()):
//   NONE          base
//   FULL          base × u                         (uniform in [0, base])
//   EQUAL         base/2 + base/2 × u              (uniform in [base/2, base])
//   DECORRELATED  initial + (hi − initial) × u, hi = max(initial, previous_delay) × multiplier
//                 (previous_delay <= 0 counts as initial)
//   PROPORTIONAL  base × (1 + uniform in [−jitter_ratio, +jitter_ratio])
// The result is clamped to [0, spec.max]. Draws at most one value from `rng` (none for NONE,
// nor for PROPORTIONAL with jitter_ratio <= 0).
absl::Duration NextDelay(const BackoffSpec& spec, int attempt, absl::Duration previous_delay,
                         Random& rng);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_BACKOFF_H_
