// Replays and purges run once across replicas (docs/shared-replicas.md, "Replays and purges run
// once"): two replicas in one process, each with its own PgStore, Engine, SharedJobClaims and
// ReplayRunner, over one schema of a real PostgreSQL. Each runner counts what it committed
// (DlqCounters::replayed), so "every dead letter replayed exactly once" is checked as: the
// replicas' counts add up to the dead letters, the replay's own count says the same, and no dead
// letter is left.
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/dlq/purge.h"
#include "server/dlq/replay_runner.h"
#include "server/dlq/shared_job_claims.h"
#include "server/engine/engine.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_job_claims.h"
#include "server/store/pg/pg_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::Duration kWait = absl::Seconds(60);
constexpr int kDead = 300;

// One retryd replica's dead-letter side.
struct Replica {
  std::unique_ptr<PgStore> store;
  MtRandom rng;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<SharedJobClaims> claims;
  DlqCounters counters;
  std::shared_ptr<RunningPurges> purges = std::make_shared<RunningPurges>();
  std::unique_ptr<ReplayRunner> runner;

  int64_t replayed() const { return counters.replayed.load(); }
};

// Waits until `done` holds (polled every 10 ms); false after kWait.
template <typename F>
bool WaitFor(F done) {
  const absl::Time give_up = absl::Now() + kWait;
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

class JobReplicasPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    absl::StatusOr<testing::PgCluster*> cluster = testing::PgCluster::Shared();
    ASSERT_THAT(cluster.status(), IsOk());
    absl::StatusOr<std::string> dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn.status(), IsOk());
    dsn_ = *dsn;
    Policy fast;
    fast.replay.max_per_second = 10000;
    absl::StatusOr<PolicySet> policies = PolicySet::Create({fast});
    ASSERT_THAT(policies.status(), IsOk());
    policies_ = *std::move(policies);
    absl::StatusOr<std::unique_ptr<pg::Connection>> db = pg::Connection::Open(dsn_);
    ASSERT_THAT(db.status(), IsOk());
    db_ = *std::move(db);
  }

  // A replica named `owner` whose claims are taken over after `takeover` without a heartbeat.
  std::unique_ptr<Replica> Open(const std::string& owner, absl::Duration takeover) {
    auto r = std::make_unique<Replica>();
    PgStore::Options store_options;
    store_options.single_owner = false;  // Replicas share the schema.
    absl::StatusOr<std::unique_ptr<PgStore>> store = PgStore::Open(dsn_, store_options);
    EXPECT_THAT(store.status(), IsOk());
    if (!store.ok()) return nullptr;
    r->store = *std::move(store);
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(r->store.get(), &policies_, &SystemClock::Get(), &r->rng, EngineOptions());
    EXPECT_THAT(engine.status(), IsOk());
    if (!engine.ok()) return nullptr;
    r->engine = *std::move(engine);
    SharedJobClaims::Options options;
    options.owner = owner;
    options.takeover_age = takeover;
    options.heartbeat_interval = std::min(takeover / 5, absl::Seconds(2));
    absl::StatusOr<std::unique_ptr<SharedJobClaims>> claims =
        SharedJobClaims::Open(dsn_, r->store.get(), options);
    EXPECT_THAT(claims.status(), IsOk());
    if (!claims.ok()) return nullptr;
    r->claims = *std::move(claims);
    r->runner = std::make_unique<ReplayRunner>(r->engine.get(), r->store.get(), &policies_,
                                               &SystemClock::Get(), &r->counters,
                                               r->claims.get());
    return r;
  }

  // kDead dead letters of service "billing", dead-lettered through `r`.
  void SeedDeadLetters(Replica& r, int n = kDead, const std::string& prefix = "d") {
    std::atomic<int> left(n);
    absl::Notification all;
    for (int i = 0; i < n; ++i) {
      Envelope e;
      e.service = "billing";
      e.message_id = absl::StrCat(prefix, i);
      e.payload = "p";
      Failure f;
      f.error_code = "BAD_SCHEMA";
      f.error_class = ErrorClass::kPermanent;
      r.engine->ReportFailure(e, f, "", [&](absl::StatusOr<Decision> d) {
        EXPECT_THAT(d.status(), IsOk());
        if (--left == 0) all.Notify();
      });
    }
    ASSERT_TRUE(all.WaitForNotificationWithTimeout(kWait));
  }

  v1::Replay StartReplay(Replica& r, double max_per_second) {
    v1::StartReplayRequest req;
    req.mutable_filter()->set_service("billing");
    req.set_max_per_second(max_per_second);
    absl::Notification started;
    absl::StatusOr<v1::Replay> replay;
    r.runner->StartReplay(req, AuditRecord(), [&](absl::StatusOr<v1::Replay> got) {
      replay = std::move(got);
      started.Notify();
    });
    EXPECT_TRUE(started.WaitForNotificationWithTimeout(kWait));
    EXPECT_THAT(replay.status(), IsOk());
    return replay.ok() ? *replay : v1::Replay();
  }

  v1::Replay Get(Replica& r, const v1::Replay& replay) {
    absl::StatusOr<int64_t> id = ParseReplayName("name", replay.name());
    EXPECT_THAT(id.status(), IsOk());
    absl::StatusOr<v1::Replay> got = r.runner->GetReplay(*id);
    EXPECT_THAT(got.status(), IsOk());
    return got.ok() ? *got : v1::Replay();
  }

  // The holder of a job's claim ("" when nobody holds it) and its epoch.
  std::pair<std::string, int64_t> Holder(absl::string_view kind, absl::string_view job_id) {
    absl::StatusOr<pg::Result> r = db_->Exec(
        "SELECT owner, epoch FROM job_claims WHERE kind = $1 AND job_id = $2",
        pg::Params().Text(kind).Text(job_id));
    EXPECT_THAT(r.status(), IsOk());
    if (!r.ok() || r->rows() == 0) return {"", 0};
    return {r->Text(0, 0), r->Int(0, 1)};
  }
  std::string ReplayHolder(const v1::Replay& replay) {
    return Holder(kReplayJob, replay.name().substr(std::string("replays/").size())).first;
  }

  int64_t DeadLetters(Replica& r) {
    EnvelopeFilter all;
    absl::StatusOr<int64_t> n = r.store->CountDeadLetters(all);
    EXPECT_THAT(n.status(), IsOk());
    return n.ok() ? *n : -1;
  }

  absl::StatusOr<int64_t> Purge(Replica& r, const std::string& request_id) {
    AuditRecord audit;
    audit.method = "PurgeDeadLetters";
    audit.request_id = request_id;
    audit.result_code = "OK";
    EnvelopeFilter filter;
    filter.service = "billing";
    absl::Notification done;
    absl::StatusOr<int64_t> purged;
    PurgeInChunks(r.engine.get(), filter, absl::Now() + absl::Microseconds(1), audit,
                  &r.counters, r.purges, r.claims.get(), [&](absl::StatusOr<int64_t> n) {
                    purged = std::move(n);
                    done.Notify();
                  });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
    return purged;
  }

  std::string dsn_;
  PolicySet policies_;
  std::unique_ptr<pg::Connection> db_;
};

