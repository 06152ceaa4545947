// The engine is crash-only on store failures: once a batch began writing, a store failure (an
// op's write, the savepoint around it, lease expiry, a circuit transition, the commit, a sync or a
// checkpoint) ends the process with kStoreFailureExitCode before the batch is answered. Errors
// that change nothing are answered and the engine goes on: a refused BEGIN, a request's own
// error (an unknown lease token).
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/store/store_failure.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/forwarding_store.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

// A SqliteStore that fails the call the test names, once armed.
class FailingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  enum class Call { kNone, kBegin, kInsert, kCommit, kBeginOp, kCheckpoint };

  void Arm(Call call) {
    absl::MutexLock lock(&mu_);
    armed_ = call;
  }

  absl::Status Begin() override {
    if (Fails(Call::kBegin)) return Injected("BEGIN");
    return ForwardingStore::Begin();
  }
  absl::Status Insert(Envelope* e) override {
    if (Fails(Call::kInsert)) return Injected("INSERT");
    return ForwardingStore::Insert(e);
  }
  absl::Status Commit() override {
    if (Fails(Call::kCommit)) return Injected("COMMIT");
    return ForwardingStore::Commit();
  }
  absl::Status BeginOp() override {
    if (Fails(Call::kBeginOp)) return Injected("SAVEPOINT");
    return ForwardingStore::BeginOp();
  }
  absl::StatusOr<LogPages> CheckpointWal() override {
    if (Fails(Call::kCheckpoint)) return Injected("checkpoint");
    return ForwardingStore::CheckpointWal();
  }

 private:
  bool Fails(Call call) {
    absl::MutexLock lock(&mu_);
    if (armed_ != call) return false;
    armed_ = Call::kNone;  // Once.
    return true;
  }
  static absl::Status Injected(const char* what) {
    return MarkStoreFailure(
        absl::UnavailableError(std::string(what) + ": disk I/O error (injected)"));
  }

  absl::Mutex mu_;
  Call armed_ ABSL_GUARDED_BY(mu_) = Call::kNone;
};

class EngineCrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    dir_ = testing::MakeTempDir();
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveTree(dir_);
  }

  // Opens the store and starts the engine (in the death test's child, or in the parent).
  void StartEngine() {
    absl::StatusOr<PolicySet> policies = PolicySet::Create({});
    if (!policies.ok()) std::_Exit(20);
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite = SqliteStore::Open(dir_ + "/data");
    if (!sqlite.ok()) std::_Exit(21);
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<FailingStore>(sqlite_.get());
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, EngineOptions());
    if (!engine.ok()) std::_Exit(22);
    engine_ = *std::move(engine);
  }

  // Reports a first failure and waits for the answer (up to 10 s); its status.
  absl::Status Report(const std::string& message_id) {
    absl::Notification answered;
    absl::Status status = absl::DeadlineExceededError("not answered");
    engine_->ReportFailure(testing::BillingEnvelope(message_id), testing::TransientFailure(), "", [&](absl::StatusOr<Decision> d) {
      status = d.status();
      answered.Notify();
    });
    answered.WaitForNotificationWithTimeout(absl::Seconds(10));
    return answered.HasBeenNotified() ? status : absl::DeadlineExceededError("not answered");
  }

  // In a death test's child: the request must not be answered; the process must end first.
  // (Were it answered, the child would exit 0, which the death test reports as a failure.)
  [[noreturn]] void ReportExpectingTheProcessToEnd(const std::string& message_id) {
    Report(message_id).IgnoreError();  // Any answer means the test failed (exit 0 below).
    std::_Exit(0);
  }

  std::string dir_;
  std::unique_ptr<PolicySet> policies_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<FailingStore> store_;
  MtRandom rng_{1};
  std::unique_ptr<Engine> engine_;
};

using EngineCrashDeathTest = EngineCrashTest;

TEST_F(EngineCrashDeathTest, AFailedWriteInABatchStopsTheProcessUnanswered) {
  EXPECT_EXIT(
      {
        StartEngine();
        store_->Arm(FailingStore::Call::kInsert);
        ReportExpectingTheProcessToEnd("m1");
      },
      ::testing::ExitedWithCode(kStoreFailureExitCode), "store_failed.*apply.*INSERT");
}

TEST_F(EngineCrashDeathTest, AFailedCommitStopsTheProcessUnanswered) {
  EXPECT_EXIT(
      {
        StartEngine();
        store_->Arm(FailingStore::Call::kCommit);
        ReportExpectingTheProcessToEnd("m1");
      },
      ::testing::ExitedWithCode(kStoreFailureExitCode), "store_failed.*commit.*COMMIT");
}

TEST_F(EngineCrashDeathTest, AFailedSavepointStopsTheProcessUnanswered) {
  EXPECT_EXIT(
      {
        StartEngine();
        store_->Arm(FailingStore::Call::kBeginOp);
        ReportExpectingTheProcessToEnd("m1");
      },
      ::testing::ExitedWithCode(kStoreFailureExitCode), "store_failed.*begin_op.*SAVEPOINT");
}

TEST_F(EngineCrashDeathTest, AFailedCheckpointStopsTheProcess) {
  EXPECT_EXIT(
      {
        StartEngine();
        store_->Arm(FailingStore::Call::kCheckpoint);
        if (!Report("m1").ok()) std::_Exit(1);  // A commit for the checkpointer to copy.
        absl::SleepFor(absl::Seconds(10));
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kStoreFailureExitCode), "store_failed.*checkpoint");
}

TEST_F(EngineCrashTest, AFailedBeginIsAnsweredAndTheEngineGoesOn) {
  StartEngine();
  // The start-up batch (housekeeping) has run once a request was answered: the armed BEGIN is
  // the request's, not that batch's.
  ASSERT_TRUE(Report("m0").ok());
  store_->Arm(FailingStore::Call::kBegin);
  const absl::Status refused = Report("m1");
  EXPECT_TRUE(absl::IsUnavailable(refused)) << refused;
  EXPECT_NE(refused.message().find("nothing was changed"), std::string::npos) << refused;
  // Nothing was stored, and the next batch works.
  absl::StatusOr<std::optional<Envelope>> stored = sqlite_->Get("billing", "m1");
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_FALSE(stored->has_value());
  EXPECT_TRUE(Report("m1").ok());
  EXPECT_TRUE(Report("m2").ok());
}

TEST_F(EngineCrashTest, ARequestsOwnErrorIsAnsweredAndTheEngineGoesOn) {
  StartEngine();
  absl::Notification answered;
  absl::Status status;
  engine_->ReportSuccess("billing", "1.0.00000000000000000000000000000000",
                         [&](absl::Status s) {
                           status = s;
                           answered.Notify();
                         });
  ASSERT_TRUE(answered.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsFailedPrecondition(status)) << status;
  EXPECT_FALSE(IsStoreFailure(status));
  EXPECT_TRUE(Report("m1").ok());
}

TEST(StoreFailureTest, TheMarkTravelsWithTheStatus) {
  const absl::Status plain = absl::UnavailableError("x");
  EXPECT_FALSE(IsStoreFailure(plain));
  absl::Status marked = MarkStoreFailure(plain);
  EXPECT_TRUE(IsStoreFailure(marked));
  EXPECT_EQ(marked.code(), absl::StatusCode::kUnavailable);
  absl::StatusOr<int> carried = marked;  // Returned through a StatusOr.
  EXPECT_TRUE(IsStoreFailure(carried.status()));
  EXPECT_FALSE(IsStoreFailure(MarkStoreFailure(absl::OkStatus())));
}

}  // namespace
}  // namespace retryd
