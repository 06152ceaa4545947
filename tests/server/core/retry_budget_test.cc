#include "server/core/retry_budget.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/sliding_counter.h"

namespace retryd {
namespace {

// A whole second, so the budget's 1 s slots (window 60 s / 60) start on it.
const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

// The most of `runs` that any interval [t, t + window) holds, wherever it starts (the fullest
// one starts at one of the runs).
int64_t FullestWindow(std::vector<absl::Time> runs, absl::Duration window) {
  std::sort(runs.begin(), runs.end());
  int64_t fullest = 0;
  size_t end = 0;
  for (size_t start = 0; start < runs.size(); ++start) {
    while (end < runs.size() && runs[end] < runs[start] + window) ++end;
    fullest = std::max<int64_t>(fullest, static_cast<int64_t>(end - start));
  }
  return fullest;
}

RetryBudgetSpec Spec(BudgetExhaustedAction action = BudgetExhaustedAction::kDefer,
                     int64_t min_retries = 10, double ratio = 0.2) {
  RetryBudgetSpec spec;
  spec.enabled = true;
  spec.window = absl::Seconds(60);
  spec.ratio = ratio;
  spec.min_retries_per_window = min_retries;
  spec.when_exhausted = action;
  return spec;
}

TEST(SlidingCounterTest, CountsTheLastWindowInBuckets) {
  SlidingCounter c(absl::Seconds(60), 60);
  c.Add(At(0), 5);
  c.Add(At(30.5), 2);
  EXPECT_EQ(c.Sum(At(59.9)), 7);
  EXPECT_EQ(c.Sum(At(60)), 2);  // The bucket of second 0 slid out.
  EXPECT_EQ(c.Sum(At(90.9)), 0);
  c.Add(At(91), 1);
  EXPECT_EQ(c.Sum(At(500)), 0);  // A jump of more than a window clears everything.
  c.Add(At(500), 3);
  c.Clear();
  EXPECT_EQ(c.Sum(At(500)), 0);
}

TEST(RetryBudgetTest, AllowanceIsTheFloorUntilFirstAttemptsRaiseIt) {
  RetryBudget b(Spec());
  EXPECT_EQ(b.Allowance(At(0)), 10);
  b.RecordOutcomes(At(0), /*successes=*/100, /*failures=*/30);
  for (int i = 0; i < 50; ++i) b.RecordFirstFailure(At(1));
  // 100 successes + max(30 failures from RecordOutcomes, 50 first failures): the two failure
  // counts may be the same attempts, so they are not added.
  EXPECT_EQ(b.FirstAttempts(At(1)), 150);
  EXPECT_EQ(b.Allowance(At(1)), 30);
  EXPECT_EQ(b.Allowance(At(59.5)), 30);
  EXPECT_EQ(b.FirstAttempts(At(60)), 50);  // Second 0's outcomes slid out; second 1's did not.
  EXPECT_EQ(b.Allowance(At(60)), 10);      // floor(0.2 × 50) = 10.
  EXPECT_EQ(b.Allowance(At(61)), 10);                  // Nothing left: the floor.
  EXPECT_EQ(b.FirstAttempts(At(61)), 0);
}

TEST(RetryBudgetTest, RetriesWithinTheBudgetRunWhenWanted) {
  RetryBudget b(Spec());
  EXPECT_EQ(b.Remaining(At(0)), 10);
  for (int i = 0; i < 10; ++i) {
    const BudgetGrant g = b.Acquire(At(0), At(2));
    ASSERT_TRUE(g.granted);
    EXPECT_FALSE(g.deferred);
    EXPECT_EQ(g.at, At(2));
  }
  EXPECT_EQ(b.BookedInSlot(At(2)), 10);
  EXPECT_EQ(b.Remaining(At(0)), 0);
  // A wanted time in the past runs now.
  RetryBudget c(Spec());
  EXPECT_EQ(c.Acquire(At(5), At(1)).at, At(5));
}

TEST(RetryBudgetTest, DeferredRetriesGoOutEvenlyAtTheBudgetRate) {
  RetryBudget b(Spec());
  for (int i = 0; i < 10; ++i) ASSERT_FALSE(b.Acquire(At(0), At(2)).deferred);
  // Spent: the first deferral runs in the first slot that no 60 s window shares with second 2's
  // ten retries (63: a window ending in second 62 may start in second 2), the next ones one
  // emission interval (61 slots / 10 = 6.1 s) apart.
  std::vector<absl::Time> deferred;
  for (int i = 0; i < 11; ++i) {
    const BudgetGrant g = b.Acquire(At(0), At(2));
    ASSERT_TRUE(g.granted);
    EXPECT_TRUE(g.deferred);
    deferred.push_back(g.at);
  }
  std::vector<absl::Time> want;
  for (int i = 0; i < 11; ++i) want.push_back(At(63) + absl::Milliseconds(6100) * i);
  EXPECT_EQ(deferred, want);
}

TEST(RetryBudgetTest, DeadLetterModeRefusesOnceSpent) {
  RetryBudget b(Spec(BudgetExhaustedAction::kDeadLetter));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.Acquire(At(0), At(2)).granted);
  EXPECT_FALSE(b.Acquire(At(0), At(2)).granted);
  EXPECT_FALSE(b.Acquire(At(0), At(50)).granted);  // Same window as second 2.
  // A window holding second 62 may start in second 2 (at 2.5, say, up to 62.5).
  EXPECT_FALSE(b.Acquire(At(0), At(62)).granted);
  // Second 63 is in no window with second 2.
  const BudgetGrant later = b.Acquire(At(0), At(63));
  EXPECT_TRUE(later.granted);
  EXPECT_EQ(later.at, At(63));
}

TEST(RetryBudgetTest, ReleaseGivesTheRetryBack) {
  RetryBudget b(Spec(BudgetExhaustedAction::kDeadLetter));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.Acquire(At(0), At(2)).granted);
  b.Release(At(0), At(2));
  EXPECT_EQ(b.Remaining(At(0)), 1);
  EXPECT_TRUE(b.Acquire(At(0), At(3)).granted);
  EXPECT_EQ(b.Remaining(At(0)), 0);
}

