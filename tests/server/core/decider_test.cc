#include "server/core/decider.h"

#include <string>

#include "gtest/gtest.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"
#include "tests/testing/scripted_random.h"

namespace retryd {
namespace {

using testing::ScriptedRandom;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

DecideInput Input(int attempt, Failure failure = {}) {
  DecideInput in;
  in.attempt = attempt;
  in.first_seen_at = kNow - absl::Minutes(1);
  in.failure = std::move(failure);
  return in;
}

Failure WithCode(std::string code, ErrorClass cls = ErrorClass::kUnspecified, int http = 0) {
  Failure f;
  f.error_code = std::move(code);
  f.error_class = cls;
  f.http_status = http;
  return f;
}

Failure WithRetryAfter(absl::Duration retry_after) {
  Failure f = WithCode("RATE_LIMITED", ErrorClass::kUnspecified, 429);
  f.retry_after = retry_after;
  return f;
}

// The default policy without jitter, so delays are the plain cadence.
Policy NoJitter() {
  Policy p;
  p.backoff.jitter = JitterKind::kNone;
  p.recoverable_backoff.jitter = JitterKind::kNone;
  return p;
}

void ExpectScheduled(const Decision& d, int attempt, ErrorClass cls, absl::Duration delay) {
  EXPECT_EQ(d.kind, DecisionKind::kScheduled);
  EXPECT_EQ(d.state, EnvelopeState::kScheduled);
  EXPECT_EQ(d.reason, DeadLetterReason::kNone);
  EXPECT_EQ(d.attempt, attempt);
  EXPECT_EQ(d.error_class, cls);
  EXPECT_EQ(d.delay, delay);
  EXPECT_EQ(d.next_retry_at, kNow + delay);
  EXPECT_FALSE(d.duplicate);
}

void ExpectDeadLettered(const Decision& d, int attempt, ErrorClass cls, DeadLetterReason reason) {
  EXPECT_EQ(d.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(d.state, EnvelopeState::kDeadLettered);
  EXPECT_EQ(d.reason, reason);
  EXPECT_EQ(d.attempt, attempt);
  EXPECT_EQ(d.error_class, cls);
  EXPECT_EQ(d.delay, absl::ZeroDuration());
  EXPECT_EQ(d.next_retry_at, absl::InfinitePast());
}

TEST(DeciderTest, DefaultPolicyFirstFailure) {
  ScriptedRandom rng({0.5});  // Proportional jitter factor exactly 1.
  const Decision d = Decide(Policy{}, Input(1, WithCode("UPSTREAM_TIMEOUT")), kNow, rng);
  ExpectScheduled(d, 1, ErrorClass::kTransient, absl::Seconds(2));
}

TEST(DeciderTest, DefaultPolicyJitterIsTwentyPercent) {
  ScriptedRandom low({0.0});
  EXPECT_EQ(Decide(Policy{}, Input(2), kNow, low).delay, absl::Seconds(6) * 0.8);
  ScriptedRandom high({0.999});
  const absl::Duration d = Decide(Policy{}, Input(2), kNow, high).delay;
  EXPECT_GT(d, absl::Milliseconds(7190));
  EXPECT_LT(d, absl::Milliseconds(7200));
}

TEST(DeciderTest, TransientCadenceThenExhaustion) {
  const Policy p = NoJitter();  // max_attempts 5.
  const absl::Duration want[] = {absl::Seconds(2), absl::Seconds(6), absl::Seconds(18),
                                 absl::Seconds(54)};
  for (int attempt = 1; attempt <= 4; ++attempt) {
    ScriptedRandom rng({});
    ExpectScheduled(Decide(p, Input(attempt), kNow, rng), attempt, ErrorClass::kTransient,
                    want[attempt - 1]);
  }
  for (int attempt : {5, 6, 100}) {
    ScriptedRandom rng({});  // No delay is computed, so nothing is drawn.
    ExpectDeadLettered(Decide(p, Input(attempt), kNow, rng), attempt, ErrorClass::kTransient,
                       DeadLetterReason::kRetryExhausted);
  }
}

TEST(DeciderTest, SingleAttemptPolicyDeadLettersTheFirstFailure) {
  Policy p;
  p.max_attempts = 1;
  ScriptedRandom rng({});
  ExpectDeadLettered(Decide(p, Input(1), kNow, rng), 1, ErrorClass::kTransient,
                     DeadLetterReason::kRetryExhausted);
}

TEST(DeciderTest, AttemptBelowOneCountsAsOne) {
  ScriptedRandom rng({});
  ExpectScheduled(Decide(NoJitter(), Input(0), kNow, rng), 1, ErrorClass::kTransient,
                  absl::Seconds(2));
}

TEST(DeciderTest, PermanentIsNeverRetried) {
  Policy p = NoJitter();
  p.rules = {{"SCHEMA_*", ErrorClass::kPermanent}};
  const Failure failures[] = {WithCode("X", ErrorClass::kPermanent), WithCode("SCHEMA_BAD"),
                              WithCode("", ErrorClass::kUnspecified, 404),
                              WithCode("", ErrorClass::kUnspecified, 501)};
  for (const Failure& f : failures) {
    ScriptedRandom rng({});
    ExpectDeadLettered(Decide(p, Input(1, f), kNow, rng), 1, ErrorClass::kPermanent,
                       DeadLetterReason::kNonRetryable);
  }
  // Permanent is reported as such even when attempts are also exhausted.
  ScriptedRandom rng({});
  ExpectDeadLettered(Decide(p, Input(9, WithCode("SCHEMA_BAD")), kNow, rng), 9,
                     ErrorClass::kPermanent, DeadLetterReason::kNonRetryable);
}

TEST(DeciderTest, RecoverableUsesTheSlowerCadence) {
  Policy p = NoJitter();
  p.max_attempts = 10;
  const absl::Duration want[] = {absl::Seconds(30),  absl::Seconds(60),  absl::Seconds(120),
                                 absl::Seconds(240), absl::Seconds(480), absl::Minutes(10),
                                 absl::Minutes(10)};
  for (int attempt = 1; attempt <= 7; ++attempt) {
    ScriptedRandom rng({});
    ExpectScheduled(Decide(p, Input(attempt, WithCode("DEP_DOWN", ErrorClass::kRecoverable)),
                           kNow, rng),
                    attempt, ErrorClass::kRecoverable, want[attempt - 1]);
  }
  // Classified by a rule, and with the default ±20 % jitter.
  Policy rules;
  rules.rules = {{"DEP_DOWN", ErrorClass::kRecoverable}};
  ScriptedRandom rng({0.25});  // Factor 1 + (−0.2 + 0.4 × 0.25) = 0.9.
  ExpectScheduled(Decide(rules, Input(2, WithCode("DEP_DOWN")), kNow, rng), 2,
                  ErrorClass::kRecoverable, absl::Seconds(60) * (1.0 + (-0.2 + 0.4 * 0.25)));
}

TEST(DeciderTest, RetryAfterIsHonoredAndCapped) {
  const Policy p = NoJitter();  // Attempt 1: 2 s; max_retry_after 1 h.
  struct Case {
    const char* name;
    absl::Duration retry_after;
    absl::Duration want;
  } cases[] = {
      {"longer than backoff", absl::Seconds(30), absl::Seconds(30)},
      {"shorter than backoff", absl::Seconds(1), absl::Seconds(2)},
      {"past backoff max", absl::Minutes(5), absl::Minutes(5)},
      {"capped", absl::Hours(2), absl::Hours(1)},
      {"zero", absl::ZeroDuration(), absl::Seconds(2)},
      {"negative", absl::Seconds(-30), absl::Seconds(2)},
  };
  for (const Case& c : cases) {
    ScriptedRandom rng({});
    const Decision d = Decide(p, Input(1, WithRetryAfter(c.retry_after)), kNow, rng);
    EXPECT_EQ(d.delay, c.want) << c.name;
    EXPECT_EQ(d.next_retry_at, kNow + c.want) << c.name;
  }
}

TEST(DeciderTest, RetryAfterCapIsThePolicys) {
  Policy p = NoJitter();
  p.max_retry_after = absl::Seconds(10);
  ScriptedRandom rng({});
  EXPECT_EQ(Decide(p, Input(1, WithRetryAfter(absl::Minutes(1))), kNow, rng).delay,
            absl::Seconds(10));
}

TEST(DeciderTest, RetryAfterIgnoredWhenDisabled) {
  Policy p = NoJitter();
  p.honor_retry_after = false;
  ScriptedRandom rng({});
  EXPECT_EQ(Decide(p, Input(1, WithRetryAfter(absl::Minutes(1))), kNow, rng).delay,
            absl::Seconds(2));
}

TEST(DeciderTest, DeadlineExceeded) {
  Policy p = NoJitter();
  p.max_retry_duration = absl::Minutes(10);
  DecideInput in = Input(4);  // Delay 54 s.

  in.first_seen_at = kNow - absl::Minutes(9);  // Deadline now + 60 s.
  ScriptedRandom r1({});
  ExpectScheduled(Decide(p, in, kNow, r1), 4, ErrorClass::kTransient, absl::Seconds(54));

  in.first_seen_at = kNow - absl::Minutes(10) + absl::Seconds(54);  // Exactly at the deadline.
  ScriptedRandom r2({});
  ExpectScheduled(Decide(p, in, kNow, r2), 4, ErrorClass::kTransient, absl::Seconds(54));

  in.first_seen_at -= absl::Microseconds(1);  // Just past it.
  ScriptedRandom r3({});
  ExpectDeadLettered(Decide(p, in, kNow, r3), 4, ErrorClass::kTransient,
                     DeadLetterReason::kDeadlineExceeded);
}

TEST(DeciderTest, RetryAfterCanPushPastTheDeadline) {
  Policy p = NoJitter();
  p.max_retry_duration = absl::Minutes(10);
  DecideInput in = Input(1, WithRetryAfter(absl::Minutes(20)));
  in.first_seen_at = kNow;
  ScriptedRandom rng({});
  ExpectDeadLettered(Decide(p, in, kNow, rng), 1, ErrorClass::kTransient,
                     DeadLetterReason::kDeadlineExceeded);
}

TEST(DeciderTest, NoDeadlineByDefault) {
  DecideInput in = Input(2);
  in.first_seen_at = kNow - absl::Hours(24 * 365);
  ScriptedRandom rng({});
  ExpectScheduled(Decide(NoJitter(), in, kNow, rng), 2, ErrorClass::kTransient, absl::Seconds(6));
}

TEST(DeciderTest, DecorrelatedJitterUsesThePreviousDelay) {
  Policy p;
  p.backoff.jitter = JitterKind::kDecorrelated;
  DecideInput in = Input(3);
  in.previous_delay = absl::Seconds(10);
  ScriptedRandom rng({0.25});  // 2 s + (30 s − 2 s) × 0.25.
  ExpectScheduled(Decide(p, in, kNow, rng), 3, ErrorClass::kTransient, absl::Seconds(9));
}

}  // namespace
}  // namespace retryd
