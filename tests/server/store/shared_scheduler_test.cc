// SharedScheduler (server/store/pg/shared_scheduler.h): two or three replicas, each a PgStore of
// its own with a SharedScheduler on it, on one real PostgreSQL schema (tests/testing/pg_cluster.h),
// driven as the engine drives its scheduler: Begin; now = BeginBatch; the sweep's expiries, then
// each op between store.BeginOp/EndOp and guards().BeginOp/EndOp; SaveGuards; Commit; EndBatch.
// Every test here needs the server: their names say Postgres.
#include "server/store/pg/shared_scheduler.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_store.h"
#include "server/util/random.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;
using ::retryd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

PolicySet TestPolicies() {
  Policy base;
  base.name = "default";
  base.max_attempts = 5;
  base.backoff.jitter = JitterKind::kNone;  // 2 s, 6 s, ...
  Policy fast = base;
  fast.name = "fast";
  fast.backoff.initial = absl::Milliseconds(50);
  return *PolicySet::Create({base, fast});
}

Failure Transient() {
  Failure f;
  f.error_code = "UPSTREAM_TIMEOUT";
  f.error_class = ErrorClass::kTransient;
  f.message = "timed out";
  return f;
}

Envelope NewEnvelope(const std::string& service, const std::string& message_id,
                     size_t payload_bytes = 16) {
  Envelope e;
  e.service = service;
  e.message_id = message_id;
  e.payload = std::string(payload_bytes, 'p');
  e.first_seen_at = absl::InfinitePast();
  return e;
}

// A parked long-poll as the engine's Lease op is one.
class TestWaiter final : public LeaseWaiter {
 public:
  TestWaiter(std::string service, absl::Time wait_until)
      : service_(std::move(service)), wait_until_(wait_until) {}
  const std::string& service() const override { return service_; }
  absl::Time wait_until() const override { return wait_until_; }
  bool caller_gone() const override { return false; }

 private:
  std::string service_;
  absl::Time wait_until_;
};

// One replica: its store, its scheduler, and the engine's way of running a batch.
class Replica {
 public:
  Replica(std::unique_ptr<PgStore> store, const PolicySet* policies, int64_t max_bytes,
          SharedSchedulerOptions options)
      : store_(std::move(store)) {
    SchedulerContext ctx;
    ctx.store = store_.get();
    ctx.policies = policies;
    ctx.rng = &rng_;
    ctx.started_at = absl::Now();
    ctx.max_lease_response_bytes = max_bytes;
    ctx.circuit_changed = [](const std::string&) {};
    ctx.wake_writer = [this] {
      absl::MutexLock lock(&mu_);
      woken_ = true;
    };
    sched_ = std::make_unique<SharedScheduler>(ctx, store_.get(), nullptr, std::move(options));
  }

  SharedScheduler& sched() { return *sched_; }
  PgStore& store() { return *store_; }
  // How far this replica's clock runs ahead of the machine's.
  void set_skew(absl::Duration skew) { skew_ = skew; }
  absl::Time LocalNow() const { return absl::Now() + skew_; }

  // One batch: the sweep's expiries (as Engine::ExpireLeases), then `body(now)`, then the end.
  // Answers the batch's time.
  absl::Time Batch(const std::function<void(absl::Time)>& body) {
    EXPECT_THAT(store_->Begin(), IsOk());
    absl::StatusOr<absl::Time> now = sched_->BeginBatch(LocalNow());
    EXPECT_THAT(now, IsOk());
    batch_now_ = *now;
    for (;;) {
      absl::StatusOr<std::optional<int64_t>> id = sched_->NextExpired(*now, 1000);
      EXPECT_THAT(id, IsOk());
      if (!id.ok() || !id->has_value()) break;
      absl::StatusOr<std::optional<FailureOutcome>> out =
          InOp([&] { return sched_->ExpireLease(**id, *now); });
      EXPECT_THAT(out, IsOk());
      if (out.ok() && out->has_value()) expired_++;
    }
    body(*now);
    EXPECT_THAT(sched_->SaveGuards(*now), IsOk());
    EXPECT_THAT(store_->Commit(), IsOk());
    sched_->EndBatch();
    return *now;
  }

