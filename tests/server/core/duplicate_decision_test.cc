#include "server/core/duplicate_decision.h"

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/envelope.h"

namespace retryd {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

// An envelope whose first failure was scheduled 2 s out, as the engine records it.
Envelope ScheduledOnce() {
  Envelope e;
  e.service = "billing";
  e.message_id = "m-1";
  e.attempt = 1;
  e.state = EnvelopeState::kScheduled;
  e.next_retry_at = kNow + absl::Seconds(2);
  e.last_decision = DecisionKind::kScheduled;
  e.last_error_class = ErrorClass::kTransient;
  AttemptRecord r;
  r.attempt = 1;
  r.failed_at = kNow;
  r.delay = absl::Seconds(2);
  e.history.push_back(r);
  return e;
}

TEST(DuplicateDecisionTest, ScheduledHasItsRealTime) {
  const Decision d = DuplicateDecision(ScheduledOnce());
  EXPECT_TRUE(d.duplicate);
  EXPECT_EQ(d.kind, DecisionKind::kScheduled);
  EXPECT_EQ(d.state, EnvelopeState::kScheduled);
  EXPECT_EQ(d.next_retry_at, kNow + absl::Seconds(2));
  EXPECT_EQ(d.delay, absl::Seconds(2));
  EXPECT_EQ(d.attempt, 1);
  EXPECT_EQ(d.error_class, ErrorClass::kTransient);
  EXPECT_EQ(d.reason, DeadLetterReason::kNone);
}

TEST(DuplicateDecisionTest, LeasedIsAScheduledRetryUnderWayWithNoTime) {
  Envelope e = ScheduledOnce();
  e.state = EnvelopeState::kLeased;
  e.lease_expires_at = kNow + absl::Seconds(32);
  const Decision d = DuplicateDecision(e);
  EXPECT_EQ(d.kind, DecisionKind::kScheduled);
  EXPECT_EQ(d.state, EnvelopeState::kLeased);
  EXPECT_EQ(d.next_retry_at, absl::InfinitePast());
  EXPECT_EQ(d.attempt, 1);
}

TEST(DuplicateDecisionTest, SucceededHasNoTimeAndNoDelay) {
  Envelope e = ScheduledOnce();
  e.state = EnvelopeState::kSucceeded;
  e.completed_at = kNow + absl::Seconds(3);
  const Decision d = DuplicateDecision(e);
  EXPECT_EQ(d.kind, DecisionKind::kScheduled);
  EXPECT_EQ(d.state, EnvelopeState::kSucceeded);
  EXPECT_EQ(d.next_retry_at, absl::InfinitePast());
  EXPECT_EQ(d.delay, absl::ZeroDuration());
}

// Dead-lettered after its retries failed: the first failure was scheduled, the envelope is dead
// now, and the answer says so with the reason.
TEST(DuplicateDecisionTest, DeadLetteredAfterRetriesHasItsReason) {
  Envelope e = ScheduledOnce();
  e.attempt = 5;
  e.state = EnvelopeState::kDeadLettered;
  e.dead_letter_reason = DeadLetterReason::kRetryExhausted;
  e.dead_lettered_at = kNow + absl::Minutes(2);
  e.last_decision = DecisionKind::kDeadLettered;
  const Decision d = DuplicateDecision(e);
  EXPECT_EQ(d.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(d.state, EnvelopeState::kDeadLettered);
  EXPECT_EQ(d.reason, DeadLetterReason::kRetryExhausted);
  EXPECT_EQ(d.next_retry_at, absl::InfinitePast());
  EXPECT_EQ(d.attempt, 5);
}

// Re-scheduled by a replay: due at the replay's time, no backoff delay of its own.
TEST(DuplicateDecisionTest, ReplayedIsScheduledAtTheReplayTime) {
  Envelope e = ScheduledOnce();
  e.history.back().delay = absl::ZeroDuration();  // The failure that dead-lettered it.
  e.next_retry_at = kNow + absl::Hours(1);
  const Decision d = DuplicateDecision(e);
  EXPECT_EQ(d.kind, DecisionKind::kScheduled);
  EXPECT_EQ(d.next_retry_at, kNow + absl::Hours(1));
  EXPECT_EQ(d.delay, absl::ZeroDuration());
}

}  // namespace
}  // namespace retryd
