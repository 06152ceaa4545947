#include "server/core/circuit_breaker.h"

#include <cstdint>

#include "gtest/gtest.h"
#include "server/core/policy.h"

namespace retryd {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

CircuitSpec Spec(bool enabled = true) {
  CircuitSpec spec;
  spec.enabled = enabled;
  spec.window = absl::Seconds(60);
  spec.failure_rate_threshold = 0.5;
  spec.minimum_calls = 4;
  spec.open_duration = absl::Seconds(30);
  spec.max_open_duration = absl::Seconds(100);
  spec.half_open_trials = 2;
  return spec;
}

constexpr ErrorClass kTransient = ErrorClass::kTransient;

// A breaker opened at At(10) by two successes and two failures (rate 0.5, four calls).
CircuitBreaker OpenedAt10() {
  CircuitBreaker cb(Spec(), At(0));
  cb.OnSuccess(At(1), 0);
  cb.OnSuccess(At(2), 0);
  cb.OnFailure(At(3), kTransient, 0);
  cb.OnFailure(At(10), ErrorClass::kRecoverable, 0);
  return cb;
}

TEST(CircuitBreakerTest, StartsClosedWithNoLimit) {
  CircuitBreaker cb(Spec(), At(0));
  const CircuitView v = cb.View(At(0));
  EXPECT_EQ(v.state, CircuitState::kClosed);
  EXPECT_EQ(v.since, At(0));
  EXPECT_EQ(v.next_probe_at, absl::InfinitePast());
  EXPECT_EQ(v.failure_rate, 0);
  EXPECT_EQ(cb.LeaseAllowance(), INT64_MAX);
}

TEST(CircuitBreakerTest, StaysClosedBelowMinimumCalls) {
  CircuitBreaker cb(Spec(), At(0));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cb.OnFailure(At(i), kTransient, 0));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.FailureRate(At(3)), 1.0);
}

TEST(CircuitBreakerTest, StaysClosedBelowTheThreshold) {
  CircuitBreaker cb(Spec(), At(0));
  for (int i = 0; i < 3; ++i) cb.OnSuccess(At(i), 0);
  EXPECT_FALSE(cb.OnFailure(At(4), kTransient, 0));
  EXPECT_FALSE(cb.OnFailure(At(5), kTransient, 0));  // 2 of 5 = 0.4 < 0.5.
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_DOUBLE_EQ(cb.FailureRate(At(5)), 0.4);
}

TEST(CircuitBreakerTest, OpensAtTheThresholdWithMinimumCalls) {
  CircuitBreaker cb(Spec(), At(0));
  cb.OnSuccess(At(1), 0);
  cb.OnSuccess(At(2), 0);
  EXPECT_FALSE(cb.OnFailure(At(3), kTransient, 0));
  EXPECT_TRUE(cb.OnFailure(At(10), ErrorClass::kRecoverable, 0));  // 2 of 4 = 0.5.
  const CircuitView v = cb.View(At(10));
  EXPECT_EQ(v.state, CircuitState::kOpen);
  EXPECT_EQ(v.since, At(10));
  EXPECT_EQ(v.next_probe_at, At(40));
  EXPECT_DOUBLE_EQ(v.failure_rate, 0.5);
  EXPECT_EQ(cb.LeaseAllowance(), 0);
  const CircuitRecord r = cb.Record();
  EXPECT_EQ(r.state, CircuitState::kOpen);
  EXPECT_EQ(r.open_duration, absl::Seconds(30));
}

TEST(CircuitBreakerTest, PermanentFailuresDoNotCount) {
  CircuitBreaker cb(Spec(), At(0));
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(cb.OnFailure(At(i), ErrorClass::kPermanent, 0));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.FailureRate(At(10)), 0);
}

TEST(CircuitBreakerTest, OldOutcomesLeaveTheWindow) {
  CircuitBreaker cb(Spec(), At(0));
  for (int i = 0; i < 3; ++i) cb.OnFailure(At(0), kTransient, 0);
  // Second 0 has left the 60 s window: one failure in the window, not four.
  EXPECT_FALSE(cb.OnFailure(At(60), kTransient, 0));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.FailureRate(At(60)), 1.0);
  EXPECT_EQ(cb.FailureRate(At(200)), 0);
}

