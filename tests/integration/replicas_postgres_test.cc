// Several real retryd processes on one PostgreSQL database (tests/testing/replica_set.h) act as
// one retryd: workers spread over the replicas process every envelope exactly once while leases
// hold; a replica killed with -9 mid-load loses nothing acknowledged and its leases are
// re-delivered by the others; a replay keeps running when the replica running it dies; every
// replica shows the same counts. Each test bounds its own run time (well under a minute).
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/replica_set.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

constexpr char kConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 5,
     "backoff": {"initial": "0.1s", "multiplier": 1, "max": "0.1s", "jitter": "NONE"}}
  ]
})json";

class ReplicasPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
  }

  void StartReplicas(int n) {
    auto set = ReplicaSet::Start(n, dsn_, kConfig);
    ASSERT_TRUE(set.ok()) << set.status();
    replicas_ = std::move(*set);
  }

  // First failures of `ids` sent round-robin over `to` (empty: the running replicas) from 4
  // threads; answers the ids whose submission was acknowledged (OK).
  std::set<std::string> Submit(const std::string& service, const std::vector<std::string>& ids,
                               std::vector<int> to = {}) {
    absl::Mutex mu;
    std::set<std::string> acked;
    std::vector<std::thread> threads;
    const std::vector<int> running = to.empty() ? replicas_->Running() : to;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::unique_ptr<v1::RetryService::Stub>> stubs;
        for (int r : running) stubs.push_back(replicas_->replica(r).RetryStub());
        for (size_t i = t; i < ids.size(); i += 4) {
          v1::ReportFailureResponse resp;
          if (Report(*stubs[i % stubs.size()], FirstFailure(service, ids[i]), &resp).ok()) {
            absl::MutexLock l(&mu);
            acked.insert(ids[i]);
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    return acked;
  }

  static std::vector<std::string> Ids(const std::string& prefix, int n) {
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i) out.push_back(absl::StrCat(prefix, i));
    return out;
  }

  std::string dsn_;
  std::unique_ptr<ReplicaSet> replicas_;
};

TEST_F(ReplicasPostgresTest, WorkersSpreadOverReplicasProcessEveryEnvelopeOnce) {
  StartReplicas(3);
  constexpr int kEnvelopes = 300;
  // Every failure reaches replica 0; the workers of all three replicas share the retries.
  const std::set<std::string> acked = Submit("orders", Ids("o-", kEnvelopes), {0});
  ASSERT_EQ(acked.size(), static_cast<size_t>(kEnvelopes));
  // Two workers per replica, each leasing from its replica and reporting success.
  absl::Mutex mu;
  std::map<std::string, int> leased;  // message_id → times leased
  std::vector<int> per_replica(3, 0);
  std::vector<std::thread> workers;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  for (int w = 0; w < 6; ++w) {
    workers.emplace_back([&, w] {
      auto stub = replicas_->replica(w % 3).RetryStub();
      while (absl::Now() < deadline) {
        {
          absl::MutexLock l(&mu);
          if (static_cast<int>(leased.size()) == kEnvelopes) return;
        }
        v1::LeaseResponse resp;
        if (!LeaseSome(*stub, "orders", 10, absl::Milliseconds(500), &resp).ok()) continue;
        for (const auto& e : resp.envelopes()) {
          {
            absl::MutexLock l(&mu);
            leased[e.envelope().message_id()]++;
            per_replica[w % 3]++;
          }
          EXPECT_TRUE(Succeed(*stub, e).ok()) << e.envelope().message_id();
        }
      }
    });
  }
  for (auto& t : workers) t.join();
  EXPECT_EQ(leased.size(), static_cast<size_t>(kEnvelopes)) << replicas_->Logs();
  for (const auto& [id, times] : leased) EXPECT_EQ(times, 1) << id << " leased twice";
  for (int r = 0; r < 3; ++r) EXPECT_GT(per_replica[r], 0) << "replica " << r << " leased none";
  // Every replica shows the same numbers: each re-reads the database's counts every second
  // (SharedSchedulerOptions::counts_refresh), so they agree within a few seconds.
  for (int r = 0; r < 3; ++r) {
    auto admin = replicas_->replica(r).AdminStub();
    v1::ServiceSummary s = ServiceSummaryOf(*admin, "orders");
    const absl::Time settled_by = absl::Now() + absl::Seconds(5);
    while ((s.scheduled() != 0 || s.leased() != 0) && absl::Now() < settled_by) {
      absl::SleepFor(absl::Milliseconds(100));
      s = ServiceSummaryOf(*admin, "orders");
    }
    EXPECT_EQ(s.scheduled(), 0) << "replica " << r;
    EXPECT_EQ(s.leased(), 0) << "replica " << r;
  }
}

