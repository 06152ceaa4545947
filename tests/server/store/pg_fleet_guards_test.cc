// FleetGuardSync (server/store/pg/pg_fleet_guards.h): three replicas' ServiceGuards, each with
// its journal and its FleetGuardSync on a connection of its own, driven as the engine drives
// them (BEGIN; Refresh; changes inside BeginOp/EndOp; Save; COMMIT; EndBatch), against a real
// PostgreSQL (tests/testing/pg_cluster.h).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/circuit_breaker.h"
#include "server/core/guard_state.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_db_time.h"
#include "server/store/pg/pg_fleet_guards.h"
#include "server/store/pg/pg_guard_rows.h"
#include "server/store/pg/pg_schema.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;

// One replica: its connection, its guards (journal on) and its FleetGuardSync.
struct Replica {
  Replica(std::unique_ptr<pg::Connection> c, const PolicySet& policies, const std::string& name)
      : conn(std::move(c)), guards(&policies, absl::UnixEpoch()), sync([this]() -> pg::Connection& { return *conn; }, policies, name) {
    guards.EnableJournal(name);
  }
  std::unique_ptr<pg::Connection> conn;
  ServiceGuards guards;
  pg::FleetGuardSync sync;
  absl::Time now;

  // BEGIN, and the batch's database time.
  absl::Status Begin() {
    if (absl::Status s = conn->Begin(); !s.ok()) return s;
    absl::StatusOr<absl::Time> t = pg::DbNow(*conn);
    if (!t.ok()) return t.status();
    now = *t;
    return absl::OkStatus();
  }
  // One op of the batch on `service`: Refresh first, as the scheduler does.
  absl::Status Op(const std::string& service, bool keep, const std::function<void()>& change) {
    if (absl::Status s = sync.Refresh(guards, service, now); !s.ok()) return s;
    guards.BeginOp();
    change();
    guards.EndOp(keep);
    return absl::OkStatus();
  }
  // Save, COMMIT, EndBatch.
  absl::Status Commit() {
    if (absl::Status s = sync.Save(guards, now); !s.ok()) return s;
    if (absl::Status s = conn->Commit(); !s.ok()) return s;
    sync.EndBatch();
    return absl::OkStatus();
  }
};

int64_t Sum(const SlidingCounter::Buckets& b) {
  int64_t n = 0;
  for (int64_t c : b.counts) n += c;
  return n;
}

// "svc", "a", "b": a circuit that opens at 60 outcomes with half of them failures, 200 ms open,
// 2 trials; "bud": a budget of 0.5 retries per first attempt, no circuit.
class FleetGuardSyncPostgresTest : public ::testing::Test {
 public:
  pg::Connection* db() { return db_.get(); }

  pg::GuardRow Row(const std::string& service) {
    auto row = pg::LoadGuardRow(*db_, service);
    EXPECT_THAT(row, IsOk());
    return row.ok() ? *row : pg::GuardRow{};
  }

  GuardState Windows(const std::string& service) {
    auto state = DecodeGuardState(Row(service).record.windows);
    EXPECT_THAT(state, IsOk());
    return state.ok() ? *state : GuardState{};
  }

  // `n` counted failures of leased retries (ids from `first_id`) in one kept op.
  static std::function<void()> Failures(Replica& r, const std::string& service, int n,
                                        int64_t first_id) {
    return [&r, service, n, first_id] {
      for (int i = 0; i < n; ++i) {
        r.guards.OnFailure(service, r.now, ErrorClass::kTransient, first_id + i);
      }
    };
  }

 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_THAT(cluster, IsOk());
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn, IsOk());
    dsn_ = *dsn;
    db_ = Connect();
    ASSERT_NE(db_, nullptr);
    ASSERT_THAT(pg::Migrate(*db_), IsOk());
    Policy p;
    p.name = "default";
    p.circuit.enabled = true;
    p.circuit.minimum_calls = 60;
    p.circuit.failure_rate_threshold = 0.5;
    p.circuit.open_duration = absl::Milliseconds(200);
    p.circuit.half_open_trials = 2;
    Policy bud;
    bud.name = "bud";
    bud.budget.enabled = true;
    bud.budget.ratio = 0.5;
    bud.budget.min_retries_per_window = 0;
    auto set = PolicySet::Create({p, bud});
    ASSERT_THAT(set, IsOk());
    policies_ = *std::move(set);
    for (int r = 0; r < 3; ++r) {
      auto c = Connect();
      ASSERT_NE(c, nullptr);
      replicas_.push_back(std::make_unique<Replica>(std::move(c), policies_, absl::StrCat("r", r)));
    }
  }

  std::unique_ptr<pg::Connection> Connect() {
    auto c = pg::Connection::Open(dsn_);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::string dsn_;
  std::unique_ptr<pg::Connection> db_;
  PolicySet policies_;
  std::vector<std::unique_ptr<Replica>> replicas_;
};

