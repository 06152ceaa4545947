// The LocalScheduler's transitions, driven alone: a fake clock gives each step its time, an
// in-memory store holds the rows. One test per decision path of DESIGN.md (Decision, Lease, Retry budget,
// Circuit, Guarantees: attempts counted once, restart).
#include "server/core/local_scheduler.h"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_scheduler_store.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Exact delays: 2 s, 6 s, 18 s, ... without jitter.
BackoffSpec NoJitter() {
  BackoffSpec b;
  b.jitter = JitterKind::kNone;
  return b;
}

PolicySet TestPolicies() {
  Policy base;
  base.name = "default";
  base.max_attempts = 3;
  base.backoff = NoJitter();
  Policy deadline = base;
  deadline.name = "deadline";
  deadline.max_attempts = 10;
  deadline.max_retry_duration = absl::Seconds(10);
  Policy defer = base;
  defer.name = "defer";
  defer.budget.enabled = true;
  defer.budget.min_retries_per_window = 1;
  defer.budget.ratio = 0;
  defer.budget.window = absl::Seconds(60);
  Policy spent = defer;
  spent.name = "spent";
  spent.budget.when_exhausted = BudgetExhaustedAction::kDeadLetter;
  Policy circuit = base;
  circuit.name = "circuit";
  circuit.max_attempts = 10;
  circuit.circuit.enabled = true;
  circuit.circuit.minimum_calls = 1;
  circuit.circuit.failure_rate_threshold = 0.5;
  circuit.circuit.open_duration = absl::Seconds(30);
  circuit.circuit.half_open_trials = 2;
  return *PolicySet::Create({base, deadline, defer, spent, circuit});
}

Failure Transient() {
  Failure f;
  f.error_code = "UPSTREAM_TIMEOUT";
  f.error_class = ErrorClass::kTransient;
  f.message = "timed out";
  return f;
}

Envelope NewEnvelope(const std::string& service, const std::string& message_id) {
  Envelope e;
  e.service = service;
  e.message_id = message_id;
  e.payload = "payload of " + message_id;
  e.first_seen_at = absl::InfinitePast();  // Not given: the first failure's time.
  return e;
}

class FakeWaiter final : public LeaseWaiter {
 public:
  FakeWaiter(std::string service, absl::Time wait_until)
      : service_(std::move(service)), wait_until_(wait_until) {}
  const std::string& service() const override { return service_; }
  absl::Time wait_until() const override { return wait_until_; }
  bool caller_gone() const override { return gone; }
  bool gone = false;

 private:
  std::string service_;
  absl::Time wait_until_;
};

// The most expired leases a test lets one batch hand out, unless it says otherwise.
constexpr int kMaxExpired = 1000;