TEST(CircuitBreakerTest, FirstAttemptSuccessesLowerTheRate) {
  CircuitBreaker cb(Spec(), At(0));
  cb.OnFirstAttemptOutcomes(At(0), 8, 0);
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(cb.OnFailure(At(1), kTransient, 0));
  EXPECT_TRUE(cb.OnFailure(At(1), kTransient, 0));  // 8 of 16.
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreakerTest, RecordedFirstAttemptFailuresOpenIt) {
  CircuitBreaker cb(Spec(), At(0));
  EXPECT_FALSE(cb.OnFirstAttemptOutcomes(At(0), 2, 1));  // 3 calls < minimum_calls 4.
  EXPECT_TRUE(cb.OnFirstAttemptOutcomes(At(1), 0, 1));   // 2 of 4.
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_EQ(cb.View(At(1)).next_probe_at, At(31));
}

TEST(CircuitBreakerTest, FirstFailuresCountedBothWaysCountOnce) {
  CircuitBreaker cb(Spec(), At(0));
  EXPECT_FALSE(cb.OnFirstAttemptOutcomes(At(0), 4, 3));  // 3 of 7.
  // The same three failures, also reported one by one: still 3 of 7, not 6 of 10.
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(cb.OnFailure(At(1), kTransient, 0));
  EXPECT_DOUBLE_EQ(cb.FailureRate(At(1)), 3.0 / 7.0);
  // Failed leased retries add to them.
  EXPECT_TRUE(cb.OnFailure(At(2), kTransient, 55));  // 4 of 8.
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreakerTest, OpenTurnsHalfOpenAfterOpenDuration) {
  CircuitBreaker cb = OpenedAt10();
  EXPECT_EQ(cb.NextTransition(), At(40));
  EXPECT_FALSE(cb.Advance(At(40) - absl::Microseconds(1)));
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  // Outcomes while OPEN move nothing.
  EXPECT_FALSE(cb.OnSuccess(At(20), 0));
  EXPECT_FALSE(cb.OnFailure(At(20), kTransient, 0));
  EXPECT_TRUE(cb.Advance(At(40)));
  const CircuitView v = cb.View(At(40));
  EXPECT_EQ(v.state, CircuitState::kHalfOpen);
  EXPECT_EQ(v.since, At(40));
  EXPECT_EQ(v.next_probe_at, absl::InfinitePast());
  EXPECT_EQ(cb.LeaseAllowance(), 2);
  EXPECT_EQ(cb.NextTransition(), absl::InfiniteFuture());
}

TEST(CircuitBreakerTest, HalfOpenClosesWhenAllTrialsSucceed) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  cb.OnLeased(At(40), {7}, /*drained=*/false);
  EXPECT_EQ(cb.LeaseAllowance(), 1);
  cb.OnLeased(At(40), {8}, /*drained=*/false);
  EXPECT_EQ(cb.LeaseAllowance(), 0);
  // Outcomes of non-trials (an older lease, a first failure) move nothing.
  EXPECT_FALSE(cb.OnSuccess(At(41), 99));
  EXPECT_FALSE(cb.OnFailure(At(41), kTransient, 0));
  EXPECT_FALSE(cb.OnSuccess(At(42), 7));
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  EXPECT_TRUE(cb.OnSuccess(At(43), 8));
  const CircuitView v = cb.View(At(43));
  EXPECT_EQ(v.state, CircuitState::kClosed);
  EXPECT_EQ(v.since, At(43));
  EXPECT_EQ(v.failure_rate, 0);  // The window starts afresh.
  EXPECT_EQ(cb.LeaseAllowance(), INT64_MAX);
  // The open duration is back to the policy's.
  for (int i = 0; i < 4; ++i) cb.OnFailure(At(50), kTransient, 0);
  EXPECT_EQ(cb.View(At(50)).next_probe_at, At(80));
}

