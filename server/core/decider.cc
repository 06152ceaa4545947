#include "server/core/decider.h"

#include <algorithm>

#include "server/core/backoff.h"
#include "server/core/classifier.h"

namespace retryd {
namespace {

Decision DeadLetter(Decision d, DeadLetterReason reason) {
  d.kind = DecisionKind::kDeadLettered;
  d.state = EnvelopeState::kDeadLettered;
  d.reason = reason;
  return d;
}

}  // namespace

Decision Decide(const Policy& p, const DecideInput& in, absl::Time now, Random& rng) {
  Decision d;
  d.attempt = std::max(in.attempt, 1);
  d.error_class = Classify(in.failure, p);

  if (d.error_class == ErrorClass::kPermanent) {
    return DeadLetter(d, DeadLetterReason::kNonRetryable);
  }
  if (d.attempt >= p.max_attempts) return DeadLetter(d, DeadLetterReason::kRetryExhausted);

  const BackoffSpec& spec =
      d.error_class == ErrorClass::kRecoverable ? p.recoverable_backoff : p.backoff;
  absl::Duration delay = NextDelay(spec, d.attempt, in.previous_delay, rng);
  const absl::Duration retry_after = in.failure.retry_after;
  if (p.honor_retry_after && retry_after > absl::ZeroDuration()) {
    delay = std::max(delay, std::min(retry_after, p.max_retry_after));
  }

  const absl::Time next = now + delay;
  if (p.max_retry_duration > absl::ZeroDuration() &&
      next > in.first_seen_at + p.max_retry_duration) {
    return DeadLetter(d, DeadLetterReason::kDeadlineExceeded);
  }
  d.kind = DecisionKind::kScheduled;
  d.state = EnvelopeState::kScheduled;
  d.next_retry_at = next;
  d.delay = delay;
  return d;
}

}  // namespace retryd
