#include "server/core/service_guards.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"

namespace retryd {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

PolicySet Policies(BudgetExhaustedAction action, absl::Duration max_retry_duration) {
  Policy p;
  p.name = "default";
  p.max_retry_duration = max_retry_duration;
  p.budget.enabled = true;
  p.budget.min_retries_per_window = 1;
  p.budget.ratio = 0;
  p.budget.when_exhausted = action;
  p.circuit.enabled = true;
  p.circuit.minimum_calls = 1;
  p.circuit.half_open_trials = 1;
  p.circuit.open_duration = absl::Seconds(30);
  Policy off;
  off.name = "free";
  off.budget.enabled = false;
  return *PolicySet::Create({p, off});
}

Decision Scheduled(absl::Time at, absl::Time now) {
  Decision d;
  d.kind = DecisionKind::kScheduled;
  d.state = EnvelopeState::kScheduled;
  d.next_retry_at = at;
  d.delay = at - now;
  d.attempt = 1;
  return d;
}

TEST(ServiceGuardsTest, BudgetDefersDeadLettersOrPassesDecisions) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::ZeroDuration());
  ServiceGuards g(&policies, At(0));
  const Policy& p = policies.Resolve("orders");
  Decision first = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &first);
  EXPECT_EQ(first.next_retry_at, At(2));
  Decision second = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &second);
  EXPECT_EQ(second.kind, DecisionKind::kScheduled);
  EXPECT_EQ(second.next_retry_at, At(63));  // No 60 s window holds both second 2 and 63.
  EXPECT_EQ(second.delay, absl::Seconds(63));
  // A dead-letter decision is left alone; a service without a budget is not limited.
  Decision dead;
  dead.kind = DecisionKind::kDeadLettered;
  g.ApplyBudget("orders", p, At(0), At(0), &dead);
  EXPECT_EQ(dead.kind, DecisionKind::kDeadLettered);
  for (int i = 0; i < 5; ++i) {
    Decision free = Scheduled(At(2), At(0));
    g.ApplyBudget("free", policies.Resolve("free"), At(0), At(0), &free);
    EXPECT_EQ(free.next_retry_at, At(2));
  }
  // An op that is not kept gives back what it booked, its place in the pacing included: the
  // next deferral goes where the undone one went (124 s, 61 one-second slots after 63), not
  // after it.
  g.BeginOp();
  Decision undone = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &undone);
  EXPECT_EQ(undone.next_retry_at, At(124));
  g.EndOp(/*keep=*/false);
  Decision third = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &third);
  EXPECT_EQ(third.next_retry_at, At(124));
}

TEST(ServiceGuardsTest, SpentBudgetDeadLettersInDeadLetterMode) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDeadLetter, absl::ZeroDuration());
  ServiceGuards g(&policies, At(0));
  const Policy& p = policies.Resolve("orders");
  Decision first = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &first);
  Decision second = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &second);
  EXPECT_EQ(second.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(second.state, EnvelopeState::kDeadLettered);
  EXPECT_EQ(second.reason, DeadLetterReason::kBudgetExhausted);
  EXPECT_EQ(second.next_retry_at, absl::InfinitePast());
}

TEST(ServiceGuardsTest, DeferralPastTheDeadlineIsDeadlineExceeded) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::Seconds(30));
  ServiceGuards g(&policies, At(0));
  const Policy& p = policies.Resolve("orders");
  Decision first = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &first);
  Decision second = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &second);  // Deferred to 63 s > 0 + 30 s.
  EXPECT_EQ(second.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(second.reason, DeadLetterReason::kDeadlineExceeded);
  // Its booking was given back: second 63 is still free.
  Decision third = Scheduled(At(63), At(0));
  g.ApplyBudget("orders", p, At(0), At(40), &third);
  EXPECT_EQ(third.next_retry_at, At(63));
}