TEST(RetryBudgetTest, RestoredRetriesCountAfterARestart) {
  RetryBudget b(Spec());
  for (int i = 0; i < 10; ++i) b.Restore(At(0), At(5));
  b.Restore(At(0), At(-120));  // Out of every window: ignored.
  EXPECT_EQ(b.BookedInSlot(At(-120)), 0);
  EXPECT_EQ(b.Remaining(At(0)), 0);
  const BudgetGrant g = b.Acquire(At(0), At(2));
  EXPECT_TRUE(g.deferred);
  EXPECT_EQ(g.at, At(66));
  b.ClearBookings();
  EXPECT_EQ(b.BookedInSlot(At(5)), 0);
  EXPECT_EQ(b.Remaining(At(0)), 10);
}

TEST(RetryBudgetTest, OldBookingsLeaveTheWindow) {
  RetryBudget b(Spec(BudgetExhaustedAction::kDeadLetter));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(b.Acquire(At(0), At(0)).granted);
  EXPECT_EQ(b.Remaining(At(59)), 0);
  // The ledger knows second 0's retries by their slot only: a window from 0.9 s holds 60.5 s.
  EXPECT_EQ(b.Remaining(At(60)), 0);
  EXPECT_EQ(b.Remaining(At(61)), 10);
  EXPECT_TRUE(b.Acquire(At(61), At(61)).granted);
}

TEST(RetryBudgetTest, BeyondTheHorizonPassesUnbookedAndDeferralsStopThere) {
  RetryBudget b(Spec());
  const absl::Duration horizon =
      absl::Seconds(60) * RetryBudget::kMaxWindowsAhead;  // 14 400 s.
  const BudgetGrant far = b.Acquire(At(0), At(0) + horizon);
  EXPECT_TRUE(far.granted);
  EXPECT_FALSE(far.deferred);
  EXPECT_EQ(b.BookedInSlot(At(0) + horizon), 0);
  // A floor of 0 and no first attempts: nothing may run, nothing can be deferred.
  RetryBudget none(Spec(BudgetExhaustedAction::kDefer, /*min_retries=*/0));
  EXPECT_FALSE(none.Acquire(At(0), At(1)).granted);
}