  // `f` inside an op's savepoint, kept when it succeeds.
  template <typename F>
  auto InOp(F f) -> decltype(f()) {
    EXPECT_THAT(store_->BeginOp(), IsOk());
    sched_->guards().BeginOp();
    auto result = f();
    EXPECT_THAT(store_->EndOp(result.ok()), IsOk());
    sched_->guards().EndOp(result.ok());
    return result;
  }

  // Single-op batches.
  absl::StatusOr<FailureOutcome> FirstFailure(Envelope e) {
    absl::StatusOr<FailureOutcome> out = absl::UnknownError("not run");
    Batch([&](absl::Time now) {
      out = InOp([&] { return sched_->FirstFailure(std::move(e), Transient(), now); });
    });
    return out;
  }
  absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max,
                                   absl::Duration visibility = absl::Seconds(60)) {
    absl::StatusOr<LeaseGrant> out = absl::UnknownError("not run");
    Batch([&](absl::Time now) {
      out = InOp([&] { return sched_->Lease(service, max, visibility, now); });
    });
    return out;
  }
  absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token) {
    absl::StatusOr<Envelope> out = absl::UnknownError("not run");
    Batch([&](absl::Time now) { out = InOp([&] { return sched_->Succeed(service, token, now); }); });
    return out;
  }
  absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& service,
                                               const std::string& token) {
    absl::StatusOr<FailureOutcome> out = absl::UnknownError("not run");
    Batch([&](absl::Time now) {
      out = InOp([&] { return sched_->LeasedFailure(token, service, "", Transient(), now); });
    });
    return out;
  }
  absl::StatusOr<absl::Time> Extend(const std::string& token,
                                    const Scheduler::ServiceCheck& may_act_for = nullptr) {
    absl::StatusOr<absl::Time> out = absl::UnknownError("not run");
    Batch([&](absl::Time now) {
      out = InOp([&] { return sched_->Extend(token, absl::Seconds(60), may_act_for, now); });
    });
    return out;
  }

  // The engine's writer loop for long-polls only, until `until`: a batch whenever WorkDue,
  // serving parked polls with `serve`; otherwise a sleep until NextWake or a wake-up.
  void RunWriter(absl::Time until, const Scheduler::ServeFunction& serve,
                 const std::function<bool()>& done) {
    while (absl::Now() < until && !done()) {
      if (sched_->WorkDue(LocalNow())) {
        Batch([&](absl::Time now) { sched_->ServeWaiters(now, serve); });
        continue;
      }
      absl::MutexLock lock(&mu_);
      const absl::Duration wait =
          std::min(sched_->NextWake(LocalNow()) - LocalNow(), absl::Milliseconds(50));
      mu_.AwaitWithTimeout(absl::Condition(&woken_), std::max(wait, absl::ZeroDuration()));
      woken_ = false;
    }
  }

  int expired() const { return expired_; }
  // The current (or last) batch's time.
  absl::Time batch_now() const { return batch_now_; }

 private:
  std::unique_ptr<PgStore> store_;
  MtRandom rng_{7};
  std::unique_ptr<SharedScheduler> sched_;
  absl::Duration skew_ = absl::ZeroDuration();
  int expired_ = 0;
  absl::Time batch_now_ = absl::InfinitePast();
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
};

class SharedSchedulerPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_THAT(cluster, IsOk());
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn, IsOk());
    dsn_ = *dsn;
  }

  // A replica on the test's schema, restored as at start-up.
  std::unique_ptr<Replica> Start(SharedSchedulerOptions options = {},
                                 int64_t max_bytes = 1 << 20) {
    PgStore::Options store_options;
    store_options.single_owner = false;  // Replicas share the schema.
    auto store = PgStore::Open(dsn_, store_options);
    EXPECT_THAT(store, IsOk());
    if (!store.ok()) return nullptr;
    auto r = std::make_unique<Replica>(std::move(*store), &policies_, max_bytes,
                                       std::move(options));
    EXPECT_THAT(r->sched().Restore(r->store(), absl::Now()), IsOk());
    return r;
  }

  std::unique_ptr<pg::Connection> Connect() {
    auto c = pg::Connection::Open(dsn_);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Every scheduled envelope of `service` becomes due an hour ago.
  void MakeDue(const std::string& service) {
    auto db = Connect();
    ASSERT_NE(db, nullptr);
    ASSERT_THAT(db->Exec("UPDATE envelopes SET sort_at = sort_at - 3600000000"
                         " WHERE service = $1 AND state = 1",
                         pg::Params().Text(service)),
                IsOk());
  }

  int64_t Count(const std::string& where) {
    auto db = Connect();
    if (db == nullptr) return -1;
    auto r = db->Exec("SELECT count(*) FROM envelopes WHERE " + where);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->Int(0, 0) : -1;
  }

  std::string dsn_;
  const PolicySet policies_ = TestPolicies();
};

TEST_F(SharedSchedulerPostgresTest, BatchTimeIsTheDatabasesNotTheReplicasClock) {
  auto ahead = Start();
  ASSERT_NE(ahead, nullptr);
  ahead->set_skew(absl::Hours(1));
  const absl::Time before = absl::Now();
  const absl::Time now = ahead->Batch([](absl::Time) {});
  EXPECT_LT(absl::AbsDuration(now - before), absl::Minutes(1)) << "the database's time";
  // Its first failure is due 2 s after the database's now, not the replica's: nothing is due yet,
  // though the replica's clock says an hour has passed.
  ASSERT_THAT(ahead->FirstFailure(NewEnvelope("svc", "m1")), IsOk());
  auto grant = ahead->Lease("svc", 10);
  ASSERT_THAT(grant, IsOk());
  EXPECT_THAT(grant->items, IsEmpty());
  // Nor does its sweep take back a live lease.
  MakeDue("svc");
  grant = ahead->Lease("svc", 10);
  ASSERT_THAT(grant, IsOk());
  ASSERT_THAT(grant->items, SizeIs(1));
  ahead->Batch([](absl::Time) {});
  EXPECT_EQ(ahead->expired(), 0);
  EXPECT_EQ(Count("state = 2"), 1);
}

TEST_F(SharedSchedulerPostgresTest, AnEnvelopeAnotherReplicaIsInsertingIsRefusedNotWaitedFor) {
  auto a = Start();
  auto b = Start();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // A's batch has inserted m1 and not committed when B's batch reports m1 too (a client's retry
  // on another replica). B answers at once, changing nothing; waiting on A's row could deadlock
  // two batches that insert the same envelopes in different orders.
  absl::StatusOr<FailureOutcome> on_b = absl::UnknownError("not run");
  absl::Notification b_done;
  std::thread other;
  a->Batch([&](absl::Time now) {
    ASSERT_THAT(a->InOp([&] {
      return a->sched().FirstFailure(NewEnvelope("svc", "m1"), Transient(), now);
    }),
                IsOk());
    other = std::thread([&] {
      on_b = b->FirstFailure(NewEnvelope("svc", "m1"));
      b_done.Notify();
    });
    // Waiting longer would only hold A's commit, which a blocked B waits for.
    EXPECT_TRUE(b_done.WaitForNotificationWithTimeout(absl::Seconds(5)))
        << "B waited for A's uncommitted insert";
  });
  other.join();
  EXPECT_TRUE(absl::IsUnavailable(on_b.status())) << on_b.status();
  EXPECT_THAT(on_b.status().message(), HasSubstr("svc/m1"));
  // Once A committed, B's retry is a duplicate of A's envelope.
  absl::StatusOr<FailureOutcome> retried = b->FirstFailure(NewEnvelope("svc", "m1"));
  ASSERT_THAT(retried, IsOk());
  EXPECT_TRUE(retried->duplicate);
  EXPECT_EQ(Count("service = 'svc'"), 1);
}