TEST_F(JobReplicasPostgresTest, ReplayStartedOnOneReplicaIsRunByItAlone) {
  auto a = Open("replica-a", absl::Seconds(10));
  auto b = Open("replica-b", absl::Seconds(10));
  ASSERT_TRUE(a && b);
  SeedDeadLetters(*a);
  a->runner->Start();
  const v1::Replay replay = StartReplay(*a, 300);
  ASSERT_TRUE(WaitFor([&] { return ReplayHolder(replay) == "replica-a"; }));
  b->runner->Start();
  ASSERT_TRUE(WaitFor([&] { return Get(*b, replay).state() == v1::REPLAY_SUCCEEDED; }));
  EXPECT_EQ(Get(*b, replay).replayed(), kDead);
  EXPECT_EQ(a->replayed(), kDead);
  EXPECT_EQ(b->replayed(), 0) << "b ran a replay a holds";
  EXPECT_EQ(DeadLetters(*a), 0);
  // The holder hands the claim back once the replay ended.
  EXPECT_TRUE(WaitFor([&] { return ReplayHolder(replay).empty(); }));
}

TEST_F(JobReplicasPostgresTest, ReplayIsTakenOverWhenItsHolderDiesAndFinishedOnce) {
  const absl::Duration takeover = absl::Milliseconds(800);
  auto a = Open("replica-a", takeover);
  auto b = Open("replica-b", takeover);
  ASSERT_TRUE(a && b);
  SeedDeadLetters(*a);
  a->runner->Start();
  const v1::Replay replay = StartReplay(*a, 100);
  ASSERT_TRUE(WaitFor([&] { return a->replayed() >= 30; }));
  // a dies: its runner stops without handing its claim back, as a killed process leaves it.
  a->runner->StopWithoutReleaseForTest();
  const int64_t by_a = a->replayed();
  EXPECT_LT(by_a, kDead);
  EXPECT_EQ(ReplayHolder(replay), "replica-a");
  const absl::Time died = absl::Now();
  b->runner->Start();
  ASSERT_TRUE(WaitFor([&] { return Get(*b, replay).state() == v1::REPLAY_SUCCEEDED; }));
  EXPECT_GE(absl::Now() - died, takeover) << "b took a's replay before a's claim went stale";
  EXPECT_EQ(a->replayed(), by_a);
  EXPECT_GT(b->replayed(), 0);
  EXPECT_EQ(a->replayed() + b->replayed(), kDead) << "every dead letter replayed exactly once";
  EXPECT_EQ(Get(*b, replay).replayed(), kDead);
  EXPECT_EQ(DeadLetters(*a), 0);
  EXPECT_TRUE(WaitFor([&] { return ReplayHolder(replay).empty(); }));
}

