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
  EXPECT_EQ(second.next_retry_at, At(62));
  EXPECT_EQ(second.delay, absl::Seconds(62));
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
  // Released budget is available again (second 2 shares no window with the deferral at 62).
  g.ReleaseRetry("orders", At(0), first);
  Decision third = Scheduled(At(2), At(0));
  g.ApplyBudget("orders", p, At(0), At(0), &third);
  EXPECT_EQ(third.next_retry_at, At(2));
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
  g.ApplyBudget("orders", p, At(0), At(0), &second);  // Deferred to 62 s > 0 + 30 s.
  EXPECT_EQ(second.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(second.reason, DeadLetterReason::kDeadlineExceeded);
  // Its booking was given back: second 62 is still free.
  Decision third = Scheduled(At(62), At(0));
  g.ApplyBudget("orders", p, At(0), At(40), &third);
  EXPECT_EQ(third.next_retry_at, At(62));
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

}  // namespace
}  // namespace retryd
