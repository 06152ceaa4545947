// ReplayRunner::Progress (the source of the retryd_replay_* gauges) is the runner's last scan of
// the store, or that scan's error: before the first scan, and after a failed one, it answers the
// error instead of an empty list or the counts of an older scan. A real engine over a real SQLite
// store; the scan fails through a ForwardingStore.
#include "server/dlq/replay_runner.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/forwarding_store.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

constexpr absl::Duration kWait = absl::Seconds(20);

// Counts the runner's scans of the replays (ListReplaysInStates), and fails them when told.
class ScanCountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  absl::StatusOr<std::vector<ReplayRow>> ListReplaysInStates(
      const std::vector<int>& states) override {
    bool fail;
    {
      absl::MutexLock lock(&mu_);
      fail = fail_;
    }
    absl::StatusOr<std::vector<ReplayRow>> rows =
        fail ? absl::UnavailableError("disk I/O error (injected)")
             : ForwardingStore::ListReplaysInStates(states);
    absl::MutexLock lock(&mu_);
    ++(fail ? failed_ : succeeded_);
    return rows;
  }
  void Fail() {
    absl::MutexLock lock(&mu_);
    fail_ = true;
  }
  // Waits until `n` scans succeeded (or failed) in all.
  bool WaitForScans(int n, bool failed) {
    absl::MutexLock lock(&mu_);
    struct Want {
      const int* count;
      int n;
    } want{failed ? &failed_ : &succeeded_, n};
    return mu_.AwaitWithTimeout(
        absl::Condition(+[](Want* w) { return *w->count >= w->n; }, &want), kWait);
  }

 private:
  absl::Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
  int succeeded_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(ReplayRunnerTest, ProgressIsTheLastScanOrItsErrorNeverAnOlderScan) {
  const std::string dir = testing::MakeTempDir();
  absl::StatusOr<PolicySet> policies = PolicySet::Create({});
  ASSERT_TRUE(policies.ok()) << policies.status();
  auto sqlite = SqliteStore::Open(dir);
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  ScanCountingStore store(sqlite->get());
  MtRandom rng;
  auto engine = Engine::Start(&store, &*policies, &SystemClock::Get(), &rng, EngineOptions());
  ASSERT_TRUE(engine.ok()) << engine.status();
  DlqCounters counters;
  ReplayRunner runner(engine->get(), &store, &*policies, &SystemClock::Get(), &counters);
  EXPECT_THAT(runner.Progress().status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("not read")));

  // One dead letter and a replay of it paced so slowly that it stays RUNNING.
  Envelope e;
  e.service = "billing";
  e.message_id = "d1";
  e.payload = "p";
  Failure f;
  f.error_code = "BAD_SCHEMA";
  f.error_class = ErrorClass::kPermanent;
  auto reported = std::make_shared<absl::Notification>();
  (*engine)->ReportFailure(e, f, "", [reported](absl::StatusOr<Decision>) { reported->Notify(); });
  ASSERT_TRUE(reported->WaitForNotificationWithTimeout(kWait));
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("billing");
  req.set_max_per_second(0.001);
  auto started = std::make_shared<absl::Notification>();
  auto replay = std::make_shared<absl::StatusOr<v1::Replay>>();
  runner.StartReplay(req, AuditRecord(), [started, replay](absl::StatusOr<v1::Replay> r) {
    *replay = std::move(r);
    started->Notify();
  });
  ASSERT_TRUE(started->WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(replay->ok()) << replay->status();

  runner.Start();
  ASSERT_TRUE(store.WaitForScans(2, /*failed=*/false));
  absl::StatusOr<std::vector<ReplayProgress>> progress = runner.Progress();
  ASSERT_TRUE(progress.ok()) << progress.status();
  ASSERT_EQ(progress->size(), 1u);
  EXPECT_EQ((*progress)[0].name, (*replay)->name());
  EXPECT_EQ((*progress)[0].matched, 1);

  store.Fail();
  // After a failed scan has been recorded (the next one began after it).
  ASSERT_TRUE(store.WaitForScans(2, /*failed=*/true));
  EXPECT_THAT(runner.Progress().status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("injected")));

  runner.Stop();
  (*engine)->Stop();
  testing::RemoveTree(dir);
}

}  // namespace
}  // namespace retryd