TEST_F(FleetGuardSyncPostgresTest, FailuresOnThreeReplicasInOverlappingBatchesOpenTheCircuit) {
  // Every replica refreshes the same row, records 20 failures, and only then do they save one
  // after another: each Save finds the row another replica wrote since its Refresh and makes its
  // own failures again on it. A blind write of a replica's own guards would leave 20.
  for (int r = 0; r < 3; ++r) {
    Replica& rep = *replicas_[r];
    ASSERT_THAT(rep.Begin(), IsOk());
    ASSERT_THAT(rep.Op("svc", true, Failures(rep, "svc", 20, 1000 * (r + 1))), IsOk());
    EXPECT_EQ(rep.guards.State("svc"), CircuitState::kClosed);
  }
  for (int r = 0; r < 3; ++r) ASSERT_THAT(replicas_[r]->Commit(), IsOk());
  EXPECT_EQ(Row("svc").record.state, CircuitState::kOpen);
  EXPECT_EQ(Sum(Windows("svc").circuit.retry_failures), 60);
  EXPECT_EQ(replicas_[0]->sync.stats().save_races, 0);
  EXPECT_EQ(replicas_[1]->sync.stats().save_races, 1);
  EXPECT_EQ(replicas_[2]->sync.stats().save_races, 1);
  // The last saver holds the row as written; the others see it at their next batch.
  EXPECT_EQ(replicas_[2]->guards.State("svc"), CircuitState::kOpen);
  Replica& first = *replicas_[0];
  ASSERT_THAT(first.Begin(), IsOk());
  ASSERT_THAT(first.sync.Refresh(first.guards, "svc", first.now), IsOk());
  EXPECT_EQ(first.guards.State("svc"), CircuitState::kOpen);
  ASSERT_THAT(first.Commit(), IsOk());
}

TEST_F(FleetGuardSyncPostgresTest, AnUndoneOpLeavesNothingInTheRow) {
  Replica& r = *replicas_[0];
  ASSERT_THAT(r.Begin(), IsOk());
  ASSERT_THAT(r.Op("svc", /*keep=*/false, Failures(r, "svc", 5, 1)), IsOk());
  ASSERT_THAT(r.Op("svc", /*keep=*/true, Failures(r, "svc", 1, 10)), IsOk());
  ASSERT_THAT(r.Commit(), IsOk());
  EXPECT_EQ(Row("svc").version, 1);
  EXPECT_EQ(Sum(Windows("svc").circuit.retry_failures), 1);
  // A batch whose only op was undone writes nothing.
  ASSERT_THAT(r.Begin(), IsOk());
  ASSERT_THAT(r.Op("svc", /*keep=*/false, Failures(r, "svc", 3, 20)), IsOk());
  ASSERT_THAT(r.Commit(), IsOk());
  EXPECT_EQ(Row("svc").version, 1);
  EXPECT_EQ(Sum(Windows("svc").circuit.retry_failures), 1);
}

