// ServiceGuards' journal (fleet-wide guards, server/core/guard_sync.h): what it records, how it
// follows ops, how LoadShared takes a shared row over in the middle of a batch and of an op, and
// the HALF_OPEN trials' holder. No database: the "shared row" is another guards' Record().
#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/guard_state.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"

namespace retryd {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

// Opens at 10 counted failures (100 %), 30 s open, 2 trials; a budget of 0.5 per first attempt.
PolicySet Policies() {
  Policy p;
  p.name = "default";
  p.circuit.enabled = true;
  p.circuit.minimum_calls = 10;
  p.circuit.failure_rate_threshold = 1.0;
  p.circuit.open_duration = absl::Seconds(30);
  p.circuit.half_open_trials = 2;
  p.budget.enabled = true;
  p.budget.ratio = 0.5;
  p.budget.min_retries_per_window = 0;
  return *PolicySet::Create({p});
}

int64_t Sum(const SlidingCounter::Buckets& b) {
  int64_t n = 0;
  for (int64_t c : b.counts) n += c;
  return n;
}

// The counted failures of leased retries in `record`'s window.
int64_t RetryFailures(const CircuitRecord& record) {
  auto state = DecodeGuardState(record.windows);
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? Sum(state->circuit.retry_failures) : -1;
}

int64_t BudgetFirstFailures(const CircuitRecord& record) {
  auto state = DecodeGuardState(record.windows);
  EXPECT_TRUE(state.ok() && state->budget.has_value());
  return state.ok() && state->budget.has_value() ? Sum(state->budget->first_failures) : -1;
}

void Fail(ServiceGuards& g, int n, double at, int64_t first_id = 1) {
  for (int i = 0; i < n; ++i) {
    g.OnFailure("svc", At(at), ErrorClass::kTransient, first_id + i);
  }
}

TEST(ServiceGuardsJournalTest, OffByDefaultRecordsNothing) {
  const PolicySet policies = Policies();
  ServiceGuards g(&policies, At(0));
  g.BeginOp();
  Fail(g, 3, 1);
  g.RecordFirstFailure("svc", At(1));
  g.EndOp(true);
  EXPECT_FALSE(g.journaling());
  EXPECT_TRUE(g.Journaled().empty());
  EXPECT_TRUE(g.Journal("svc").empty());
}

TEST(ServiceGuardsJournalTest, KeepsWhatKeptOpsDidAndDropsWhatUndoneOpsDid) {
  const PolicySet policies = Policies();
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  g.BeginOp();
  Fail(g, 2, 1);
  g.EndOp(true);
  g.BeginOp();
  Fail(g, 5, 2, 100);
  g.RecordOutcomes("other", At(2), 4, 0);
  g.EndOp(false);  // Undone: the failures and "other" (created by the op) go.
  g.BeginOp();
  g.RecordFirstFailure("svc", At(3));
  g.UndoOp();  // Given back; the op goes on.
  g.OnSuccess("svc", At(3), 0);
  g.EndOp(true);
  EXPECT_EQ(g.Journaled(), std::vector<std::string>{"svc"});
  const std::vector<GuardEvent>& j = g.Journal("svc");
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0].kind, GuardEvent::Kind::kFailure);
  EXPECT_EQ(j[0].a, 1);
  EXPECT_EQ(j[1].kind, GuardEvent::Kind::kFailure);
  EXPECT_EQ(j[2].kind, GuardEvent::Kind::kSuccess);
  EXPECT_EQ(RetryFailures(g.Record("svc")), 2);
  g.EndBatch();
  EXPECT_EQ(g.Journal("svc").size(), 3u) << "what was not saved goes with the next batch";
  ASSERT_TRUE(g.LoadSaved(g.Record("svc")).ok());
  EXPECT_TRUE(g.Journaled().empty());
  EXPECT_EQ(RetryFailures(g.Record("svc")), 2) << "saving keeps the state";
}