TEST_F(SharedSchedulerPostgresTest, LeaseHandsOutFencedTokensAndOutcomesEndTheLease) {
  auto a = Start();
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_THAT(a->FirstFailure(NewEnvelope("svc", absl::StrCat("m", i))), IsOk());
  MakeDue("svc");
  auto grant = a->Lease("svc", 10);
  ASSERT_THAT(grant, IsOk());
  ASSERT_THAT(grant->items, SizeIs(3));
  for (const LeasedItem& item : grant->items) {
    EXPECT_THAT(item.lease_token, ::testing::StartsWith("L1."));
    EXPECT_EQ(item.envelope.lease_token, item.lease_token);
    EXPECT_EQ(item.envelope.state, EnvelopeState::kLeased);
    EXPECT_EQ(item.envelope.payload, std::string(16, 'p'));
  }
  ASSERT_THAT(grant->lateness, SizeIs(3));
  EXPECT_GE(grant->lateness[0], absl::Minutes(59));
  // A success, a failure and an extension, each once.
  const LeasedItem& ok = grant->items[0];
  const LeasedItem& failed = grant->items[1];
  const LeasedItem& extended = grant->items[2];
  ASSERT_THAT(a->Succeed("svc", ok.lease_token), IsOk());
  EXPECT_THAT(a->Succeed("svc", ok.lease_token),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")));
  EXPECT_THAT(a->Succeed("other", failed.lease_token),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto out = a->LeasedFailure("svc", failed.lease_token);
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(out->envelope.attempt, 2);
  EXPECT_EQ(out->envelope.state, EnvelopeState::kScheduled);
  EXPECT_THAT(a->LeasedFailure("svc", failed.lease_token),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto until = a->Extend(extended.lease_token);
  ASSERT_THAT(until, IsOk());
  EXPECT_GT(*until, extended.lease_expires_at);
  EXPECT_THAT(a->Extend(extended.lease_token, [](const std::string&) { return false; }),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("SERVICE_NOT_ALLOWED")));
  // The ended leases keep no secret.
  EXPECT_EQ(Count("lease_secret_hash <> ''::bytea"), 1);
  EXPECT_EQ(Count("lease_token <> ''"), 0) << "L1 tokens are never stored";
}

TEST_F(SharedSchedulerPostgresTest, ByteCapGivesBackTheClaimsItLeavesOut) {
  auto a = Start({}, /*max_bytes=*/1500);
  ASSERT_NE(a, nullptr);
  for (int i = 0; i < 4; ++i) {
    ASSERT_THAT(a->FirstFailure(NewEnvelope("big", absl::StrCat("m", i), 1000)), IsOk());
  }
  MakeDue("big");
  auto first = a->Lease("big", 10);
  ASSERT_THAT(first, IsOk());
  EXPECT_THAT(first->items, SizeIs(1)) << "one envelope even past the cap, then the cap";
  EXPECT_EQ(Count("service = 'big' AND state = 2"), 1);
  EXPECT_EQ(Count("service = 'big' AND state = 1 AND lease_secret_hash = ''::bytea"), 3);
  std::set<int64_t> ids{first->items[0].envelope.id};
  for (int i = 0; i < 3; ++i) {
    auto next = a->Lease("big", 10);
    ASSERT_THAT(next, IsOk());
    ASSERT_THAT(next->items, SizeIs(1));
    ids.insert(next->items[0].envelope.id);
  }
  EXPECT_THAT(ids, SizeIs(4)) << "the given-back claims are due again at once";
}

TEST_F(SharedSchedulerPostgresTest, ReplicasLeaseEveryDueEnvelopeExactlyOnce) {
  constexpr int kEnvelopes = 90;
  constexpr int kReplicas = 3;
  std::vector<std::unique_ptr<Replica>> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    replicas.push_back(Start());
    ASSERT_NE(replicas.back(), nullptr);
  }
  for (int i = 0; i < kEnvelopes; ++i) {
    ASSERT_THAT(replicas[i % kReplicas]->FirstFailure(NewEnvelope("svc", absl::StrCat("m", i))),
                IsOk());
  }
  MakeDue("svc");
  std::vector<std::vector<int64_t>> leased(kReplicas);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      for (;;) {
        auto grant = replicas[r]->Lease("svc", 4);
        ASSERT_THAT(grant, IsOk());
        if (grant->items.empty()) return;
        for (const LeasedItem& item : grant->items) leased[r].push_back(item.envelope.id);
      }
    });
  }
  for (auto& t : threads) t.join();
  std::set<int64_t> all;
  size_t total = 0;
  for (const auto& ids : leased) {
    total += ids.size();
    all.insert(ids.begin(), ids.end());
  }
  EXPECT_EQ(total, static_cast<size_t>(kEnvelopes)) << "nothing leased twice";
  EXPECT_THAT(all, SizeIs(kEnvelopes));
  EXPECT_EQ(Count("state = 2"), kEnvelopes);
}