TEST(CircuitBreakerTest, HalfOpenClosesWhenFewerWereDueAndAllSucceeded) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  // One due envelope for two trial places: the lease takes it and finds no more.
  EXPECT_FALSE(cb.OnLeased(At(40), {7}, /*drained=*/true));
  EXPECT_EQ(cb.LeaseAllowance(), 1);
  EXPECT_TRUE(cb.OnSuccess(At(41), 7));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
}

TEST(CircuitBreakerTest, HalfOpenClosesWhenALaterLeaseFindsNoMore) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  EXPECT_FALSE(cb.OnLeased(At(40), {7}, /*drained=*/false));  // max_messages 1, more due.
  EXPECT_FALSE(cb.OnSuccess(At(41), 7));
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  // Nothing due and no trial yet: an empty drained lease closes nothing.
  CircuitBreaker fresh = OpenedAt10();
  ASSERT_TRUE(fresh.Advance(At(40)));
  EXPECT_FALSE(fresh.OnLeased(At(40), {}, /*drained=*/true));
  EXPECT_EQ(fresh.state(), CircuitState::kHalfOpen);
  // The next lease finds no more due: every trial handed out succeeded.
  EXPECT_TRUE(cb.OnLeased(At(42), {}, /*drained=*/true));
  EXPECT_EQ(cb.View(At(42)).since, At(42));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
}

TEST(CircuitBreakerTest, HalfOpenWaitsForATrialStillOut) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  EXPECT_FALSE(cb.OnLeased(At(40), {7}, /*drained=*/false));
  EXPECT_FALSE(cb.OnLeased(At(40), {8}, /*drained=*/true));
  EXPECT_FALSE(cb.OnSuccess(At(41), 7));
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);  // 8 has not answered.
  EXPECT_TRUE(cb.OnFailure(At(42), kTransient, 8));
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
}

TEST(CircuitBreakerTest, FailedTrialReopensWithDoubledDurationUpToTheCap) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  cb.OnLeased(At(40), {7, 8}, /*drained=*/false);
  EXPECT_TRUE(cb.OnFailure(At(41), kTransient, 7));
  CircuitView v = cb.View(At(41));
  EXPECT_EQ(v.state, CircuitState::kOpen);
  EXPECT_EQ(v.since, At(41));
  EXPECT_EQ(v.next_probe_at, At(101));  // 2 × 30 s.
  ASSERT_TRUE(cb.Advance(At(101)));
  cb.OnLeased(At(40), {9}, /*drained=*/false);
  // A lease expiry is a TRANSIENT failure of the trial.
  EXPECT_TRUE(cb.OnFailure(At(102), kTransient, 9));
  EXPECT_EQ(cb.View(At(102)).next_probe_at, At(202));  // 120 s capped at 100 s.
  ASSERT_TRUE(cb.Advance(At(202)));
  cb.OnLeased(At(40), {10}, /*drained=*/false);
  EXPECT_TRUE(cb.OnFailure(At(203), ErrorClass::kRecoverable, 10));
  EXPECT_EQ(cb.View(At(203)).next_probe_at, At(303));
}

TEST(CircuitBreakerTest, PermanentTrialOutcomeFreesItsPlace) {
  CircuitBreaker cb = OpenedAt10();
  ASSERT_TRUE(cb.Advance(At(40)));
  cb.OnLeased(At(40), {7, 8}, /*drained=*/false);
  EXPECT_EQ(cb.LeaseAllowance(), 0);
  EXPECT_FALSE(cb.OnFailure(At(41), ErrorClass::kPermanent, 7));
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(cb.LeaseAllowance(), 1);
}

