// The engine drives whatever scheduler EngineOptions::make_scheduler builds, through the
// Scheduler interface only: it restores it at start-up, gives every transition of a batch the
// time BeginBatch answered (not the engine's own clock: a shared scheduler answers the
// database's), ends every batch it began, and refreshes the guards before its guard requests
// read them. The scheduler here is a real LocalScheduler behind a forwarding one whose batch time
// runs an hour ahead of the engine's clock and that counts the calls the contract is about.
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/local_scheduler.h"
#include "server/core/policy_set.h"
#include "server/core/scheduler.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

const absl::Duration kAhead = absl::Hours(1);

// A LocalScheduler whose batches run `kAhead` of the caller's time, counting the calls.
class AheadScheduler final : public Scheduler {
 public:
  explicit AheadScheduler(const SchedulerContext& context) : local_(context) {}

  absl::Status Restore(Store& store, absl::Time now) override {
    restores++;
    return local_.Restore(store, now);
  }
  absl::StatusOr<absl::Time> BeginBatch(absl::Time local_now) override {
    begun++;
    return local_.BeginBatch(local_now + kAhead);
  }
  absl::Status SaveGuards(absl::Time now) override { return local_.SaveGuards(now); }
  void EndBatch() override {
    ended++;
    local_.EndBatch();
  }
  ServiceGuards& guards() override { return local_.guards(); }
  const ServiceGuards& guards() const override { return local_.guards(); }
  absl::Status RefreshGuards(const std::string& service, absl::Time now) override {
    absl::MutexLock lock(&mu_);
    refreshed_.push_back(service);
    return local_.RefreshGuards(service, now);
  }
  absl::Status RefreshAllGuards(absl::Time now) override {
    refreshed_all++;
    return local_.RefreshAllGuards(now);
  }
  absl::Status AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) override {
    return local_.AdvanceCircuits(now, changed);
  }
  absl::StatusOr<FailureOutcome> FirstFailure(Envelope e, Failure failure,
                                              absl::Time now) override {
    return local_.FirstFailure(std::move(e), std::move(failure), now);
  }
  absl::StatusOr<FailureOutcome> LeasedFailure(const std::string& token,
                                               const std::string& service,
                                               const std::string& message_id, Failure failure,
                                               absl::Time now) override {
    return local_.LeasedFailure(token, service, message_id, std::move(failure), now);
  }
  absl::StatusOr<LeaseGrant> Lease(const std::string& service, int max_messages,
                                   absl::Duration visibility, absl::Time now) override {
    return local_.Lease(service, max_messages, visibility, now);
  }
  absl::StatusOr<Envelope> Succeed(const std::string& service, const std::string& token,
                                   absl::Time now) override {
    return local_.Succeed(service, token, now);
  }
  absl::StatusOr<absl::Time> Extend(const std::string& token, absl::Duration visibility,
                                    const ServiceCheck& may_act_for, absl::Time now) override {
    return local_.Extend(token, visibility, may_act_for, now);
  }
  absl::StatusOr<std::optional<int64_t>> NextExpired(absl::Time now, int max) override {
    return local_.NextExpired(now, max);
  }
  absl::StatusOr<std::optional<FailureOutcome>> ExpireLease(int64_t id, absl::Time now) override {
    return local_.ExpireLease(id, now);
  }
  void Park(std::unique_ptr<LeaseWaiter> waiter) override { local_.Park(std::move(waiter)); }
  void ServeWaiters(absl::Time now, const ServeFunction& serve) override {
    local_.ServeWaiters(now, serve);
  }
  std::vector<std::unique_ptr<LeaseWaiter>> TakeEndedWaiters(absl::Time now, bool all) override {
    return local_.TakeEndedWaiters(now, all);
  }
  // The engine asks these with its own clock's time, before a batch begins: the schedule holds
  // times of the scheduler's, an hour ahead.
  bool WorkDue(absl::Time now) const override { return local_.WorkDue(now + kAhead); }
  absl::Time NextWake(absl::Time now) const override {
    const absl::Time wake = local_.NextWake(now + kAhead);
    return wake == absl::InfiniteFuture() ? wake : wake - kAhead;
  }
  void Requeued(const Envelope& e) override { local_.Requeued(e); }
  void DeadLettersRemoved(const std::string& service, int64_t n) override {
    local_.DeadLettersRemoved(service, n);
  }
  std::vector<std::pair<std::string, ServiceStats>> TakeChangedStats() override {
    return local_.TakeChangedStats();
  }

  std::vector<std::string> refreshed() const {
    absl::MutexLock lock(&mu_);
    return refreshed_;
  }

  std::atomic<int> restores{0};
  std::atomic<int> begun{0};
  std::atomic<int> ended{0};
  std::atomic<int> refreshed_all{0};

 private:
  LocalScheduler local_;
  mutable absl::Mutex mu_;
  std::vector<std::string> refreshed_ ABSL_GUARDED_BY(mu_);
};

class EngineSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    Policy policy;
    policy.backoff = BackoffSpec{absl::Seconds(1), 1.0, absl::Seconds(1), JitterKind::kNone, 0.0};
    policies_ = std::make_unique<PolicySet>(*PolicySet::Create({policy}));
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir_ + "/data");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    EngineOptions options;
    options.make_scheduler = [this](const SchedulerContext& context) {
      context_ = context;
      auto scheduler = std::make_unique<AheadScheduler>(context);
      scheduler_ = scheduler.get();
      return scheduler;
    };
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &clock_, &rng_, std::move(options));
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }
  void TearDown() override {
    engine_.reset();
    store_.reset();
    testing::RemoveTree(dir_);
  }

  absl::StatusOr<Decision> Fail(const std::string& message_id) {
    absl::Notification done;
    absl::StatusOr<Decision> decision;
    engine_->ReportFailure(testing::BillingEnvelope(message_id), testing::TransientFailure(), "",
                           [&](absl::StatusOr<Decision> d) {
                             decision = std::move(d);
                             done.Notify();
                           });
    done.WaitForNotification();
    return decision;
  }

  absl::StatusOr<std::vector<LeasedItem>> Lease() {
    absl::Notification done;
    absl::StatusOr<std::vector<LeasedItem>> items;
    LeaseArgs args;
    args.service = "billing";
    args.max_messages = 10;
    engine_->Lease(std::move(args), [&](absl::StatusOr<std::vector<LeasedItem>> got) {
      items = std::move(got);
      done.Notify();
    });
    done.WaitForNotification();
    return items;
  }

  std::string dir_;
  testing::FakeClock clock_;
  MtRandom rng_{1};
  std::unique_ptr<PolicySet> policies_;
  std::unique_ptr<SqliteStore> store_;
  SchedulerContext context_;
  AheadScheduler* scheduler_ = nullptr;  // Owned by engine_.
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineSchedulerTest, TheSchedulerIsBuiltFromTheEnginesPartsAndRestoredOnce) {
  ASSERT_NE(scheduler_, nullptr);
  EXPECT_EQ(context_.store, store_.get());
  EXPECT_EQ(context_.policies, policies_.get());
  EXPECT_EQ(context_.rng, &rng_);
  EXPECT_EQ(context_.started_at, clock_.Now());
  EXPECT_EQ(context_.max_lease_response_bytes, EngineOptions().max_lease_response_bytes);
  EXPECT_TRUE(context_.circuit_changed != nullptr);
  ASSERT_TRUE(context_.wake_writer != nullptr);
  context_.wake_writer();  // Thread-safe: the writer runs a round and finds nothing to do.
  EXPECT_EQ(scheduler_->restores.load(), 1);
}

TEST_F(EngineSchedulerTest, EveryTransitionOfABatchHasTheTimeBeginBatchAnswered) {
  const absl::Time local = clock_.Now();
  absl::StatusOr<Decision> decision = Fail("m1");
  ASSERT_TRUE(decision.ok()) << decision.status();
  EXPECT_EQ(decision->next_retry_at, local + kAhead + absl::Seconds(1));
  absl::StatusOr<std::optional<Envelope>> row = store_->Get("billing", "m1");
  ASSERT_TRUE(row.ok() && row->has_value()) << row.status();
  EXPECT_EQ((*row)->created_at, local + kAhead);
  // Due by the scheduler's time one second later, whatever the engine's clock says.
  clock_.Advance(absl::Seconds(1));
  absl::StatusOr<std::vector<LeasedItem>> items = Lease();
  ASSERT_TRUE(items.ok()) << items.status();
  ASSERT_EQ(items->size(), 1u);
  EXPECT_EQ((*items)[0].lease_expires_at, local + kAhead + absl::Seconds(1 + 30));
}

TEST_F(EngineSchedulerTest, EveryBatchThatBeganIsEnded) {
  for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(Fail(id).ok());
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(Lease().ok());
  engine_->Stop();  // The writer has run its last batch.
  EXPECT_GE(scheduler_->begun.load(), 4);
  EXPECT_EQ(scheduler_->ended.load(), scheduler_->begun.load());
}

TEST_F(EngineSchedulerTest, GuardRequestsRefreshTheGuardsTheyRead) {
  absl::Notification recorded;
  engine_->RecordOutcomes("billing", 5, 1, [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    recorded.Notify();
  });
  recorded.WaitForNotification();
  absl::Notification overridden;
  AuditRecord audit;
  audit.identity = "operator";
  engine_->SetCircuitOverride("payroll", CircuitOverride::kForceOpen, audit,
                              [&](absl::StatusOr<CircuitView> view) {
                                EXPECT_TRUE(view.ok()) << view.status();
                                overridden.Notify();
                              });
  overridden.WaitForNotification();
  EXPECT_EQ(scheduler_->refreshed(), (std::vector<std::string>{"billing", "payroll"}));
  EXPECT_EQ(scheduler_->refreshed_all.load(), 0);
  absl::Notification viewed;
  engine_->GuardViews([&](absl::StatusOr<std::map<std::string, GuardView>> views) {
    EXPECT_TRUE(views.ok()) << views.status();
    viewed.Notify();
  });
  viewed.WaitForNotification();
  EXPECT_EQ(scheduler_->refreshed_all.load(), 1);
}

}  // namespace
}  // namespace retryd