TEST_F(FleetGuardSyncPostgresTest, OneReplicaTakesTheTrialsAndSuccessesElsewhereCloseIt) {
  Replica& opener = *replicas_[0];
  ASSERT_THAT(opener.Begin(), IsOk());
  ASSERT_THAT(opener.Op("svc", true, Failures(opener, "svc", 60, 1)), IsOk());
  ASSERT_THAT(opener.Commit(), IsOk());
  ASSERT_EQ(Row("svc").record.state, CircuitState::kOpen);
  absl::SleepFor(absl::Milliseconds(300));  // Past the open duration.
  // Every replica has due envelopes and leases, at the same time, what the circuit allows.
  // All three refresh the OPEN row before any of them leases: each turns it HALF_OPEN in memory
  // and claims it.
  std::vector<std::vector<int64_t>> leased(3);
  std::vector<std::thread> threads;
  absl::Mutex mu;
  int refreshed = 0;
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      Replica& r = *replicas_[i];
      ASSERT_THAT(r.Begin(), IsOk());
      ASSERT_THAT(r.sync.Refresh(r.guards, "svc", r.now), IsOk());
      {
        absl::MutexLock lock(&mu);
        ++refreshed;
        auto all = [&refreshed] { return refreshed == 3; };
        mu.Await(absl::Condition(&all));
      }
      absl::Status claim_status;
      ASSERT_THAT(r.Op("svc", true,
                       [&] {
                         bool changed = false;
                         int64_t allowance = r.guards.LeaseAllowance("svc", r.now, &changed);
                         if (changed) {
                           auto won = r.sync.Claim(r.guards, "svc", r.now);
                           if (!won.ok()) {
                             claim_status = won.status();
                             return;
                           }
                           if (!*won) allowance = r.guards.LeaseAllowance("svc", r.now, &changed);
                         }
                         for (int64_t k = 0; k < std::min<int64_t>(2, allowance); ++k) {
                           leased[i].push_back(100 * (i + 1) + k);
                         }
                         r.guards.OnLeased("svc", r.now, leased[i], /*drained=*/false);
                       }),
                  IsOk());
      ASSERT_THAT(claim_status, IsOk());
      ASSERT_THAT(r.Commit(), IsOk());
    });
  }
  for (auto& t : threads) t.join();
  int holder = -1;
  int total = 0;
  for (int i = 0; i < 3; ++i) {
    total += static_cast<int>(leased[i].size());
    if (!leased[i].empty()) {
      EXPECT_EQ(holder, -1) << "a second replica leased trials";
      holder = i;
    }
  }
  ASSERT_NE(holder, -1);
  EXPECT_EQ(total, 2);
  pg::GuardRow row = Row("svc");
  EXPECT_EQ(row.record.state, CircuitState::kHalfOpen);
  GuardState state = Windows("svc");
  EXPECT_EQ(state.circuit.trial_holder, absl::StrCat("r", holder));
  EXPECT_EQ(state.circuit.trials, leased[holder]);
  int claims = 0;
  std::cout << "claims won/lost/busy:";
  for (int i = 0; i < 3; ++i) {
    const auto& s = replicas_[i]->sync.stats();
    claims += static_cast<int>(s.claims_won + s.claims_lost + s.claims_busy);
    EXPECT_EQ(s.claims_won, i == holder ? 1 : 0);
    std::cout << " r" << i << " " << s.claims_won << "/" << s.claims_lost << "/" << s.claims_busy;
  }
  std::cout << "\n";
  EXPECT_EQ(claims, 3) << "every replica saw the transition and claimed it";

  // The other replicas may lease no trial; each receives one trial's success, in overlapping
  // batches, and together they close the circuit.
  Replica& a = *replicas_[(holder + 1) % 3];
  Replica& b = *replicas_[(holder + 2) % 3];
  ASSERT_THAT(a.Begin(), IsOk());
  ASSERT_THAT(b.Begin(), IsOk());
  ASSERT_THAT(a.Op("svc", true,
                   [&] {
                     bool changed = false;
                     EXPECT_EQ(a.guards.LeaseAllowance("svc", a.now, &changed), 0);
                     EXPECT_FALSE(changed);
                     a.guards.OnSuccess("svc", a.now, leased[holder][0]);
                   }),
              IsOk());
  ASSERT_THAT(b.Op("svc", true, [&] { b.guards.OnSuccess("svc", b.now, leased[holder][1]); }),
              IsOk());
  EXPECT_EQ(a.guards.State("svc"), CircuitState::kHalfOpen) << "one success of two";
  EXPECT_EQ(b.guards.State("svc"), CircuitState::kHalfOpen) << "one success of two";
  ASSERT_THAT(a.Commit(), IsOk());
  ASSERT_THAT(b.Commit(), IsOk());
  EXPECT_EQ(Row("svc").record.state, CircuitState::kClosed);
  EXPECT_EQ(b.guards.State("svc"), CircuitState::kClosed);
}

