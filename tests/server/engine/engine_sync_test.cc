// The engine's durability pipeline over a real SQLite store: a request is answered only after
// the log was fsynced (Store::SyncLog), the writer commits the next batch while the last one is
// being synced, answers keep commit order, and a failed fsync stops the process unanswered.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/forwarding_store.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

// A SqliteStore whose SyncLog waits while the test holds it, or fails when told to.
class GatedSyncStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status SyncLog() override {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    if (fail_) return absl::InternalError("fdatasync: Input/output error (injected)");
    return ForwardingStore::SyncLog();
  }

  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }
  void FailSyncs() {
    absl::MutexLock lock(&mu_);
    fail_ = true;
  }

 private:
  absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
};

class EngineSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    absl::StatusOr<PolicySet> policies = PolicySet::Create({});
    ASSERT_TRUE(policies.ok()) << policies.status();
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite = SqliteStore::Open(dir_ + "/data");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<GatedSyncStore>(sqlite_.get());
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, EngineOptions());
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  void TearDown() override {
    if (store_ != nullptr) store_->Release();
    engine_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveTree(dir_);
  }

  // Reports a first failure of `message_id`; `answered` is notified with the answer's status.
  void Report(const std::string& message_id, absl::Notification* answered, absl::Status* status) {
    engine_->ReportFailure(testing::BillingEnvelope(message_id), testing::TransientFailure(), "",
                           [answered, status](absl::StatusOr<Decision> d) {
                             *status = d.status();
                             answered->Notify();
                           });
  }

  // True once `message_id` is committed (read through the store's reader connection, which sees
  // committed data only).
  bool CommittedWithin(const std::string& message_id, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      absl::StatusOr<std::optional<Envelope>> e = sqlite_->Get("billing", message_id);
      if (e.ok() && e->has_value()) return true;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return false;
  }

  std::string dir_;
  std::unique_ptr<PolicySet> policies_;
  MtRandom rng_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<GatedSyncStore> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineSyncTest, AnswersOnlyOnceTheLogIsSynced) {
  store_->Hold();
  absl::Notification answered;
  absl::Status status;
  Report("m1", &answered, &status);

  ASSERT_TRUE(CommittedWithin("m1", absl::Seconds(10)));
  // Committed, but the fsync has not returned: no answer yet.
  EXPECT_FALSE(answered.WaitForNotificationWithTimeout(absl::Milliseconds(200)));

  store_->Release();
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(EngineSyncTest, RefusesPastMaxPendingRequestsUntilSomeAreAnswered) {
  engine_.reset();
  EngineOptions options;
  options.max_pending_requests = 3;
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  engine_ = *std::move(engine);

  // The disk stalls: three requests are committed and wait for the fsync.
  store_->Hold();
  absl::Notification answered[5];
  absl::Status status[5];
  for (int i = 0; i < 3; ++i) Report(absl::StrCat("m", i), &answered[i], &status[i]);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(CommittedWithin(absl::StrCat("m", i), absl::Seconds(10)));
  // A fourth is refused at once, and nothing of it is written.
  Report("m3", &answered[3], &status[3]);
  ASSERT_TRUE(answered[3].WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsResourceExhausted(status[3])) << status[3];
  EXPECT_NE(status[3].message().find("limits.max_pending_requests"), std::string::npos);
  EXPECT_FALSE(CommittedWithin("m3", absl::Milliseconds(200)));
  // Operator and background work still goes through.
  absl::Notification txn_done;
  engine_->RunInTransaction([](EngineTxn&) { return absl::OkStatus(); },
                            [&txn_done](absl::Status) { txn_done.Notify(); });
  EXPECT_FALSE(answered[0].HasBeenNotified());

  // Once the three are answered there is room again.
  store_->Release();
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(answered[i].WaitForNotificationWithTimeout(absl::Seconds(10)));
    EXPECT_TRUE(status[i].ok()) << status[i];
  }
  ASSERT_TRUE(txn_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  Report("m3", &answered[4], &status[4]);
  ASSERT_TRUE(answered[4].WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(status[4].ok()) << status[4];
}

TEST_F(EngineSyncTest, CommitsTheNextBatchWhileTheLastIsSyncingAndAnswersInCommitOrder) {
  store_->Hold();
  absl::Mutex order_mu;
  std::vector<std::string> order;
  absl::Notification both;
  auto report = [&](const std::string& id) {
    engine_->ReportFailure(testing::BillingEnvelope(id), testing::TransientFailure(), "", [&, id](absl::StatusOr<Decision> d) {
      EXPECT_TRUE(d.ok()) << d.status();
      absl::MutexLock lock(&order_mu);
      order.push_back(id);
      if (order.size() == 2) both.Notify();
    });
  };
  report("first");
  ASSERT_TRUE(CommittedWithin("first", absl::Seconds(10)));
  // The syncer holds "first"; the writer goes on and commits the next batch meanwhile.
  report("second");
  ASSERT_TRUE(CommittedWithin("second", absl::Seconds(10)));
  EXPECT_FALSE(both.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  {
    absl::MutexLock lock(&order_mu);
    EXPECT_TRUE(order.empty());
  }

  store_->Release();
  ASSERT_TRUE(both.WaitForNotificationWithTimeout(absl::Seconds(10)));
  absl::MutexLock lock(&order_mu);
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second"}));
}

TEST_F(EngineSyncTest, DuplicateOfAnUnsyncedFailureWaitsForTheSameSync) {
  // The duplicate is decided from the first report's row before that row is durable, so its
  // answer must wait for the sync too: an answered duplicate = true implies the original is kept.
  store_->Hold();
  absl::Notification first_answered, dup_answered;
  absl::Status first_status, dup_status;
  Report("m1", &first_answered, &first_status);
  ASSERT_TRUE(CommittedWithin("m1", absl::Seconds(10)));
  Report("m1", &dup_answered, &dup_status);
  EXPECT_FALSE(dup_answered.WaitForNotificationWithTimeout(absl::Milliseconds(200)));

  store_->Release();
  ASSERT_TRUE(first_answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(dup_answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(first_status.ok()) << first_status;
  EXPECT_TRUE(dup_status.ok()) << dup_status;
}

TEST_F(EngineSyncTest, StopAnswersEverythingCommittedAfterTheLastSync) {
  absl::Notification answered;
  absl::Status status;
  Report("m1", &answered, &status);
  engine_->Stop();
  EXPECT_TRUE(answered.HasBeenNotified());
  EXPECT_TRUE(status.ok()) << status;
}

using EngineSyncDeathTest = EngineSyncTest;

TEST_F(EngineSyncDeathTest, AFailedSyncStopsTheProcessWithoutAnswering) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        store_->FailSyncs();
        absl::Notification answered;
        absl::Status status;
        Report("m1", &answered, &status);
        // Not answered: the process ends first. (Were it answered, the test would exit 0 here
        // after the wait, which EXPECT_DEATH reports as a failure.)
        answered.WaitForNotificationWithTimeout(absl::Seconds(10));
        if (answered.HasBeenNotified()) std::_Exit(0);
        absl::SleepFor(absl::Seconds(10));
        std::_Exit(0);
      },
      "store_failed");
}

}  // namespace
}  // namespace retryd