// The next expired lease of `scheduler` (which never fails to answer).
std::optional<int64_t> NextExpired(Scheduler& scheduler, absl::Time now, int max = kMaxExpired) {
  absl::StatusOr<std::optional<int64_t>> id = scheduler.NextExpired(now, max);
  EXPECT_THAT(id, IsOk());
  return id.ok() ? *id : std::nullopt;
}

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : policies_(TestPolicies()), scheduler_(Context()) {}

  SchedulerContext Context() {
    SchedulerContext context;
    context.store = &store_;
    context.policies = &policies_;
    context.rng = &rng_;
    context.started_at = clock_.Now();
    context.max_lease_response_bytes = 1 << 20;
    context.circuit_changed = [this](const std::string& service) {
      circuit_changes_.push_back(service);
    };
    return context;
  }

  absl::Time T(double seconds) const { return t0_ + absl::Seconds(seconds); }

  // A first failure of (service, message_id) now, in an op as the engine applies it (an op
  // that fails, or a duplicate, leaves the guards as they were); its outcome.
  FailureOutcome Fail(const std::string& service, const std::string& message_id,
                      Failure failure = Transient()) {
    scheduler_.guards().BeginOp();
    absl::StatusOr<FailureOutcome> out =
        scheduler_.FirstFailure(NewEnvelope(service, message_id), failure, clock_.Now());
    scheduler_.guards().EndOp(out.ok());
    EXPECT_THAT(out, IsOk());
    return out.ok() ? *std::move(out) : FailureOutcome();
  }

  std::vector<LeasedItem> Lease(const std::string& service, int max = 10,
                                absl::Duration visibility = absl::Seconds(30)) {
    absl::StatusOr<LeaseGrant> grant = scheduler_.Lease(service, max, visibility, clock_.Now());
    EXPECT_THAT(grant, IsOk());
    return grant.ok() ? std::move(grant->items) : std::vector<LeasedItem>();
  }

  static std::vector<std::string> Ids(const std::vector<LeasedItem>& items) {
    std::vector<std::string> ids;
    for (const LeasedItem& item : items) ids.push_back(item.envelope.message_id);
    return ids;
  }

  ServiceStats Stats(const std::string& service) {
    for (auto& [name, stats] : scheduler_.TakeChangedStats()) last_stats_[name] = stats;
    return last_stats_[service];
  }

  testing::FakeClock clock_;
  const absl::Time t0_ = clock_.Now();
  testing::FakeSchedulerStore store_;
  MtRandom rng_{7};
  PolicySet policies_;
  std::vector<std::string> circuit_changes_;
  LocalScheduler scheduler_;
  std::map<std::string, ServiceStats> last_stats_;
};

// ---- Decision ----

TEST_F(SchedulerTest, FirstFailureIsScheduledWithBackoff) {
  const FailureOutcome out = Fail("billing", "m1");
  EXPECT_EQ(out.decision.kind, DecisionKind::kScheduled);
  EXPECT_FALSE(out.duplicate);
  EXPECT_EQ(out.decision.attempt, 1);
  EXPECT_EQ(out.decision.next_retry_at, T(2));
  EXPECT_EQ(out.decision.delay, absl::Seconds(2));
  const Envelope row = store_.Row(out.envelope.id);
  EXPECT_EQ(row.state, EnvelopeState::kScheduled);
  EXPECT_EQ(row.next_retry_at, T(2));
  EXPECT_EQ(row.first_seen_at, T(0));
  ASSERT_EQ(row.history.size(), 1u);
  EXPECT_EQ(row.history[0].error_code, "UPSTREAM_TIMEOUT");
  EXPECT_EQ(Stats("billing").scheduled, 1);
}

TEST_F(SchedulerTest, FirstFailureCountsTheAttemptsTheWorkerAlreadyMade) {
  Envelope e = NewEnvelope("billing", "m1");
  e.attempt = 2;
  absl::StatusOr<FailureOutcome> out = scheduler_.FirstFailure(e, Transient(), clock_.Now());
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->decision.attempt, 2);
  EXPECT_EQ(out->decision.next_retry_at, T(6));  // The second delay.
}

TEST_F(SchedulerTest, RetryAfterIsHonoured) {
  Failure f = Transient();
  f.retry_after = absl::Seconds(45);
  const FailureOutcome out = Fail("billing", "m1", f);
  EXPECT_EQ(out.decision.next_retry_at, T(45));
}

TEST_F(SchedulerTest, DuplicateFirstFailureChangesNothing) {
  const FailureOutcome first = Fail("billing", "m1");
  clock_.Advance(absl::Seconds(1));
  const FailureOutcome again = Fail("billing", "m1");
  EXPECT_TRUE(again.duplicate);
  EXPECT_TRUE(again.decision.duplicate);
  EXPECT_EQ(again.decision.next_retry_at, first.decision.next_retry_at);
  EXPECT_EQ(again.envelope.id, first.envelope.id);
  EXPECT_EQ(Stats("billing").scheduled, 1);
  EXPECT_EQ(store_.Row(first.envelope.id).history.size(), 1u);
}