TEST_F(FleetGuardSyncPostgresTest, BudgetCountsOfEveryReplicaMerge) {
  Replica& r0 = *replicas_[0];
  Replica& r1 = *replicas_[1];
  Replica& r2 = *replicas_[2];
  for (Replica* r : {&r0, &r1, &r2}) ASSERT_THAT(r->Begin(), IsOk());
  ASSERT_THAT(r0.Op("bud", true,
                    [&] {
                      for (int i = 0; i < 10; ++i) r0.guards.RecordFirstFailure("bud", r0.now);
                    }),
              IsOk());
  ASSERT_THAT(r1.Op("bud", true, [&] { r1.guards.RecordOutcomes("bud", r1.now, 10, 0); }),
              IsOk());
  ASSERT_THAT(r2.Op("bud", true,
                    [&] {
                      for (int i = 0; i < 10; ++i) r2.guards.RecordFirstFailure("bud", r2.now);
                    }),
              IsOk());
  for (Replica* r : {&r2, &r0, &r1}) ASSERT_THAT(r->Commit(), IsOk());
  GuardState state = Windows("bud");
  ASSERT_TRUE(state.budget.has_value());
  EXPECT_EQ(Sum(state.budget->first_failures), 20);
  EXPECT_EQ(Sum(state.budget->successes), 10);
  // Any replica refreshing the row allows 0.5 × 30 first attempts.
  ASSERT_THAT(r0.Begin(), IsOk());
  ASSERT_THAT(r0.sync.RefreshAll(r0.guards, r0.now), IsOk());
  EXPECT_EQ(r0.guards.Views(r0.now)["bud"].budget_remaining, 15);
  ASSERT_THAT(r0.Commit(), IsOk());
}

TEST_F(FleetGuardSyncPostgresTest, SavesInNameOrderDoNotDeadlockOnServicesChangedInOppositeOrders) {
  // Two replicas change "a" and "b" in every batch, in opposite orders, at the same time, and
  // hold their rows a moment before committing. Locking in the order of the changes would
  // deadlock (PostgreSQL would then fail one batch); Save locks in name order.
  constexpr int kBatches = 25;
  std::atomic<int> finished{0};
  absl::Notification done;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      struct Done {
        std::atomic<int>& finished;
        absl::Notification& done;
        ~Done() {
          if (++finished == 2) done.Notify();
        }
      } count{finished, done};
      Replica& r = *replicas_[i];
      const std::string first = i == 0 ? "a" : "b";
      const std::string second = i == 0 ? "b" : "a";
      for (int n = 0; n < kBatches; ++n) {
        ASSERT_THAT(r.Begin(), IsOk());
        ASSERT_THAT(r.Op(first, true, Failures(r, first, 1, 1 + n)), IsOk());
        ASSERT_THAT(r.Op(second, true, Failures(r, second, 1, 1 + n)), IsOk());
        ASSERT_THAT(r.sync.Save(r.guards, r.now), IsOk());
        absl::SleepFor(absl::Milliseconds(2));
        ASSERT_THAT(r.conn->Commit(), IsOk());
        r.sync.EndBatch();
      }
    });
  }
  const bool in_time = done.WaitForNotificationWithTimeout(absl::Seconds(120));
  if (!in_time) {
    for (auto& t : threads) t.detach();
    FAIL() << "the replicas' batches did not finish in 120 s";
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Sum(Windows("a").circuit.retry_failures), 2 * kBatches);
  EXPECT_EQ(Sum(Windows("b").circuit.retry_failures), 2 * kBatches);
}