TEST_F(ReplicasPostgresTest, KilledReplicaLosesNothingAcknowledgedAndItsLeasesComeBack) {
  StartReplicas(3);
  const std::set<std::string> before = Submit("pay", Ids("p-", 150));
  ASSERT_EQ(before.size(), 150u);
  // A worker on replica 0 takes leases (2 s visibility) and never reports: in flight when the
  // replica dies.
  auto stub0 = replicas_->replica(0).RetryStub();
  const v1::LeaseResponse held = LeaseUntil(*stub0, "pay", 40, absl::Seconds(5), absl::Seconds(2));
  ASSERT_GT(held.envelopes_size(), 0);
  // More submissions keep arriving on every replica while replica 0 is killed.
  std::set<std::string> during;
  std::thread load([&] { during = Submit("pay", Ids("q-", 300)); });
  absl::SleepFor(absl::Milliseconds(200));
  replicas_->Kill(0);
  load.join();
  std::set<std::string> acked = before;
  acked.insert(during.begin(), during.end());
  // The survivors deliver everything acknowledged, the dead replica's leases after they expire.
  std::set<std::string> done;
  const absl::Time deadline = absl::Now() + absl::Seconds(40);
  std::vector<std::unique_ptr<v1::RetryService::Stub>> stubs;
  for (int r : replicas_->Running()) stubs.push_back(replicas_->replica(r).RetryStub());
  size_t turn = 0;
  while (absl::Now() < deadline && done.size() < acked.size()) {
    auto& stub = *stubs[turn++ % stubs.size()];
    v1::LeaseResponse resp;
    if (!LeaseSome(stub, "pay", 50, absl::Milliseconds(500), &resp).ok()) continue;
    for (const auto& e : resp.envelopes()) {
      if (Succeed(stub, e).ok()) done.insert(e.envelope().message_id());
    }
  }
  for (const std::string& id : acked) EXPECT_TRUE(done.count(id)) << id << " lost";
  // The held leases were re-delivered by the others.
  for (const auto& e : held.envelopes()) EXPECT_TRUE(done.count(e.envelope().message_id()));
  // Their old tokens are stale on every replica.
  for (auto& stub : stubs) {
    EXPECT_EQ(Succeed(*stub, held.envelopes(0)).error_code(), grpc::FAILED_PRECONDITION);
  }
}

TEST_F(ReplicasPostgresTest, ReplayKeepsRunningWhenItsReplicaDies) {
  StartReplicas(2);
  constexpr int kDead = 150;
  {
    auto stub = replicas_->replica(1).RetryStub();
    for (int i = 0; i < kDead; ++i) {
      v1::ReportFailureRequest req = FirstFailure("rep", absl::StrCat("d-", i), "BAD");
      req.mutable_failure()->set_error_class(v1::PERMANENT);
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(Report(*stub, req, &resp).ok());
    }
  }
  auto admin0 = replicas_->replica(0).AdminStub();
  auto admin1 = replicas_->replica(1).AdminStub();
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("rep");
  req.set_max_per_second(30);
  v1::Replay started;
  ASSERT_TRUE(admin0->StartReplay(Context().get(), req, &started).ok());
  auto get = [&](v1::AdminService::Stub& admin) {
    v1::GetReplayRequest g;
    g.set_name(started.name());
    v1::Replay r;
    EXPECT_TRUE(admin.GetReplay(Context().get(), g, &r).ok());
    return r;
  };
  const absl::Time first_deadline = absl::Now() + absl::Seconds(10);
  while (get(*admin1).replayed() < 30 && absl::Now() < first_deadline) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  replicas_->Kill(0);
  v1::Replay r = get(*admin1);
  ASSERT_LT(r.replayed(), kDead) << "the replay was still running when its replica died";
  const absl::Time deadline = absl::Now() + absl::Seconds(40);
  while (r.state() != v1::REPLAY_SUCCEEDED && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    r = get(*admin1);
  }
  EXPECT_EQ(r.state(), v1::REPLAY_SUCCEEDED) << replicas_->Logs();
  EXPECT_EQ(r.replayed(), kDead) << "every dead letter replayed exactly once";
  const v1::ServiceSummary s = ServiceSummaryOf(*admin1, "rep");
  EXPECT_EQ(s.dead(), 0);
  EXPECT_EQ(s.scheduled() + s.leased(), kDead);
}

}  // namespace
}  // namespace retryd::testing
