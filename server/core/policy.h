// Retry policies: the per-service rules that decide whether and when a failure is retried.
// Plain value types with documented defaults (the built-in default policy of DESIGN.md).
#ifndef RETRYD_SERVER_CORE_POLICY_H_
#define RETRYD_SERVER_CORE_POLICY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "server/core/envelope.h"

namespace retryd {

enum class JitterKind : int {
  kNone = 1,
  kFull = 2,
  kEqual = 3,
  kDecorrelated = 4,
  kProportional = 5,
};

// Exponential backoff: delay before retry n (n = attempts made) = min(max, initial ×
// multiplier^(n−1)), then jittered (see backoff.h).
struct BackoffSpec {
  absl::Duration initial = absl::Seconds(2);
  double multiplier = 3.0;
  absl::Duration max = absl::Seconds(120);
  JitterKind jitter = JitterKind::kProportional;
  double jitter_ratio = 0.2;

  // 2 s × 3 capped at 120 s, ±20 % proportional jitter.
  static BackoffSpec DefaultTransient() { return BackoffSpec{}; }
  // 30 s × 2 capped at 10 min, ±20 % proportional jitter.
  static BackoffSpec DefaultRecoverable() {
    return BackoffSpec{absl::Seconds(30), 2.0, absl::Minutes(10), JitterKind::kProportional, 0.2};
  }
};

// Maps an error code (exact, or a prefix ending in '*') to a class.
struct ClassificationRule {
  std::string error_code;
  ErrorClass error_class = ErrorClass::kTransient;
};

enum class BudgetExhaustedAction : int { kDefer = 1, kDeadLetter = 2 };

// The retry budget (retry_budget.h). Off unless the policy has a `budget` block; its values then
// default to the spirit of Finagle's retry budget: retries may add 20 % to the first attempts of
// the last minute, with a floor of 600 a minute (10 a second) so that a quiet service is never
// starved; past that, retries are deferred and paced, not dropped.
struct RetryBudgetSpec {
  bool enabled = false;
  absl::Duration window = absl::Seconds(60);
  double ratio = 0.2;
  int64_t min_retries_per_window = 600;
  BudgetExhaustedAction when_exhausted = BudgetExhaustedAction::kDefer;
};

// The circuit breaker (circuit_breaker.h). Off by default: it stops every retry of a service, and
// its failure rate is only meaningful when workers report their first-attempt successes with
// RecordOutcomes. The numbers follow resilience4j's defaults: 50 % failures over at least 100
// calls, 60 s open, 10 trial calls (here: all must succeed), and a 10 min cap on the doubling.
struct CircuitSpec {
  bool enabled = false;
  absl::Duration window = absl::Seconds(60);
  double failure_rate_threshold = 0.5;
  int64_t minimum_calls = 100;
  absl::Duration open_duration = absl::Seconds(60);
  absl::Duration max_open_duration = absl::Minutes(10);
  int half_open_trials = 10;
};

struct DeadLetterSpec {
  absl::Duration retention = absl::ZeroDuration();  // 0 = keep until purged.
  absl::Duration escalation_age = absl::Hours(24);
};

struct ReplaySpec {
  double max_per_second = 100.0;
  std::vector<std::string> blocked_schema_versions;
};

struct Policy {
  // Exact service name, "prefix.*", or "default".
  std::string name = "default";
  int max_attempts = 5;
  absl::Duration max_retry_duration = absl::ZeroDuration();  // 0 = no deadline.
  BackoffSpec backoff = BackoffSpec::DefaultTransient();
  BackoffSpec recoverable_backoff = BackoffSpec::DefaultRecoverable();
  bool honor_retry_after = true;
  absl::Duration max_retry_after = absl::Hours(1);
  std::vector<ClassificationRule> rules;
  ErrorClass unclassified = ErrorClass::kTransient;
  RetryBudgetSpec budget;
  CircuitSpec circuit;
  DeadLetterSpec dead_letter;
  ReplaySpec replay;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_POLICY_H_