TEST(ServiceGuardsJournalTest, ReplayOnTheSameStartGivesTheSameRecord) {
  const PolicySet policies = Policies();
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  g.RecordFirstFailure("svc", At(0));
  g.RecordOutcomes("svc", At(0.5), 0, 1);
  Fail(g, 10, 1);  // Opens.
  bool changed = false;
  EXPECT_EQ(g.LeaseAllowance("svc", At(40), &changed), 2);  // HALF_OPEN, unclaimed.
  EXPECT_TRUE(changed);
  g.SetTrialHolder("svc", At(40), "r1");
  g.OnLeased("svc", At(40), {7, 8}, false);
  g.OnSuccess("svc", At(41), 7);
  g.SetOverride("svc", At(42), CircuitOverride::kAuto, "note", "peer");
  ServiceGuards scratch(&policies, At(0));
  scratch.Replay("svc", At(42), g.Journal("svc"));
  EXPECT_TRUE(scratch.Journal("svc").empty()) << "a replay records nothing";
  const CircuitRecord want = g.Record("svc");
  const CircuitRecord got = scratch.Record("svc");
  EXPECT_EQ(got.state, CircuitState::kHalfOpen);
  EXPECT_EQ(got.state, want.state);
  EXPECT_EQ(got.since, want.since);
  EXPECT_EQ(got.override_note, want.override_note);
  EXPECT_EQ(got.windows, want.windows);
}

TEST(ServiceGuardsJournalTest, LoadSharedTakesTheRowAndMakesTheBatchsChangesAgain) {
  const PolicySet policies = Policies();
  // Another replica's 6 failures are the shared row.
  ServiceGuards other(&policies, At(0));
  Fail(other, 6, 1, 100);
  const CircuitRecord row = other.Record("svc");
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  g.BeginOp();
  Fail(g, 4, 1);
  g.EndOp(true);
  EXPECT_EQ(g.State("svc"), CircuitState::kClosed);
  ASSERT_TRUE(g.LoadShared(row).ok());
  // 6 + 4 = 10: the replayed failures trip it.
  EXPECT_EQ(g.State("svc"), CircuitState::kOpen);
  EXPECT_EQ(RetryFailures(g.Record("svc")), 10);
  EXPECT_EQ(g.Journal("svc").size(), 4u) << "the journal stays until saved";
  ASSERT_TRUE(g.LoadSaved(g.Record("svc")).ok());
  EXPECT_TRUE(g.Journaled().empty());
}

TEST(ServiceGuardsJournalTest, UndoAfterLoadSharedInsideTheOpReturnsToTheRowNotToStaleState) {
  const PolicySet policies = Policies();
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  g.BeginOp();
  Fail(g, 1, 1);  // An earlier kept op of the batch.
  g.EndOp(true);
  // Another replica forced the circuit open and counted 3 failures; this replica does not know.
  ServiceGuards other(&policies, At(0));
  Fail(other, 3, 1, 100);
  other.SetOverride("svc", At(1), CircuitOverride::kForceOpen, "ops", "10.0.0.1");
  const CircuitRecord row = other.Record("svc");
  g.BeginOp();
  Fail(g, 2, 2, 10);  // Checkpoints the stale state (CLOSED, 1 failure).
  ASSERT_TRUE(g.LoadShared(row).ok());
  EXPECT_EQ(RetryFailures(g.Record("svc")), 3 + 1 + 2);
  g.EndOp(false);
  // The row plus the earlier op: FORCE_OPEN and 4 failures. Not the stale CLOSED with 1.
  const CircuitRecord after = g.Record("svc");
  EXPECT_EQ(after.override_mode, CircuitOverride::kForceOpen);
  EXPECT_EQ(g.State("svc"), CircuitState::kOpen);
  EXPECT_EQ(RetryFailures(after), 4);
  EXPECT_EQ(g.Journal("svc").size(), 1u);
}

TEST(ServiceGuardsJournalTest, LoadSharedInsideAnOpThatCreatedTheServiceSurvivesItsUndo) {
  const PolicySet policies = Policies();
  ServiceGuards other(&policies, At(0));
  other.SetOverride("svc", At(1), CircuitOverride::kForceOpen, "ops", "peer");
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  g.BeginOp();
  Fail(g, 1, 2);  // Creates "svc".
  ASSERT_TRUE(g.LoadShared(other.Record("svc")).ok());
  g.EndOp(false);
  EXPECT_EQ(g.State("svc"), CircuitState::kOpen) << "the shared row is not forgotten";
  EXPECT_EQ(RetryFailures(g.Record("svc")), 0);
  EXPECT_TRUE(g.Journal("svc").empty());
}