// r0 claims `b` (its row locked until r0 commits) and changed `a`; r1 changed `a` and `b` and
// saves first: it locks `a` and waits for `b`. r0's Save must not wait for `a` (each would wait
// for the other): it leaves `a` to its next batch. `a_exists`: `a` has a row already (r1 holds
// it locked), or not (r1's first insert is pending).
void ClaimedRowAndAnotherSave(FleetGuardSyncPostgresTest* t, Replica& r0, Replica& r1,
                              Replica& r2, const std::string& a, const std::string& b,
                              bool a_exists);

TEST_F(FleetGuardSyncPostgresTest, AClaimedRowDoesNotDeadlockWithAnotherReplicasSave) {
  ClaimedRowAndAnotherSave(this, *replicas_[0], *replicas_[1], *replicas_[2], "a", "b", false);
  ClaimedRowAndAnotherSave(this, *replicas_[0], *replicas_[1], *replicas_[2], "c", "d", true);
}

void ClaimedRowAndAnotherSave(FleetGuardSyncPostgresTest* t, Replica& r0, Replica& r1,
                              Replica& r2, const std::string& a, const std::string& b,
                              bool a_exists) {
  SCOPED_TRACE(a_exists ? "existing row" : "new row");
  const int64_t before = a_exists ? 1 : 0;
  if (a_exists) {
    ASSERT_THAT(r2.Begin(), IsOk());
    ASSERT_THAT(r2.Op(a, true, FleetGuardSyncPostgresTest::Failures(r2, a, 1, 500)), IsOk());
    ASSERT_THAT(r2.Commit(), IsOk());
  }
  ASSERT_THAT(r0.Begin(), IsOk());
  ASSERT_THAT(r0.Op(b, true, FleetGuardSyncPostgresTest::Failures(r0, b, 60, 1)), IsOk());
  ASSERT_THAT(r0.Commit(), IsOk());
  absl::SleepFor(absl::Milliseconds(300));  // Past the open duration.
  const int64_t carried = r0.sync.stats().carried;
  ASSERT_THAT(r0.Begin(), IsOk());
  ASSERT_THAT(r0.Op(b, true,
                    [&] {
                      bool changed = false;
                      r0.guards.LeaseAllowance(b, r0.now, &changed);
                      ASSERT_TRUE(changed);
                      auto won = r0.sync.Claim(r0.guards, b, r0.now);
                      ASSERT_THAT(won, IsOk());
                      EXPECT_TRUE(*won);
                    }),
              IsOk());
  ASSERT_THAT(r0.Op(a, true, FleetGuardSyncPostgresTest::Failures(r0, a, 1, 1)), IsOk());
  ASSERT_THAT(r1.Begin(), IsOk());
  ASSERT_THAT(r1.Op(a, true, FleetGuardSyncPostgresTest::Failures(r1, a, 1, 2)), IsOk());
  ASSERT_THAT(r1.Op(b, true, FleetGuardSyncPostgresTest::Failures(r1, b, 1, 100)), IsOk());
  absl::Status r1_commit;
  std::thread saver([&] { r1_commit = r1.Commit(); });
  // Until r1 waits for `b`.
  bool waiting = false;
  for (int i = 0; i < 1000 && !waiting; ++i) {
    auto r = t->db()->Exec("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                           " AND datname = current_database()");
    ASSERT_THAT(r, IsOk());
    waiting = r->Int(0, 0) > 0;
    if (!waiting) absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(waiting);
  EXPECT_THAT(r0.Commit(), IsOk());
  saver.join();
  EXPECT_THAT(r1_commit, IsOk());
  EXPECT_EQ(r0.sync.stats().carried, carried + 1);
  EXPECT_EQ(Sum(t->Windows(a).circuit.retry_failures), before + 1) << "r1's";
  EXPECT_EQ(t->Windows(b).circuit.trial_holder, "r0");
  // r0's next batch carries its failure of `a`.
  ASSERT_THAT(r0.Begin(), IsOk());
  ASSERT_THAT(r0.Commit(), IsOk());
  EXPECT_EQ(Sum(t->Windows(a).circuit.retry_failures), before + 2);
  EXPECT_TRUE(r0.guards.Journaled().empty());
}

}  // namespace
}  // namespace retryd