TEST_F(JobReplicasPostgresTest, HolderThatWasTakenOverCommitsNothingMore) {
  // b takes over at once (a zero takeover age) while a, alive, is still running the replay:
  // a's next batch is fenced out, and a stops running it without an error to anyone.
  auto a = Open("replica-a", absl::Seconds(10));
  auto b = Open("replica-b", absl::ZeroDuration());
  ASSERT_TRUE(a && b);
  SeedDeadLetters(*a);
  a->runner->Start();
  const v1::Replay replay = StartReplay(*a, 100);
  ASSERT_TRUE(WaitFor([&] { return a->replayed() >= 30; }));
  b->runner->Start();
  ASSERT_TRUE(WaitFor([&] { return Get(*b, replay).state() == v1::REPLAY_SUCCEEDED; }));
  EXPECT_GT(b->replayed(), 0);
  EXPECT_EQ(a->replayed() + b->replayed(), kDead) << "every dead letter replayed exactly once";
  EXPECT_EQ(Get(*a, replay).replayed(), kDead);
  EXPECT_EQ(DeadLetters(*a), 0);
}

TEST_F(JobReplicasPostgresTest, CancelOnAnotherReplicaStopsTheHolder) {
  auto a = Open("replica-a", absl::Seconds(10));
  auto b = Open("replica-b", absl::Seconds(10));
  ASSERT_TRUE(a && b);
  SeedDeadLetters(*a);
  a->runner->Start();
  const v1::Replay replay = StartReplay(*a, 20);
  ASSERT_TRUE(WaitFor([&] { return a->replayed() >= 5; }));
  b->runner->Start();
  absl::Notification cancelled;
  absl::StatusOr<v1::Replay> answer;
  b->runner->CancelReplay(*ParseReplayName("name", replay.name()), AuditRecord(),
                          [&](absl::StatusOr<v1::Replay> r) {
                            answer = std::move(r);
                            cancelled.Notify();
                          });
  ASSERT_TRUE(cancelled.WaitForNotificationWithTimeout(kWait));
  ASSERT_THAT(answer.status(), IsOk());
  EXPECT_EQ(answer->state(), v1::REPLAY_CANCELLED);
  // a sees the cancel at its next step and hands the claim back: it runs the replay no more.
  ASSERT_TRUE(WaitFor([&] { return ReplayHolder(replay).empty(); }));
  const v1::Replay after = Get(*a, replay);
  EXPECT_EQ(after.state(), v1::REPLAY_CANCELLED);
  EXPECT_LT(after.replayed(), kDead);
  EXPECT_EQ(a->replayed(), after.replayed());
  EXPECT_EQ(b->replayed(), 0);
  EXPECT_EQ(DeadLetters(*a), kDead - after.replayed());
}