TEST(ServiceGuardsTest, RefusedDeferralDoesNotPaceTheNext) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::Seconds(300));
  ServiceGuards g(&policies, At(0));
  const Policy& p = policies.Resolve("orders");
  Decision first = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &first);
  // First seen 280 s ago: a deferral to 63 s passes its deadline (20 s).
  Decision late = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(-280), At(0), &late);
  EXPECT_EQ(late.reason, DeadLetterReason::kDeadlineExceeded);
  // The refused deferral took no place in the pacing: the next one runs at 63 s, not 124 s.
  Decision next = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &next);
  EXPECT_EQ(next.kind, DecisionKind::kScheduled);
  EXPECT_EQ(next.next_retry_at, At(63));
}

TEST(ServiceGuardsTest, CircuitTransitionsArePendingAndPublished) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::ZeroDuration());
  ServiceGuards g(&policies, At(0));
  EXPECT_EQ(g.Snapshot("orders", At(0)).state, CircuitState::kClosed);
  EXPECT_EQ(g.Snapshot("orders", At(0)).since, At(0));
  EXPECT_TRUE(g.MayLease("orders", At(0)));
  EXPECT_TRUE(g.OnFailure("orders", At(1), ErrorClass::kTransient, 0));
  EXPECT_EQ(g.NextTransition(), At(31));
  EXPECT_FALSE(g.MayLease("orders", At(30)));
  EXPECT_TRUE(g.MayLease("orders", At(31)));
  bool changed = false;
  EXPECT_EQ(g.LeaseAllowance("orders", At(2), &changed), 0);
  EXPECT_FALSE(changed);
  g.Publish(At(2));
  EXPECT_EQ(g.Snapshot("orders", At(2)).state, CircuitState::kOpen);
  EXPECT_EQ(g.Snapshot("orders", At(2)).next_probe_at, At(31));
  // Readers see the probe time pass before the writer gets to it.
  EXPECT_EQ(g.Snapshot("orders", At(31)).state, CircuitState::kHalfOpen);
  std::vector<std::string> moved;
  g.AdvanceAll(At(31), &moved);
  EXPECT_EQ(moved, std::vector<std::string>{"orders"});
  EXPECT_EQ(g.NextTransition(), absl::InfiniteFuture());
  EXPECT_EQ(g.LeaseAllowance("orders", At(31), &changed), 1);
  EXPECT_FALSE(g.OnLeased("orders", At(31), {42}, /*drained=*/false));
  EXPECT_FALSE(g.MayLease("orders", At(31)));
  EXPECT_TRUE(g.OnSuccess("orders", At(32), 42));
  EXPECT_EQ(g.Record("orders").state, CircuitState::kClosed);
  EXPECT_EQ(g.Record("orders").service, "orders");
  const auto views = g.Views(At(32));
  ASSERT_EQ(views.count("orders"), 1u);
  EXPECT_EQ(views.at("orders").circuit.state, CircuitState::kClosed);
  EXPECT_EQ(views.at("orders").budget_remaining, 1);
}

TEST(ServiceGuardsTest, AnOpNotKeptLeavesTheGuardsAsIfItNeverRan) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::ZeroDuration());
  ServiceGuards g(&policies, At(0));
  const Policy& p = policies.Resolve("orders");
  g.RecordOutcomes("orders", At(0), 1, 0);
  Decision kept = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &kept);
  EXPECT_EQ(g.TakeChanged(), std::vector<std::string>{"orders"});
  const CircuitRecord before = g.Record("orders");

  // An op that books a retry, counts failures that open the circuit, and touches a new service,
  // then fails (its savepoint rolled back).
  g.BeginOp();
  Decision undone = Scheduled(At(2), At(1));
  g.ApplyBudget("orders", p, At(1), At(1), &undone);
  g.RecordFirstFailure("orders", At(1));
  EXPECT_TRUE(g.OnFailure("orders", At(1), ErrorClass::kTransient, 0));
  EXPECT_TRUE(g.RecordOutcomes("billing", At(1), 0, 5));
  g.EndOp(/*keep=*/false);

  EXPECT_TRUE(g.TakeChanged().empty());  // Nothing to store.
  const CircuitRecord after = g.Record("orders");
  EXPECT_EQ(after.state, CircuitState::kClosed);
  EXPECT_EQ(after.windows, before.windows);  // Windows, trials and pacing as they were.
  EXPECT_EQ(g.NextTransition(), absl::InfiniteFuture());
  EXPECT_EQ(g.Views(At(1)).count("billing"), 0u);  // Forgotten.
  g.Publish(At(1));
  EXPECT_EQ(g.Snapshot("orders", At(1)).state, CircuitState::kClosed);
  // The undone retry's place is free again, in the ledger and in the pacing.
  Decision next = Scheduled(At(2), At(1));
  g.ApplyBudget("orders", p, At(1), At(1), &next);
  EXPECT_EQ(next.next_retry_at, At(63));

  // The same op kept: its changes stand and are taken for storing.
  g.BeginOp();
  EXPECT_TRUE(g.OnFailure("orders", At(1), ErrorClass::kTransient, 0));
  g.EndOp(/*keep=*/true);
  EXPECT_EQ(g.TakeChanged(), std::vector<std::string>{"orders"});
  EXPECT_EQ(g.Record("orders").state, CircuitState::kOpen);
}

