#include "server/core/duplicate_decision.h"

namespace retryd {

Decision DuplicateDecision(const Envelope& e) {
  Decision d;
  d.duplicate = true;
  d.attempt = e.attempt;
  d.error_class = e.last_error_class;
  d.state = e.state;
  switch (e.state) {
    case EnvelopeState::kDeadLettered:
      d.kind = DecisionKind::kDeadLettered;
      d.reason = e.dead_letter_reason;
      return d;
    case EnvelopeState::kScheduled:
      d.kind = DecisionKind::kScheduled;
      d.next_retry_at = e.next_retry_at;
      if (!e.history.empty()) d.delay = e.history.back().delay;
      return d;
    case EnvelopeState::kLeased:
      d.kind = DecisionKind::kScheduled;
      if (!e.history.empty()) d.delay = e.history.back().delay;
      return d;
    case EnvelopeState::kSucceeded:
    case EnvelopeState::kUnspecified:
      // Its retry succeeded: what was decided for the failure was a retry, and nothing is due.
      d.kind = DecisionKind::kScheduled;
      return d;
  }
  return d;
}

}  // namespace retryd
