// The stored form of a service's guards (guard_state.h): the documented bytes, exact round trips
// through the breaker, the budget and their sliding counters, and damaged values refused.
#include "server/core/guard_state.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/circuit_breaker.h"
#include "server/core/policy.h"
#include "server/core/retry_budget.h"
#include "server/core/sliding_counter.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

SlidingCounter::Buckets Never(int64_t bucket_us) {
  SlidingCounter::Buckets b;
  b.bucket_us = bucket_us;
  return b;
}

TEST(GuardStateTest, EncodesAsDocumented) {
  GuardState state;
  state.circuit.retry_failures.bucket_us = 5;
  state.circuit.retry_failures.head = 3;
  state.circuit.retry_failures.counts = {2, 0, -1};
  state.circuit.first_failures = Never(5);
  state.circuit.recorded_failures = Never(5);
  state.circuit.successes = Never(5);
  state.circuit.trials = {7, 300};
  state.circuit.trial_successes = 1;
  const std::string never = std::string("\x05", 1) + std::string(9, '\xff') + "\x01" +
                            std::string("\x00", 1);
  const std::string expected = std::string("\x01", 1) +                  // format
                               std::string("\x05\x06\x03\x04\x00\x01", 6) +  // retry failures
                               never + never + never +                   // unused counters
                               std::string("\x02\x0e\xd8\x04", 4) +      // trials 7, 300
                               std::string("\x02\x00", 2) +              // 1 success, not drained
                               std::string("\x00", 1);                   // no budget
  EXPECT_EQ(EncodeGuardState(state), expected);

  absl::StatusOr<GuardState> decoded = DecodeGuardState(expected);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->circuit.retry_failures.head, 3);
  EXPECT_EQ(decoded->circuit.retry_failures.counts, (std::vector<int64_t>{2, 0, -1}));
  EXPECT_EQ(decoded->circuit.successes.head, INT64_MIN);
  EXPECT_EQ(decoded->circuit.trials, (std::vector<int64_t>{7, 300}));
  EXPECT_EQ(decoded->circuit.trial_successes, 1);
  EXPECT_FALSE(decoded->circuit.drained);
  EXPECT_FALSE(decoded->budget.has_value());
}

TEST(GuardStateTest, SlidingCounterRoundTripsAcrossTheRingsWrap) {
  SlidingCounter c(absl::Seconds(60), 60);
  // 70 s of events: the ring wraps, the first ten seconds slid out.
  for (int s = 0; s < 70; ++s) c.Add(At(s), s + 1);
  const SlidingCounter::Buckets saved = c.Save();
  EXPECT_EQ(saved.counts.size(), 60u);
  EXPECT_EQ(saved.counts.front(), 70);  // Newest first.
  SlidingCounter restored(absl::Seconds(60), 60);
  ASSERT_TRUE(restored.Load(saved));
  for (int s = 69; s < 140; s += 7) EXPECT_EQ(restored.Sum(At(s)), c.Sum(At(s))) << s;
  EXPECT_EQ(restored.Sum(At(129)), 0);

  // Counts saved with another bucket length are dropped: the policy's window changed.
  SlidingCounter other(absl::Seconds(120), 60);
  EXPECT_FALSE(other.Load(saved));
  EXPECT_EQ(other.Sum(At(69)), 0);
}

CircuitSpec Spec() {
  CircuitSpec spec;
  spec.enabled = true;
  spec.window = absl::Seconds(60);
  spec.failure_rate_threshold = 0.5;
  spec.minimum_calls = 5;
  spec.open_duration = absl::Seconds(30);
  spec.max_open_duration = absl::Seconds(100);
  spec.half_open_trials = 3;
  return spec;
}

// A breaker stored and restored through the encoding, as the engine does at start-up.
CircuitBreaker ThroughTheStore(const CircuitBreaker& cb, absl::Time started) {
  GuardState state;
  state.circuit = cb.SaveWindows();
  absl::StatusOr<GuardState> decoded = DecodeGuardState(EncodeGuardState(state));
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  CircuitBreaker restored(cb.spec(), started);
  restored.Restore(cb.Record());
  EXPECT_TRUE(restored.LoadWindows(decoded->circuit));
  return restored;
}