TEST(ServiceGuardsTest, RestoredServicesResumeTheirWindowsAndTrials) {
  Policy p;
  p.name = "default";
  p.budget.enabled = true;
  p.budget.ratio = 0.5;
  p.budget.min_retries_per_window = 1;
  p.circuit.enabled = true;
  p.circuit.minimum_calls = 5;
  p.circuit.half_open_trials = 2;
  p.circuit.open_duration = absl::Seconds(30);
  const PolicySet policies = *PolicySet::Create({p});
  ServiceGuards g(&policies, At(0));
  for (int i = 0; i < 4; ++i) g.OnFailure("window", At(1), ErrorClass::kTransient, 0);
  g.RecordOutcomes("budget", At(1), 20, 0);
  for (int i = 0; i < 5; ++i) g.OnFailure("trials", At(1), ErrorClass::kTransient, 0);
  bool changed = false;
  EXPECT_EQ(g.LeaseAllowance("trials", At(31), &changed), 2);
  g.OnLeased("trials", At(31), {7, 8}, /*drained=*/false);
  g.OnSuccess("trials", At(32), 7);

  ServiceGuards restarted(&policies, At(40));
  for (const std::string& service : g.TakeChanged()) {
    ASSERT_TRUE(restarted.RestoreCircuit(g.Record(service)).ok()) << service;
  }
  EXPECT_TRUE(restarted.TakeChanged().empty());  // Restored, not changed.
  // 4 failures of minimum_calls 5 before: the fifth trips it.
  EXPECT_TRUE(restarted.OnFailure("window", At(41), ErrorClass::kTransient, 0));
  EXPECT_EQ(restarted.Record("window").state, CircuitState::kOpen);
  // 20 first attempts before: 10 retries allowed, not the floor of 1.
  EXPECT_EQ(restarted.Views(At(41)).at("budget").budget_remaining, 10);
  // Both trials are out: no more; the other one's success closes it.
  EXPECT_EQ(restarted.LeaseAllowance("trials", At(41), &changed), 0);
  EXPECT_FALSE(restarted.MayLease("trials", At(41)));
  EXPECT_TRUE(restarted.OnSuccess("trials", At(42), 8));
  EXPECT_EQ(restarted.Record("trials").state, CircuitState::kClosed);
}

TEST(ServiceGuardsTest, UnreadableWindowsRestoreTheRecordAlone) {
  const PolicySet policies = Policies(BudgetExhaustedAction::kDefer, absl::ZeroDuration());
  ServiceGuards g(&policies, At(0));
  CircuitRecord r;
  r.service = "orders";
  r.state = CircuitState::kOpen;
  r.since = At(0);
  r.next_probe_at = At(30);
  r.open_duration = absl::Seconds(30);
  r.windows = "\x07garbage";
  EXPECT_EQ(g.RestoreCircuit(r).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(g.Record("orders").state, CircuitState::kOpen);
  EXPECT_EQ(g.NextTransition(), At(30));
}

}  // namespace
}  // namespace retryd