TEST_F(SharedSchedulerPostgresTest, ATokenWorksOnAnyReplicaAndAStaleOneOnNone) {
  auto a = Start();
  auto b = Start();
  auto c = Start();
  ASSERT_TRUE(a && b && c);
  ASSERT_THAT(a->FirstFailure(NewEnvelope("svc", "done")), IsOk());
  ASSERT_THAT(a->FirstFailure(NewEnvelope("svc", "late")), IsOk());
  MakeDue("svc");
  auto grant = a->Lease("svc", 1);
  ASSERT_THAT(grant, IsOk());
  ASSERT_THAT(grant->items, SizeIs(1));
  // Leased on A, reported on B.
  EXPECT_THAT(b->Succeed("svc", grant->items[0].lease_token), IsOk());
  for (Replica* r : {a.get(), b.get(), c.get()}) {
    EXPECT_THAT(r->Succeed("svc", grant->items[0].lease_token),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  // A short lease on A expires; B's sweep decides it again, and after its backoff B leases it
  // anew under a new token.
  auto late = a->Lease("svc", 1, absl::Milliseconds(1));
  ASSERT_THAT(late, IsOk());
  ASSERT_THAT(late->items, SizeIs(1));
  const std::string stale = late->items[0].lease_token;
  absl::SleepFor(absl::Milliseconds(300));  // Past the lease and B's sweep interval.
  b->Batch([](absl::Time) {});
  EXPECT_EQ(b->expired(), 1);
  auto row = b->store().Get("svc", "late");
  ASSERT_THAT(row, IsOk());
  ASSERT_TRUE(row->has_value());
  EXPECT_EQ((*row)->state, EnvelopeState::kScheduled);
  EXPECT_EQ((*row)->attempt, 2);
  EXPECT_EQ((*row)->last_error.error_code, "LEASE_EXPIRED");
  for (Replica* r : {a.get(), b.get(), c.get()}) {
    EXPECT_THAT(r->LeasedFailure("svc", stale),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
    EXPECT_THAT(r->Extend(stale),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  }
  MakeDue("svc");
  auto again = b->Lease("svc", 1);
  ASSERT_THAT(again, IsOk());
  ASSERT_THAT(again->items, SizeIs(1));
  EXPECT_EQ(again->items[0].envelope.message_id, "late");
  EXPECT_NE(again->items[0].lease_token, stale);
  EXPECT_THAT(c->Succeed("svc", again->items[0].lease_token), IsOk());
  EXPECT_EQ(a->expired() + c->expired(), 0) << "each expiry decided once";
}

TEST_F(SharedSchedulerPostgresTest, AParkedPollIsWokenWhenAnotherReplicaCommitsDueWork) {
  SharedSchedulerOptions listening;
  listening.dsn = dsn_;
  // Polling alone would take seconds: only the notification can wake it in time.
  SharedSchedulerOptions slow_polls = listening;
  slow_polls.poll_min = absl::Seconds(5);
  slow_polls.poll_max = absl::Seconds(5);
  auto a = Start(listening);
  auto b = Start(slow_polls);
  ASSERT_TRUE(a && b);
  // B's long-poll finds nothing and parks.
  auto none = b->Lease("fast", 1);
  ASSERT_THAT(none, IsOk());
  ASSERT_THAT(none->items, IsEmpty());
  b->Batch([&](absl::Time) {
    b->sched().Park(std::make_unique<TestWaiter>("fast", absl::Now() + absl::Seconds(30)));
  });
  std::atomic<bool> served{false};
  absl::Time served_at;
  std::string served_id;
  std::thread writer([&] {
    b->RunWriter(absl::Now() + absl::Seconds(10),
                 [&](std::unique_ptr<LeaseWaiter> w) -> std::unique_ptr<LeaseWaiter> {
                   absl::StatusOr<LeaseGrant> grant = b->InOp([&] {
                     return b->sched().Lease(w->service(), 1, absl::Seconds(60),
                                             b->batch_now());
                   });
                   if (!grant.ok() || grant->items.empty()) return w;
                   served_at = absl::Now();
                   served_id = grant->items[0].envelope.message_id;
                   served = true;
                   return nullptr;
                 },
                 [&] { return served.load(); });
  });
  absl::SleepFor(absl::Milliseconds(300));  // B is asleep on its 5 s poll.
  const absl::Time committed = absl::Now();
  ASSERT_THAT(a->FirstFailure(NewEnvelope("fast", "m1")), IsOk());  // Due in 50 ms.
  writer.join();
  ASSERT_TRUE(served.load());
  EXPECT_EQ(served_id, "m1");
  EXPECT_LT(served_at - committed, absl::Seconds(2)) << "woken by the notification";
  EXPECT_GE(a->sched().signals_sent(), 1);
}

TEST_F(SharedSchedulerPostgresTest, CountsConvergeAcrossReplicasWithinTheRefresh) {
  SharedSchedulerOptions quick;
  quick.counts_refresh = absl::Milliseconds(100);
  auto a = Start(quick);
  auto b = Start(quick);
  ASSERT_TRUE(a && b);
  for (int i = 0; i < 3; ++i) ASSERT_THAT(a->FirstFailure(NewEnvelope("svc", absl::StrCat("m", i))), IsOk());
  MakeDue("svc");
  auto grant = b->Lease("svc", 1);
  ASSERT_THAT(grant, IsOk());
  ASSERT_THAT(grant->items, SizeIs(1));
  // Each replica's own changes count at once; the other's within the refresh.
  auto latest = [](Replica& r, std::map<std::string, ServiceStats>* seen) {
    for (auto& [name, stats] : r.sched().TakeChangedStats()) (*seen)[name] = stats;
  };
  std::map<std::string, ServiceStats> at_a, at_b;
  latest(*a, &at_a);
  latest(*b, &at_b);
  EXPECT_EQ(at_b["svc"].leased, 1) << "B's own lease counts at once";
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  while (absl::Now() < deadline &&
         !(at_a["svc"].scheduled == 2 && at_a["svc"].leased == 1 &&
           at_b["svc"].scheduled == 2 && at_b["svc"].leased == 1)) {
    absl::SleepFor(absl::Milliseconds(20));
    latest(*a, &at_a);
    latest(*b, &at_b);
  }
  EXPECT_EQ(at_a["svc"].scheduled, 2);
  EXPECT_EQ(at_a["svc"].leased, 1);
  EXPECT_EQ(at_b["svc"].scheduled, 2);
  EXPECT_EQ(at_b["svc"].leased, 1);
}

}  // namespace
}  // namespace retryd
