// Decide: retryd's answer to one failure under a policy (DESIGN.md "Decision"). Pure: the time
// and the random source are parameters. Retry budgets and circuits are applied by the caller.
#ifndef RETRYD_SERVER_CORE_DECIDER_H_
#define RETRYD_SERVER_CORE_DECIDER_H_

#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"
#include "server/util/random.h"

namespace retryd {

struct DecideInput {
  // Attempts made, this failure included; values below 1 count as 1.
  int attempt = 1;
  // When the envelope's retry life began (RetryLifeStart: its first_seen_at, or the replay that
  // started a new life); the origin of p.max_retry_duration. Must be finite when the policy has
  // a deadline.
  absl::Time first_seen_at = absl::UnixEpoch();
  // The delay chosen before this attempt; zero if none (feeds DECORRELATED jitter).
  absl::Duration previous_delay = absl::ZeroDuration();
  Failure failure;
};

// Decides what happens after `in.failure`, in this order:
//   class = Classify(in.failure, p);
//   PERMANENT                        → DEAD_LETTERED, NON_RETRYABLE;
//   attempt >= p.max_attempts        → DEAD_LETTERED, RETRY_EXHAUSTED;
//   delay = NextDelay(RECOVERABLE ? p.recoverable_backoff : p.backoff, attempt, previous_delay);
//   if p.honor_retry_after and failure.retry_after > 0:
//     delay = max(delay, min(failure.retry_after, p.max_retry_after));
//   p.max_retry_duration > 0 and now + delay > first_seen_at + p.max_retry_duration
//                                    → DEAD_LETTERED, DEADLINE_EXCEEDED;
//   otherwise                        → SCHEDULED at now + delay.
// `attempt` and `error_class` are always filled; `state` is kScheduled or kDeadLettered;
// `next_retry_at` and `delay` only when scheduled (else InfinitePast and zero). Draws from `rng`
// only when a delay is computed.
Decision Decide(const Policy& p, const DecideInput& in, absl::Time now, Random& rng);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_DECIDER_H_
