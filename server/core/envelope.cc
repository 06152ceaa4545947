#include "server/core/envelope.h"

namespace retryd {

// The names are the proto enum value names, so logs, metrics labels and the API agree.

absl::string_view ErrorClassName(ErrorClass c) {
  switch (c) {
    case ErrorClass::kUnspecified:
      return "UNSPECIFIED";
    case ErrorClass::kTransient:
      return "TRANSIENT";
    case ErrorClass::kRecoverable:
      return "RECOVERABLE";
    case ErrorClass::kPermanent:
      return "PERMANENT";
  }
  return "UNSPECIFIED";
}

absl::string_view EnvelopeStateName(EnvelopeState s) {
  switch (s) {
    case EnvelopeState::kUnspecified:
      return "UNSPECIFIED";
    case EnvelopeState::kScheduled:
      return "SCHEDULED";
    case EnvelopeState::kLeased:
      return "LEASED";
    case EnvelopeState::kDeadLettered:
      return "DEAD_LETTERED";
    case EnvelopeState::kSucceeded:
      return "SUCCEEDED";
  }
  return "UNSPECIFIED";
}

absl::string_view DeadLetterReasonName(DeadLetterReason r) {
  switch (r) {
    case DeadLetterReason::kNone:
      return "NONE";
    case DeadLetterReason::kNonRetryable:
      return "NON_RETRYABLE";
    case DeadLetterReason::kRetryExhausted:
      return "RETRY_EXHAUSTED";
    case DeadLetterReason::kDeadlineExceeded:
      return "DEADLINE_EXCEEDED";
    case DeadLetterReason::kBudgetExhausted:
      return "BUDGET_EXHAUSTED";
  }
  return "NONE";
}

}  // namespace retryd