TEST_F(SchedulerTest, PermanentFailureIsDeadLetteredAtOnce) {
  Failure f = Transient();
  f.error_class = ErrorClass::kPermanent;
  const FailureOutcome out = Fail("billing", "m1", f);
  EXPECT_EQ(out.decision.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(out.decision.reason, DeadLetterReason::kNonRetryable);
  EXPECT_EQ(store_.Row(out.envelope.id).state, EnvelopeState::kDeadLettered);
  EXPECT_EQ(Stats("billing").dead, 1);
  EXPECT_EQ(Stats("billing").scheduled, 0);
  clock_.Advance(absl::Hours(1));
  EXPECT_THAT(Lease("billing"), IsEmpty());
}

TEST_F(SchedulerTest, MaxAttemptsDeadLetters) {
  Fail("billing", "m1");  // Attempt 1, due at 2 s.
  clock_.Advance(absl::Seconds(2));
  std::vector<LeasedItem> items = Lease("billing");
  ASSERT_EQ(items.size(), 1u);
  absl::StatusOr<FailureOutcome> second =
      scheduler_.LeasedFailure(items[0].lease_token, "billing", "m1", Transient(), clock_.Now());
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->decision.kind, DecisionKind::kScheduled);
  EXPECT_EQ(second->decision.attempt, 2);
  EXPECT_EQ(second->decision.next_retry_at, T(2 + 6));
  clock_.Advance(absl::Seconds(6));
  items = Lease("billing");
  ASSERT_EQ(items.size(), 1u);
  absl::StatusOr<FailureOutcome> third =
      scheduler_.LeasedFailure(items[0].lease_token, "billing", "m1", Transient(), clock_.Now());
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(third->decision.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(third->decision.reason, DeadLetterReason::kRetryExhausted);
  EXPECT_EQ(third->decision.attempt, 3);
  EXPECT_EQ(Stats("billing").dead, 1);
  EXPECT_EQ(Stats("billing").leased, 0);
}

TEST_F(SchedulerTest, TotalDeadlineDeadLetters) {
  Fail("deadline", "m1");  // Due at 2 s; the deadline is 10 s after first_seen_at.
  clock_.Advance(absl::Seconds(9));
  std::vector<LeasedItem> items = Lease("deadline");
  ASSERT_EQ(items.size(), 1u);
  // The next delay (6 s) would end past the deadline.
  absl::StatusOr<FailureOutcome> out =
      scheduler_.LeasedFailure(items[0].lease_token, "deadline", "m1", Transient(), clock_.Now());
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->decision.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(out->decision.reason, DeadLetterReason::kDeadlineExceeded);
}

// ---- Lease ----

TEST_F(SchedulerTest, LeaseHandsOutDueWorkOnlyOldestFirst) {
  Fail("billing", "a");  // Due at 2 s.
  clock_.Advance(absl::Seconds(1));
  Fail("billing", "b");  // Due at 3 s.
  clock_.Advance(absl::Seconds(2));
  Fail("billing", "c");  // Due at 5 s.
  Fail("other", "x");    // Another service's.
  clock_.Set(T(3.5));
  absl::StatusOr<LeaseGrant> grant =
      scheduler_.Lease("billing", 10, absl::Seconds(30), clock_.Now());
  ASSERT_THAT(grant, IsOk());
  EXPECT_THAT(Ids(grant->items), ElementsAre("a", "b"));
  EXPECT_THAT(grant->lateness, ElementsAre(absl::Seconds(1.5), absl::Seconds(0.5)));
  for (const LeasedItem& item : grant->items) {
    EXPECT_EQ(item.lease_expires_at, T(33.5));
    EXPECT_EQ(item.envelope.payload, "payload of " + item.envelope.message_id);
    EXPECT_EQ(store_.Row(item.envelope.id).state, EnvelopeState::kLeased);
    EXPECT_EQ(store_.Row(item.envelope.id).lease_token, item.lease_token);
  }
  EXPECT_EQ(Stats("billing").leased, 2);
  EXPECT_EQ(Stats("billing").scheduled, 1);
  EXPECT_THAT(Lease("billing"), IsEmpty());  // c is not due yet.
  clock_.Set(T(5));
  EXPECT_THAT(Ids(Lease("billing", 1)), ElementsAre("c"));
}

TEST_F(SchedulerTest, LeaseTakesAtMostMaxMessages) {
  for (const char* id : {"a", "b", "c"}) Fail("billing", id);
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(Lease("billing", 2).size(), 2u);
  EXPECT_EQ(Lease("billing", 2).size(), 1u);
}

TEST_F(SchedulerTest, LeaseThatFailsToWriteLeavesTheScheduleAsItWas) {
  Fail("billing", "a");
  clock_.Advance(absl::Seconds(2));
  store_.FailNextWrite(absl::InternalError("disk"));
  EXPECT_THAT(scheduler_.Lease("billing", 10, absl::Seconds(30), clock_.Now()),
              StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(Stats("billing").leased, 0);
  EXPECT_THAT(Ids(Lease("billing")), ElementsAre("a"));
}

TEST_F(SchedulerTest, SuccessEndsTheLeaseAndDropsThePayload) {
  const FailureOutcome first = Fail("billing", "a");
  clock_.Advance(absl::Seconds(2));
  const std::vector<LeasedItem> items = Lease("billing");
  ASSERT_EQ(items.size(), 1u);
  absl::StatusOr<Envelope> done = scheduler_.Succeed("billing", items[0].lease_token, T(3));
  ASSERT_THAT(done, IsOk());
  const Envelope row = store_.Row(first.envelope.id);
  EXPECT_EQ(row.state, EnvelopeState::kSucceeded);
  EXPECT_EQ(row.completed_at, T(3));
  EXPECT_EQ(row.payload, "");
  EXPECT_EQ(Stats("billing").leased, 0);
  EXPECT_EQ(Stats("billing").scheduled, 0);
  // The token is spent; nothing expires later.
  EXPECT_THAT(scheduler_.Succeed("billing", items[0].lease_token, T(4)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")));
  EXPECT_EQ(NextExpired(scheduler_, T(1000)), std::nullopt);
}

TEST_F(SchedulerTest, ExtendMovesTheExpiry) {
  Fail("billing", "a");
  clock_.Advance(absl::Seconds(2));
  const std::vector<LeasedItem> items = Lease("billing");  // Expires at 32 s.
  ASSERT_EQ(items.size(), 1u);
  absl::StatusOr<absl::Time> until =
      scheduler_.Extend(items[0].lease_token, absl::Seconds(60), nullptr, T(20));
  ASSERT_THAT(until, IsOk());
  EXPECT_EQ(*until, T(80));
  EXPECT_EQ(store_.Row(items[0].envelope.id).lease_expires_at, T(80));
  EXPECT_EQ(NextExpired(scheduler_, T(32)), std::nullopt);  // The old expiry is stale.
  EXPECT_FALSE(scheduler_.WorkDue(T(79)));
  EXPECT_EQ(NextExpired(scheduler_, T(80)), items[0].envelope.id);
  EXPECT_EQ(Stats("billing").leased, 1);
  // A caller that may not act for the service is refused.
  EXPECT_THAT(scheduler_.Extend(items[0].lease_token, absl::Seconds(60),
                                [](const std::string& s) { return s != "billing"; }, T(21)),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("SERVICE_NOT_ALLOWED")));
  EXPECT_EQ(store_.Row(items[0].envelope.id).lease_expires_at, T(80));
}

TEST_F(SchedulerTest, ExpiredLeaseCountsAsAFailedAttemptAndIsDecidedAgain) {
  const FailureOutcome first = Fail("billing", "a");
  clock_.Advance(absl::Seconds(2));
  const std::vector<LeasedItem> items = Lease("billing");  // Expires at 32 s.
  ASSERT_EQ(items.size(), 1u);
  EXPECT_FALSE(scheduler_.WorkDue(T(31)));
  EXPECT_EQ(scheduler_.NextWake(T(31)), T(32));
  EXPECT_EQ(NextExpired(scheduler_, T(31)), std::nullopt);
  EXPECT_TRUE(scheduler_.WorkDue(T(32)));
  const std::optional<int64_t> id = NextExpired(scheduler_, T(32));
  ASSERT_EQ(id, first.envelope.id);
  absl::StatusOr<std::optional<FailureOutcome>> out = scheduler_.ExpireLease(*id, T(32));
  ASSERT_THAT(out, IsOk());
  ASSERT_TRUE(out->has_value());
  const FailureOutcome& expired = **out;
  EXPECT_EQ(expired.failure.error_code, "LEASE_EXPIRED");
  EXPECT_EQ(expired.decision.kind, DecisionKind::kScheduled);
  EXPECT_EQ(expired.decision.attempt, 2);  // The expired lease added one.
  EXPECT_EQ(expired.decision.next_retry_at, T(32 + 6));
  const Envelope row = store_.Row(first.envelope.id);
  EXPECT_EQ(row.state, EnvelopeState::kScheduled);
  EXPECT_EQ(row.history.back().error_code, "LEASE_EXPIRED");
  EXPECT_EQ(Stats("billing").leased, 0);
  EXPECT_EQ(Stats("billing").scheduled, 1);
  EXPECT_EQ(NextExpired(scheduler_, T(1000)), std::nullopt);
  // The late worker is told the lease expired, and changes nothing.
  EXPECT_THAT(scheduler_.Succeed("billing", items[0].lease_token, T(33)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  EXPECT_THAT(scheduler_.LeasedFailure(items[0].lease_token, "billing", "a", Transient(), T(33)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  // It is leased anew when due, under a new token.
  clock_.Set(T(38));
  const std::vector<LeasedItem> again = Lease("billing");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_NE(again[0].lease_token, items[0].lease_token);
}

TEST_F(SchedulerTest, ExpiredLeaseOfTheLastAttemptDeadLetters) {
  Envelope e = NewEnvelope("billing", "a");
  e.attempt = 2;
  ASSERT_THAT(scheduler_.FirstFailure(e, Transient(), T(0)), IsOk());
  clock_.Advance(absl::Seconds(6));
  ASSERT_EQ(Lease("billing").size(), 1u);
  const std::optional<int64_t> id = NextExpired(scheduler_, T(36));
  ASSERT_TRUE(id.has_value());
  absl::StatusOr<std::optional<FailureOutcome>> out = scheduler_.ExpireLease(*id, T(36));
  ASSERT_THAT(out, IsOk());
  ASSERT_TRUE(out->has_value());
  EXPECT_EQ((*out)->decision.reason, DeadLetterReason::kRetryExhausted);
  EXPECT_EQ(Stats("billing").dead, 1);
}

// ---- The batch ----

TEST_F(SchedulerTest, BatchTimeIsTheCallersAndExpiriesAreHandedOutAtMostMaxPerBatch) {
  absl::StatusOr<absl::Time> batch_time = scheduler_.BeginBatch(T(5));
  ASSERT_THAT(batch_time, IsOk());
  EXPECT_EQ(*batch_time, T(5));
  scheduler_.EndBatch();
  for (const char* id : {"a", "b", "c"}) Fail("billing", id);
  clock_.Advance(absl::Seconds(2));
  ASSERT_EQ(Lease("billing").size(), 3u);  // Every lease expires at 32 s.
  std::set<int64_t> expired;
  for (int i = 0; i < 2; ++i) {
    const std::optional<int64_t> id = NextExpired(scheduler_, T(32), /*max=*/2);
    ASSERT_TRUE(id.has_value());
    expired.insert(*id);
  }
  EXPECT_EQ(NextExpired(scheduler_, T(32), 2), std::nullopt);  // The batch's share is out.
  EXPECT_TRUE(scheduler_.WorkDue(T(32)));  // The third waits for the next batch.
  scheduler_.EndBatch();
  const std::optional<int64_t> third = NextExpired(scheduler_, T(32), 2);
  ASSERT_TRUE(third.has_value());
  expired.insert(*third);
  EXPECT_EQ(expired.size(), 3u);
  EXPECT_EQ(NextExpired(scheduler_, T(32), 2), std::nullopt);
}

TEST_F(SchedulerTest, SaveGuardsStoresEachChangedCircuitOnce) {
  Fail("circuit", "a");  // Opens it (one call suffices).
  ASSERT_THAT(scheduler_.SaveGuards(T(0)), IsOk());
  const std::optional<CircuitRecord> saved = store_.Circuit("circuit");
  ASSERT_TRUE(saved.has_value());
  EXPECT_EQ(saved->state, CircuitState::kOpen);
  const int64_t writes = store_.writes();
  ASSERT_THAT(scheduler_.SaveGuards(T(0)), IsOk());  // Nothing changed since.
  EXPECT_EQ(store_.writes(), writes);
  // OPEN → HALF_OPEN when its time comes, outside any op: saved with the batch.
  std::vector<std::string> changed;
  ASSERT_THAT(scheduler_.AdvanceCircuits(T(29), &changed), IsOk());
  EXPECT_THAT(changed, IsEmpty());
  ASSERT_THAT(scheduler_.AdvanceCircuits(T(30), &changed), IsOk());
  EXPECT_THAT(changed, ElementsAre("circuit"));
  ASSERT_THAT(scheduler_.RefreshGuards("circuit", T(30)), IsOk());  // Nothing to refresh.
  ASSERT_THAT(scheduler_.RefreshAllGuards(T(30)), IsOk());
  // A save that fails is the caller's store failure.
  store_.FailNextWrite(absl::InternalError("disk"));
  EXPECT_THAT(scheduler_.SaveGuards(T(30)), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(store_.Circuit("circuit")->state, CircuitState::kOpen);
}

TEST_F(SchedulerTest, StaleForeignAndMismatchedTokensChangeNothing) {
  Fail("billing", "a");
  Fail("billing", "b");
  clock_.Advance(absl::Seconds(2));
  const std::vector<LeasedItem> items = Lease("billing", 1);
  ASSERT_EQ(items.size(), 1u);
  const std::string& token = items[0].lease_token;
  const auto not_found = StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("LEASE_NOT_FOUND"));
  EXPECT_THAT(scheduler_.Succeed("billing", "garbage", T(3)), not_found);
  EXPECT_THAT(scheduler_.Succeed("billing", "1.7.feedface", T(3)), not_found);
  // A token of an earlier attempt of a service the caller may see was superseded.
  EXPECT_THAT(scheduler_.Succeed("billing", "1.0.feedface", T(3)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  EXPECT_THAT(scheduler_.Succeed("other", "1.0.feedface", T(3)), not_found);
  EXPECT_THAT(scheduler_.Succeed("billing", token + "0", T(3)), not_found);
  // Another service's caller learns nothing about this lease.
  EXPECT_THAT(scheduler_.Succeed("other", token + "0", T(3)), not_found);
  EXPECT_THAT(scheduler_.Succeed("other", token, T(3)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_MISMATCH")));
  EXPECT_THAT(scheduler_.LeasedFailure(token, "billing", "b", Transient(), T(3)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_MISMATCH")));
  EXPECT_EQ(store_.Row(items[0].envelope.id).state, EnvelopeState::kLeased);
  EXPECT_EQ(Stats("billing").leased, 1);
  EXPECT_THAT(scheduler_.Succeed("billing", token, T(3)), IsOk());
}

// ---- Long-poll waiters ----

TEST_F(SchedulerTest, WaiterIsServedWhenWorkBecomesDue) {
  scheduler_.Park(std::make_unique<FakeWaiter>("billing", T(20)));
  EXPECT_FALSE(scheduler_.WorkDue(T(0)));
  EXPECT_EQ(scheduler_.NextWake(T(0)), T(20));
  Fail("billing", "a");  // Due at 2 s.
  EXPECT_EQ(scheduler_.NextWake(T(0)), T(2));
  EXPECT_FALSE(scheduler_.WorkDue(T(1)));
  EXPECT_TRUE(scheduler_.WorkDue(T(2)));
  std::vector<LeasedItem> served;
  int calls = 0;
  scheduler_.ServeWaiters(T(2), [&](std::unique_ptr<LeaseWaiter> w) {
    ++calls;
    EXPECT_EQ(w->service(), "billing");
    absl::StatusOr<LeaseGrant> grant = scheduler_.Lease(w->service(), 10, absl::Seconds(30), T(2));
    EXPECT_THAT(grant, IsOk());
    if (grant.ok()) served = std::move(grant->items);
    return std::unique_ptr<LeaseWaiter>();
  });
  EXPECT_EQ(calls, 1);
  EXPECT_THAT(Ids(served), ElementsAre("a"));
  EXPECT_THAT(scheduler_.TakeEndedWaiters(T(100), /*all=*/true), IsEmpty());
}

TEST_F(SchedulerTest, WaiterStillWaitingGoesBackToTheFront) {
  scheduler_.Park(std::make_unique<FakeWaiter>("billing", T(20)));
  scheduler_.Park(std::make_unique<FakeWaiter>("billing", T(10)));
  Fail("billing", "a");
  std::vector<absl::Time> seen;
  scheduler_.ServeWaiters(T(2), [&](std::unique_ptr<LeaseWaiter> w) {
    seen.push_back(w->wait_until());
    return w;  // Still waiting: the service's turn ends.
  });
  EXPECT_THAT(seen, ElementsAre(T(20)));
  // Both are still parked, oldest first.
  std::vector<std::unique_ptr<LeaseWaiter>> all = scheduler_.TakeEndedWaiters(T(0), true);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0]->wait_until(), T(20));
}

TEST_F(SchedulerTest, WaiterTimesOutOrIsDroppedWhenItsCallerLeaves) {
  scheduler_.Park(std::make_unique<FakeWaiter>("billing", T(5)));
  auto gone = std::make_unique<FakeWaiter>("billing", T(50));
  FakeWaiter* gone_ptr = gone.get();
  scheduler_.Park(std::move(gone));
  EXPECT_EQ(scheduler_.NextWake(T(0)), T(5));
  EXPECT_THAT(scheduler_.TakeEndedWaiters(T(4), false), IsEmpty());
  std::vector<std::unique_ptr<LeaseWaiter>> ended = scheduler_.TakeEndedWaiters(T(5), false);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0]->wait_until(), T(5));
  gone_ptr->gone = true;
  ended = scheduler_.TakeEndedWaiters(T(6), false);
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0]->wait_until(), T(50));
  EXPECT_EQ(scheduler_.NextWake(T(6)), absl::InfiniteFuture());
}

// ---- Retry budget ----

TEST_F(SchedulerTest, SpentBudgetDefersToTheNextTimeItAllows) {
  const FailureOutcome a = Fail("defer", "a");
  EXPECT_EQ(a.decision.next_retry_at, T(2));
  const FailureOutcome b = Fail("defer", "b");  // One retry per 60 s window.
  EXPECT_EQ(b.decision.kind, DecisionKind::kScheduled);
  EXPECT_GE(b.decision.next_retry_at, T(60));
  EXPECT_EQ(store_.Row(b.envelope.id).next_retry_at, b.decision.next_retry_at);
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(Ids(Lease("defer")), ElementsAre("a"));
}

TEST_F(SchedulerTest, SpentBudgetDeadLettersWhenThePolicySaysSo) {
  Fail("spent", "a");
  const FailureOutcome b = Fail("spent", "b");
  EXPECT_EQ(b.decision.kind, DecisionKind::kDeadLettered);
  EXPECT_EQ(b.decision.reason, DeadLetterReason::kBudgetExhausted);
  EXPECT_EQ(Stats("spent").dead, 1);
}

TEST_F(SchedulerTest, DuplicateGivesBackTheRetryTheBudgetBooked) {
  Fail("defer", "a");
  Fail("defer", "a");  // Duplicate: books nothing.
  const FailureOutcome b = Fail("defer", "b");
  EXPECT_GE(b.decision.next_retry_at, T(60));
  EXPECT_LT(b.decision.next_retry_at, T(120));
}

// ---- Circuit ----

TEST_F(SchedulerTest, OpenCircuitHoldsRetriesAndHalfOpenAdmitsExactlyTheTrials) {
  for (const char* id : {"a", "b", "c", "d", "e"}) Fail("circuit", id);  // The first opens it.
  EXPECT_THAT(circuit_changes_, ::testing::Contains("circuit"));
  clock_.Advance(absl::Seconds(2));
  EXPECT_THAT(Lease("circuit"), IsEmpty());  // OPEN: held, not lost.
  EXPECT_EQ(Stats("circuit").scheduled, 5);
  scheduler_.Park(std::make_unique<FakeWaiter>("circuit", T(100)));
  EXPECT_FALSE(scheduler_.WorkDue(T(2)));  // Nothing a waiter could be served.
  EXPECT_EQ(scheduler_.NextWake(T(2)), T(30));  // OPEN → HALF_OPEN.
  clock_.Set(T(30));
  EXPECT_TRUE(scheduler_.WorkDue(T(30)));
  const std::vector<LeasedItem> trials = Lease("circuit");
  EXPECT_EQ(trials.size(), 2u);  // half_open_trials.
  EXPECT_THAT(Lease("circuit"), IsEmpty());
  for (const LeasedItem& t : trials) {
    ASSERT_THAT(scheduler_.Succeed("circuit", t.lease_token, T(31)), IsOk());
  }
  // Every trial succeeded: CLOSED, and the rest flows.
  EXPECT_EQ(Lease("circuit").size(), 3u);
  scheduler_.TakeEndedWaiters(T(0), true);
}

TEST_F(SchedulerTest, FailedTrialOpensTheCircuitAgain) {
  Fail("circuit", "a");
  Fail("circuit", "b");
  clock_.Set(T(30));
  const std::vector<LeasedItem> trials = Lease("circuit");
  ASSERT_EQ(trials.size(), 2u);
  ASSERT_THAT(scheduler_.LeasedFailure(trials[0].lease_token, "circuit",
                                       trials[0].envelope.message_id, Transient(), T(31)),
              IsOk());
  clock_.Set(T(40));  // The failed trial is due again (6 s later), but the circuit is OPEN.
  EXPECT_THAT(Lease("circuit"), IsEmpty());
  EXPECT_GT(scheduler_.guards().NextTransition(), T(60));  // The open duration doubled.
}

// ---- Restart ----

TEST_F(SchedulerTest, RestoredStateLeasesAndExpiresAsBefore) {
  SchedulerContext context = Context();
  context.started_at = T(0);
  context.circuit_changed = [](const std::string&) {};
  LocalScheduler restored(context);
  const FailureOutcome a = Fail("billing", "a");  // Rows only matter to `restored`.
  const FailureOutcome b = Fail("billing", "b");
  clock_.Advance(absl::Seconds(2));
  const std::vector<LeasedItem> leased = Lease("billing", 1);
  ASSERT_EQ(leased.size(), 1u);
  const Envelope still = store_.Row(leased[0].envelope.id == a.envelope.id ? b.envelope.id
                                                                            : a.envelope.id);
  restored.Reset();
  restored.RestoreScheduled("billing", still.id, still.next_retry_at, T(2));
  restored.RestoreLeased("billing", leased[0].envelope.id, leased[0].lease_expires_at);
  restored.RestoreDead("billing", 4);
  restored.FinishRestore();
  std::vector<std::pair<std::string, ServiceStats>> stats = restored.TakeChangedStats();
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].second.scheduled, 1);
  EXPECT_EQ(stats[0].second.leased, 1);
  EXPECT_EQ(stats[0].second.dead, 4);
  absl::StatusOr<LeaseGrant> grant = restored.Lease("billing", 10, absl::Seconds(30), T(2));
  ASSERT_THAT(grant, IsOk());
  ASSERT_EQ(grant->items.size(), 1u);
  EXPECT_EQ(grant->items[0].envelope.id, still.id);
  // A lease that expired while the server was down is expired at once.
  EXPECT_EQ(NextExpired(restored, T(500)), leased[0].envelope.id);
}

}  // namespace
}  // namespace retryd
