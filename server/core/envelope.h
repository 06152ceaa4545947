// The domain's plain types: envelope, failure, attempt record and decision. No gRPC, Protobuf or
// SQLite types here; server/rpc converts at the edge. Enum values equal the proto enums' numbers.
#ifndef RETRYD_SERVER_CORE_ENVELOPE_H_
#define RETRYD_SERVER_CORE_ENVELOPE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace retryd {

enum class ErrorClass : int { kUnspecified = 0, kTransient = 1, kRecoverable = 2, kPermanent = 3 };
enum class EnvelopeState : int {
  kUnspecified = 0,
  kScheduled = 1,
  kLeased = 2,
  kDeadLettered = 3,
  kSucceeded = 4,
};
enum class DecisionKind : int { kUnspecified = 0, kScheduled = 1, kDeadLettered = 2 };
enum class DeadLetterReason : int {
  kNone = 0,
  kNonRetryable = 1,
  kRetryExhausted = 2,
  kDeadlineExceeded = 3,
  kBudgetExhausted = 4,
};

absl::string_view ErrorClassName(ErrorClass c);          // "TRANSIENT", ...
absl::string_view EnvelopeStateName(EnvelopeState s);    // "SCHEDULED", ...
absl::string_view DeadLetterReasonName(DeadLetterReason r);  // "RETRY_EXHAUSTED", ...

// The most attempts kept in an envelope's history.
inline constexpr int kMaxHistory = 10;

// What went wrong with one attempt.
struct Failure {
  std::string error_code;
  ErrorClass error_class = ErrorClass::kUnspecified;  // kUnspecified: the policy decides.
  std::string message;
  int http_status = 0;                              // 0 = none.
  absl::Duration retry_after = absl::ZeroDuration();  // 0 = no hint.
};

// One attempt in an envelope's history.
struct AttemptRecord {
  int attempt = 0;
  absl::Time failed_at = absl::UnixEpoch();
  std::string error_code;
  ErrorClass error_class = ErrorClass::kUnspecified;
  std::string message;
  absl::Duration delay = absl::ZeroDuration();  // Chosen before the next attempt.
};

// An envelope as the store keeps it: the worker's fields plus the server-owned ones.
struct Envelope {
  int64_t id = 0;  // Store row id; 0 until stored.
  std::string service;
  std::string message_id;
  std::string trace_id;
  int attempt = 0;  // Attempts made, the failed ones included.
  absl::Time first_seen_at = absl::UnixEpoch();
  std::string payload;
  std::string content_type;
  std::string schema_version;
  std::string source;
  std::map<std::string, std::string> headers;

  EnvelopeState state = EnvelopeState::kUnspecified;
  int max_attempts = 0;
  absl::Time next_retry_at = absl::InfinitePast();     // kScheduled only.
  std::string lease_token;                             // kLeased only.
  absl::Time lease_expires_at = absl::InfinitePast();  // kLeased only.
  DeadLetterReason dead_letter_reason = DeadLetterReason::kNone;
  absl::Time dead_lettered_at = absl::InfinitePast();  // kDeadLettered only.
  absl::Time completed_at = absl::InfinitePast();      // kSucceeded only.
  Failure last_error;
  std::vector<AttemptRecord> history;  // Oldest first, at most kMaxHistory.
  // The decision recorded for the latest failure, returned again to a duplicate.
  DecisionKind last_decision = DecisionKind::kUnspecified;
  ErrorClass last_error_class = ErrorClass::kUnspecified;  // Class after classification.
  absl::Time created_at = absl::UnixEpoch();
  absl::Time updated_at = absl::UnixEpoch();
  // When the current retry life began, if not at first_seen_at: the last replay that reset the
  // envelope's attempts. InfinitePast: never replayed so (see RetryLifeStart).
  absl::Time retry_life_started_at = absl::InfinitePast();
};

// When `e`'s current retry life began: first_seen_at, or the last replay that reset its
// attempts. The policy's max_retry_duration counts from here.
inline absl::Time RetryLifeStart(const Envelope& e) {
  return e.retry_life_started_at == absl::InfinitePast() ? e.first_seen_at
                                                         : e.retry_life_started_at;
}

// retryd's answer to a failure.
struct Decision {
  DecisionKind kind = DecisionKind::kUnspecified;
  DeadLetterReason reason = DeadLetterReason::kNone;
  absl::Time next_retry_at = absl::InfinitePast();  // kScheduled only.
  absl::Duration delay = absl::ZeroDuration();      // kScheduled only.
  int attempt = 0;
  ErrorClass error_class = ErrorClass::kUnspecified;
  bool duplicate = false;
  EnvelopeState state = EnvelopeState::kUnspecified;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_ENVELOPE_H_