// The storm of the issue at unit scale: 10 000 first failures in ten seconds after RecordOutcomes
// said 5 000 successes and 10 000 failures (the same failed attempts), ratio 0.2.
TEST(RetryBudgetTest, StormIsCappedPerWindowAndTheRestPaced) {
  RetryBudget b(Spec());
  b.RecordOutcomes(At(0), 5000, 10000);
  std::vector<absl::Time> immediate, deferred;
  for (int i = 0; i < 10000; ++i) {
    const absl::Time now = At(0) + absl::Milliseconds(i);
    b.RecordFirstFailure(now);
    ASSERT_EQ(b.Allowance(now), 3000);  // 0.2 × (5 000 + max(10 000, first failures so far)).
    const BudgetGrant g = b.Acquire(now, now + absl::Seconds(1));
    ASSERT_TRUE(g.granted);
    (g.deferred ? deferred : immediate).push_back(g.at);
  }
  EXPECT_EQ(immediate.size(), 3000u);
  EXPECT_EQ(deferred.size(), 7000u);
  // Deferred ones start after the storm's window and are 61 s / 3000 = 20.3 ms apart.
  EXPECT_GE(deferred.front(), At(61));
  for (size_t i = 1; i < deferred.size(); ++i) {
    ASSERT_GE(deferred[i] - deferred[i - 1], absl::Milliseconds(20)) << i;
  }
  // No aligned 60 s window runs more than 3 000; no second more than 50 deferred.
  std::map<int64_t, int64_t> per_second, deferred_per_second;
  for (absl::Time t : immediate) per_second[absl::ToUnixSeconds(t)]++;
  for (absl::Time t : deferred) {
    per_second[absl::ToUnixSeconds(t)]++;
    deferred_per_second[absl::ToUnixSeconds(t)]++;
  }
  for (const auto& [second, n] : deferred_per_second) ASSERT_LE(n, 50) << second;
  const int64_t first = per_second.begin()->first, last = per_second.rbegin()->first;
  for (int64_t start = first - 59; start <= last; ++start) {
    int64_t sum = 0;
    for (int64_t s = start; s < start + 60; ++s) {
      auto it = per_second.find(s);
      if (it != per_second.end()) sum += it->second;
    }
    ASSERT_LE(sum, 3000) << start;
  }
  // 7 000 at 50 per second take at least 140 s.
  EXPECT_GE(deferred.back() - deferred.front(), absl::Seconds(139));
  std::vector<absl::Time> all = immediate;
  all.insert(all.end(), deferred.begin(), deferred.end());
  EXPECT_LE(FullestWindow(all, absl::Seconds(60)), 3000);
}

// The crafted case of issue 18: a window of 30 s (slots of 0.5 s) and a budget of 100. A hundred
// retries late in slot 0 and a hundred at the start of slot 60 were both booked, and the 29.7 s
// from 0.49 s held 200. Slot 60 shares a window with slot 0: its retries are deferred past it.
TEST(RetryBudgetTest, AnyWindowOfTheConfiguredLengthHoldsTheBudget) {
  RetryBudgetSpec spec = Spec(BudgetExhaustedAction::kDefer, /*min_retries=*/100, /*ratio=*/0);
  spec.window = absl::Seconds(30);
  RetryBudget b(spec);
  std::vector<absl::Time> runs;
  for (int i = 0; i < 100; ++i) {
    const BudgetGrant g = b.Acquire(At(0), At(0.49));
    ASSERT_TRUE(g.granted && !g.deferred);
    runs.push_back(g.at);
  }
  for (int i = 0; i < 100; ++i) {
    const BudgetGrant g = b.Acquire(At(0), At(30));
    ASSERT_TRUE(g.granted);
    EXPECT_TRUE(g.deferred) << i;
    EXPECT_GE(g.at, At(30.5)) << i;
    runs.push_back(g.at);
  }
  EXPECT_LE(FullestWindow(runs, absl::Seconds(30)), 100);
  // DEAD_LETTER refuses the second hundred instead.
  spec.when_exhausted = BudgetExhaustedAction::kDeadLetter;
  RetryBudget refusing(spec);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(refusing.Acquire(At(0), At(0.49)).granted);
  EXPECT_FALSE(refusing.Acquire(At(0), At(30)).granted);
  EXPECT_TRUE(refusing.Acquire(At(0), At(30.5)).granted);
}

// Steady traffic with random wants, first attempts that rise and fall, and both modes: whatever
// the budget granted, no interval of the window's length, wherever it starts, runs more than the
// most the allowance ever was.
TEST(RetryBudgetTest, RandomTrafficNeverOverfillsAnySlidingWindow) {
  for (BudgetExhaustedAction action :
       {BudgetExhaustedAction::kDefer, BudgetExhaustedAction::kDeadLetter}) {
    RetryBudget b(Spec(action, /*min_retries=*/50, /*ratio=*/0.1));
    std::mt19937_64 rng(42);
    std::vector<absl::Time> runs;
    int64_t most = 0;
    for (int i = 0; i < 40000; ++i) {
      const absl::Time now = At(0) + absl::Milliseconds(15 * i);  // 600 s in all.
      if (rng() % 3 == 0) b.RecordFirstFailure(now);
      most = std::max(most, b.Allowance(now));
      const absl::Time wanted = now + absl::Microseconds(rng() % 20000000);  // Within 20 s.
      const BudgetGrant g = b.Acquire(now, wanted);
      if (g.granted) runs.push_back(g.at);
    }
    ASSERT_GT(runs.size(), 1000u);
    EXPECT_LE(FullestWindow(runs, absl::Seconds(60)), most);
  }
}

}  // namespace
}  // namespace retryd