TEST(GuardStateTest, BreakerWindowResumesExactly) {
  CircuitBreaker cb(Spec(), At(0));
  cb.OnSuccess(At(1), 0);
  cb.OnFailure(At(2), ErrorClass::kTransient, 0);
  cb.OnFailure(At(3), ErrorClass::kTransient, 11);
  cb.OnFirstAttemptOutcomes(At(4), 0, 2);  // Larger than the one ReportFailure first failure.
  CircuitBreaker restored = ThroughTheStore(cb, At(100));
  EXPECT_EQ(restored.FailureRate(At(5)), cb.FailureRate(At(5)));  // 3 of 4.
  EXPECT_EQ(restored.FailureRate(At(5)), 0.75);
  // The fifth call trips it, as it would have without the restart.
  EXPECT_TRUE(restored.OnFailure(At(6), ErrorClass::kTransient, 12));
  EXPECT_EQ(restored.state(), CircuitState::kOpen);
  // The window still slides: the outcomes of seconds 1 to 4 are gone at 64.
  CircuitBreaker later = ThroughTheStore(cb, At(100));
  EXPECT_EQ(later.FailureRate(At(64.5)), 0);
}

TEST(GuardStateTest, BreakerTrialsResumeExactly) {
  CircuitBreaker cb(Spec(), At(0));
  for (int i = 0; i < 5; ++i) cb.OnFailure(At(1), ErrorClass::kTransient, 0);
  ASSERT_EQ(cb.state(), CircuitState::kOpen);
  ASSERT_TRUE(cb.Advance(At(31)));
  cb.OnLeased(At(31), {41, 42, 43}, /*drained=*/false);
  cb.OnSuccess(At(32), 41);
  CircuitBreaker restored = ThroughTheStore(cb, At(100));
  EXPECT_EQ(restored.state(), CircuitState::kHalfOpen);
  EXPECT_EQ(restored.LeaseAllowance(), 0);  // No second set of trials.
  EXPECT_FALSE(restored.OnSuccess(At(33), 42));
  EXPECT_TRUE(restored.OnSuccess(At(33), 43));  // The third of three: CLOSED.
  EXPECT_EQ(restored.state(), CircuitState::kClosed);
  // A trial that fails after the restart opens it again, for twice as long.
  CircuitBreaker failing = ThroughTheStore(cb, At(100));
  EXPECT_TRUE(failing.OnFailure(At(34), ErrorClass::kTransient, 43));
  EXPECT_EQ(failing.View(At(34)).next_probe_at, At(94));
}

TEST(GuardStateTest, BudgetWindowAndPacingResume) {
  RetryBudgetSpec spec;
  spec.enabled = true;
  spec.window = absl::Seconds(60);
  spec.ratio = 0.5;
  spec.min_retries_per_window = 1;
  RetryBudget b(spec);
  b.RecordOutcomes(At(0), 10, 4);
  b.RecordFirstFailure(At(1));
  ASSERT_EQ(b.Allowance(At(2)), 7);  // floor(0.5 × 14).
  // Spend it, and defer one: the pacing's last deferral is part of the state.
  for (int i = 0; i < 7; ++i) ASSERT_FALSE(b.Acquire(At(2), At(3)).deferred);
  const BudgetGrant deferred = b.Acquire(At(2), At(3));
  ASSERT_TRUE(deferred.deferred);

  GuardState state;
  state.budget = b.SaveWindows();
  absl::StatusOr<GuardState> decoded = DecodeGuardState(EncodeGuardState(state));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_TRUE(decoded->budget.has_value());
  RetryBudget restored(spec);
  ASSERT_TRUE(restored.LoadWindows(*decoded->budget));
  EXPECT_EQ(restored.FirstAttempts(At(2)), 14);
  EXPECT_EQ(restored.Allowance(At(2)), 7);
  // The retries still scheduled are booked again from the schedule (Restore).
  for (int i = 0; i < 7; ++i) restored.Restore(At(2), At(3));
  restored.Restore(At(2), deferred.at);
  const BudgetGrant next = restored.Acquire(At(2), At(3));
  const BudgetGrant expected = b.Acquire(At(2), At(3));
  EXPECT_EQ(next.at, expected.at);
  EXPECT_TRUE(next.deferred);
}

TEST(GuardStateTest, DamagedValuesAreRefused) {
  GuardState state;
  state.circuit.trials = {1, 2, 3};
  state.budget.emplace();
  const std::string good = EncodeGuardState(state);
  ASSERT_TRUE(DecodeGuardState(good).ok());
  for (size_t n = 0; n < good.size(); ++n) {
    absl::StatusOr<GuardState> cut = DecodeGuardState(good.substr(0, n));
    EXPECT_EQ(cut.status().code(), absl::StatusCode::kDataLoss) << n;
  }
  EXPECT_THAT(DecodeGuardState(good + "x").status().message(), HasSubstr("trailing"));
  std::string future = good;
  future[0] = '\x03';
  EXPECT_THAT(DecodeGuardState(future).status().message(), HasSubstr("unknown format 3"));
  // A length that would ask for gigabytes.
  EXPECT_EQ(DecodeGuardState(std::string("\x01\x05\x00\xff\xff\xff\xff\x0f", 8)).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace retryd
