#include "server/core/failure_decision.h"

#include <utility>

#include "server/core/decider.h"
#include "server/core/duplicate_decision.h"
#include "server/util/status_macros.h"

namespace retryd {

Decision DecideAndApplyFailure(const PolicySet& policies, Random& rng, ServiceGuards& guards,
                               Envelope& e, int attempt, const Failure& failure, absl::Time now) {
  const Policy& policy = policies.Resolve(e.service);
  DecideInput input;
  input.attempt = attempt;
  input.first_seen_at = RetryLifeStart(e);  // A replay starts a new retry life.
  input.previous_delay = e.history.empty() ? absl::ZeroDuration() : e.history.back().delay;
  input.failure = failure;
  Decision d = Decide(policy, input, now, rng);
  guards.ApplyBudget(e.service, policy, input.first_seen_at, now, &d);

  e.attempt = d.attempt;
  e.max_attempts = policy.max_attempts;
  e.last_error = failure;
  e.last_error.error_class = d.error_class;
  e.last_error_class = d.error_class;
  e.last_decision = d.kind;
  e.updated_at = now;
  AttemptRecord record;
  record.attempt = d.attempt;
  record.failed_at = now;
  record.error_code = failure.error_code;
  record.error_class = d.error_class;
  record.message = failure.message;
  record.delay = d.kind == DecisionKind::kScheduled ? d.delay : absl::ZeroDuration();
  e.history.push_back(std::move(record));
  if (e.history.size() > static_cast<size_t>(kMaxHistory)) {
    e.history.erase(e.history.begin(), e.history.end() - kMaxHistory);
  }
  if (d.kind == DecisionKind::kScheduled) {
    e.state = EnvelopeState::kScheduled;
    e.next_retry_at = d.next_retry_at;
    e.dead_letter_reason = DeadLetterReason::kNone;
  } else {
    e.state = EnvelopeState::kDeadLettered;
    e.dead_letter_reason = d.reason;
    e.dead_lettered_at = now;
  }
  d.state = e.state;
  return d;
}

absl::StatusOr<FailureOutcome> AnswerDuplicate(SchedulerStore& store, ServiceGuards& guards,
                                               const Envelope& e, Failure failure,
                                               const absl::Status& inserted) {
  ASSIGN_OR_RETURN(std::optional<Envelope> existing,
                   store.FindByKey(e.service, e.message_id, false));
  if (!existing.has_value()) return inserted;
  guards.UndoOp();
  FailureOutcome out;
  out.decision = DuplicateDecision(*existing);
  out.envelope = *std::move(existing);
  out.failure = std::move(failure);
  out.duplicate = true;
  return out;
}

int64_t LeasedWireSize(const Envelope& e) {
  int64_t size = 256 + e.service.size() + e.message_id.size() + e.payload.size() +
                 e.trace_id.size() + e.content_type.size() + e.source.size() +
                 e.last_error.message.size();
  for (const auto& [k, v] : e.headers) size += k.size() + v.size() + 8;
  for (const auto& r : e.history) size += 64 + r.error_code.size() + r.message.size();
  return size;
}

}  // namespace retryd