TEST(ServiceGuardsJournalTest, OnlyTheHolderLeasesTheTrials) {
  const PolicySet policies = Policies();
  ServiceGuards shared(&policies, At(0));
  Fail(shared, 10, 1);
  bool changed = false;
  shared.LeaseAllowance("svc", At(40), &changed);
  shared.SetTrialHolder("svc", At(40), "r2");
  const CircuitRecord row = shared.Record("svc");
  EXPECT_EQ(DecodeGuardState(row.windows)->circuit.trial_holder, "r2");

  ServiceGuards mine(&policies, At(0));
  mine.EnableJournal("r1");
  ASSERT_TRUE(mine.LoadShared(row).ok());
  EXPECT_EQ(mine.LeaseAllowance("svc", At(41), &changed), 0);
  EXPECT_FALSE(changed);
  EXPECT_FALSE(mine.MayLease("svc", At(41)));
  EXPECT_FALSE(mine.MayClaimTrials("svc", At(41)));
  // HALF_OPEN since second 31: with no trial leased by second 61, r2's claim lapses.
  EXPECT_EQ(mine.LeaseAllowance("svc", At(61), &changed), 2);
  EXPECT_TRUE(changed) << "claim first";
  EXPECT_TRUE(mine.MayClaimTrials("svc", At(61)));
  ServiceGuards holder(&policies, At(0));
  holder.EnableJournal("r2");
  ASSERT_TRUE(holder.LoadShared(row).ok());
  EXPECT_EQ(holder.LeaseAllowance("svc", At(41), &changed), 2);
  EXPECT_FALSE(changed);
  holder.BarTrials("svc");
  EXPECT_EQ(holder.LeaseAllowance("svc", At(41), &changed), 0);
  holder.EndBatch();
  EXPECT_EQ(holder.LeaseAllowance("svc", At(41), &changed), 2);
  // Once the holder leased a trial, its claim does not lapse.
  holder.OnLeased("svc", At(42), {5}, false);
  ASSERT_TRUE(mine.LoadShared(holder.Record("svc")).ok());
  EXPECT_EQ(mine.LeaseAllowance("svc", At(100), &changed), 0);
  EXPECT_FALSE(changed);
  // Without the journal (one process) the holder is not looked at.
  ServiceGuards local(&policies, At(0));
  ASSERT_TRUE(local.RestoreCircuit(row).ok());
  EXPECT_EQ(local.LeaseAllowance("svc", At(41), &changed), 2);
}

TEST(ServiceGuardsJournalTest, BudgetCountsAndPacingReplay) {
  const PolicySet policies = Policies();
  const Policy& p = policies.Resolve("svc");
  ServiceGuards g(&policies, At(0));
  g.EnableJournal("r1");
  for (int i = 0; i < 4; ++i) g.RecordFirstFailure("svc", At(1));
  // Allowance 2: the third retry wanted at second 2 is deferred.
  absl::Time deferred_to = absl::InfinitePast();
  for (int i = 0; i < 3; ++i) {
    Decision d;
    d.kind = DecisionKind::kScheduled;
    d.state = EnvelopeState::kScheduled;
    d.next_retry_at = At(2);
    g.ApplyBudget("svc", p, At(0), At(1), &d);
    if (i == 2) deferred_to = d.next_retry_at;
  }
  ASSERT_GT(deferred_to, At(2));
  const std::vector<GuardEvent>& j = g.Journal("svc");
  ASSERT_EQ(j.size(), 5u);
  EXPECT_EQ(j.back().kind, GuardEvent::Kind::kDeferral);
  EXPECT_EQ(j.back().at, deferred_to);
  // Another replica counted 6 first failures: made again on its row, 10 in all.
  ServiceGuards other(&policies, At(0));
  for (int i = 0; i < 6; ++i) other.RecordFirstFailure("svc", At(1));
  other.Replay("svc", At(1), j);
  const CircuitRecord merged = other.Record("svc");
  EXPECT_EQ(BudgetFirstFailures(merged), 10);
  EXPECT_EQ(DecodeGuardState(merged.windows)->budget->last_deferred_at, deferred_to);
}

TEST(GuardStateHolderTest, HolderRoundTripsAndWithoutOneTheFormatIsOne) {
  GuardState s;
  s.circuit.trials = {3, 4};
  const std::string plain = EncodeGuardState(s);
  EXPECT_EQ(plain[0], 1);
  s.circuit.trial_holder = "host-a:42:beef";
  const std::string held = EncodeGuardState(s);
  EXPECT_EQ(held[0], 2);
  auto back = DecodeGuardState(held);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->circuit.trial_holder, "host-a:42:beef");
  EXPECT_EQ(back->circuit.trials, s.circuit.trials);
  EXPECT_FALSE(DecodeGuardState(held.substr(0, held.size() - 3)).ok());
}

}  // namespace
}  // namespace retryd