TEST_F(JobReplicasPostgresTest, RetriedPurgeOnAnotherReplicaNeverAnswersAPartialCount) {
  const absl::Duration takeover = absl::Milliseconds(500);
  auto a = Open("replica-a", takeover);
  auto b = Open("replica-b", takeover);
  ASSERT_TRUE(a && b);
  constexpr int kMany = 2500;  // Three chunks.
  SeedDeadLetters(*a, kMany);
  // A purge run to its end on a: a retry on b answers its final count and deletes nothing more.
  absl::StatusOr<int64_t> first = Purge(*a, "purge-1");
  ASSERT_THAT(first.status(), IsOk());
  EXPECT_EQ(*first, kMany);
  EXPECT_EQ(Holder(kPurgeJob, "purge-1").first, "");
  SeedDeadLetters(*a, 10, "late");
  absl::StatusOr<int64_t> again = Purge(*b, "purge-1");
  ASSERT_THAT(again.status(), IsOk());
  EXPECT_EQ(*again, kMany);
  EXPECT_EQ(DeadLetters(*a), 10) << "dead-lettered after the purge: not its to delete";

  // A purge whose replica died after its first chunk: its audit record says 4 and its claim is
  // still fresh. A retry on b while the claim is fresh is refused (never the partial 4); once it
  // went stale, b finishes the purge and answers the whole count.
  SeedDeadLetters(*a, 20, "more");
  absl::Notification recorded;
  a->engine->RunInTransaction(
      [](EngineTxn& txn) -> absl::Status {
        AuditRecord audit;
        audit.method = "PurgeDeadLetters";
        audit.request_id = "purge-2";
        audit.result_code = "OK";
        audit.time = txn.now();
        audit.affected_count = 4;
        return txn.store().AppendAudit(&audit);
      },
      [&](absl::Status s) {
        EXPECT_THAT(s, IsOk());
        recorded.Notify();
      });
  ASSERT_TRUE(recorded.WaitForNotificationWithTimeout(kWait));
  absl::StatusOr<std::optional<int64_t>> dead_holder =
      pg::ClaimJob(*db_, kPurgeJob, "purge-2", "replica-dead", takeover);
  ASSERT_THAT(dead_holder.status(), IsOk());
  ASSERT_TRUE(dead_holder->has_value());
  EXPECT_THAT(Purge(*b, "purge-2").status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("PURGE_IN_PROGRESS")));
  EXPECT_EQ(DeadLetters(*a), 30) << "a refused retry deletes nothing";
  absl::SleepFor(takeover + absl::Milliseconds(100));
  absl::StatusOr<int64_t> finished = Purge(*b, "purge-2");
  ASSERT_THAT(finished.status(), IsOk());
  EXPECT_EQ(*finished, 4 + 30);
  EXPECT_EQ(DeadLetters(*a), 0);
  EXPECT_EQ(Holder(kPurgeJob, "purge-2").first, "") << "released with the final count";
}

}  // namespace
}  // namespace retryd