TEST(CircuitBreakerTest, ForceOpenHoldsEverythingUntilAuto) {
  CircuitBreaker cb(Spec(), At(0));
  EXPECT_TRUE(cb.SetOverride(At(5), CircuitOverride::kForceOpen, "db migration", "ipv4:1.2.3.4:5"));
  CircuitView v = cb.View(At(5));
  EXPECT_EQ(v.state, CircuitState::kOpen);
  EXPECT_EQ(v.since, At(5));
  EXPECT_EQ(v.next_probe_at, absl::InfinitePast());  // No probe while forced.
  EXPECT_EQ(v.override_mode, CircuitOverride::kForceOpen);
  EXPECT_EQ(cb.LeaseAllowance(), 0);
  EXPECT_FALSE(cb.Advance(At(5000)));
  EXPECT_FALSE(cb.OnSuccess(At(5001), 0));
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  const CircuitRecord r = cb.Record();
  EXPECT_EQ(r.override_note, "db migration");
  EXPECT_EQ(r.override_peer, "ipv4:1.2.3.4:5");
  EXPECT_EQ(r.override_at, At(5));
  // Back to AUTO: through HALF_OPEN, trials first.
  EXPECT_TRUE(cb.SetOverride(At(6000), CircuitOverride::kAuto, "", ""));
  v = cb.View(At(6000));
  EXPECT_EQ(v.state, CircuitState::kHalfOpen);
  EXPECT_EQ(v.since, At(6000));
  EXPECT_EQ(cb.LeaseAllowance(), 2);
  // A failed trial after a forced open opens for the policy's duration.
  cb.OnLeased(At(40), {1}, /*drained=*/false);
  EXPECT_TRUE(cb.OnFailure(At(6001), kTransient, 1));
  EXPECT_EQ(cb.View(At(6001)).next_probe_at, At(6031));
}

TEST(CircuitBreakerTest, ForceClosedNeverTripsAndAutoStartsAfresh) {
  CircuitBreaker cb = OpenedAt10();
  cb.SetOverride(At(11), CircuitOverride::kForceClosed, "", "");
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.LeaseAllowance(), INT64_MAX);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(cb.OnFailure(At(12), kTransient, 0));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.View(At(12)).since, At(11));
  cb.SetOverride(At(13), CircuitOverride::kAuto, "", "");
  const CircuitView v = cb.View(At(13));
  EXPECT_EQ(v.state, CircuitState::kClosed);
  EXPECT_EQ(v.since, At(13));
  EXPECT_EQ(v.failure_rate, 0);
  // AUTO while AUTO changes nothing but the note.
  cb.SetOverride(At(14), CircuitOverride::kAuto, "again", "");
  EXPECT_EQ(cb.View(At(14)).since, At(13));
}

TEST(CircuitBreakerTest, DisabledBreakerNeverTripsButCanBeForced) {
  CircuitBreaker cb(Spec(/*enabled=*/false), At(0));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(cb.OnFailure(At(1), kTransient, 0));
  EXPECT_EQ(cb.state(), CircuitState::kClosed);
  EXPECT_EQ(cb.FailureRate(At(1)), 1.0);
  cb.SetOverride(At(2), CircuitOverride::kForceOpen, "", "");
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  cb.SetOverride(At(3), CircuitOverride::kAuto, "", "");
  EXPECT_EQ(cb.state(), CircuitState::kClosed);  // Nothing to probe for.
}

TEST(CircuitBreakerTest, RestoreResumesAStoredCircuit) {
  CircuitBreaker opened = OpenedAt10();
  CircuitRecord r = opened.Record();
  CircuitBreaker cb(Spec(), At(100));
  cb.Restore(r);
  EXPECT_EQ(cb.state(), CircuitState::kOpen);
  EXPECT_EQ(cb.View(At(20)).next_probe_at, At(40));
  EXPECT_TRUE(cb.Advance(At(40)));
  EXPECT_EQ(cb.state(), CircuitState::kHalfOpen);
  // A stored override wins over the automatic state.
  r.override_mode = CircuitOverride::kForceClosed;
  CircuitBreaker forced(Spec(), At(100));
  forced.Restore(r);
  EXPECT_EQ(forced.state(), CircuitState::kClosed);
  // A policy that no longer enables the breaker restores as CLOSED.
  r.override_mode = CircuitOverride::kAuto;
  CircuitBreaker off(Spec(/*enabled=*/false), At(100));
  off.Restore(r);
  EXPECT_EQ(off.state(), CircuitState::kClosed);
}

}  // namespace
}  // namespace retryd
