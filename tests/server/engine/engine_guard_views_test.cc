// Engine::GuardViews and SetCircuitOverride are operator requests: they are answered with the
// real circuits and budgets while worker requests are refused at max_pending_requests, and a
// stopping engine answers UNAVAILABLE instead of an empty set of views (from which a caller would
// make up CLOSED circuits and full budgets). Over a real SQLite store whose log sync the test
// holds, so that worker requests stay pending.
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/test_stores.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/gated_sync_store.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::Duration kWait = absl::Seconds(20);

// What an asynchronous engine call answered, once it did.
template <typename T>
struct Answer {
  absl::Notification done;
  absl::StatusOr<T> value = absl::UnknownError("not answered");
  auto Callback() {
    return [this](absl::StatusOr<T> v) {
      value = std::move(v);
      done.Notify();
    };
  }
};

class EngineGuardViewsTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<testing::StoreLocation> where = testing::NewStoreLocation(GetParam());
    ASSERT_TRUE(where.ok()) << where.status();
    where_ = *where;
    Policy billing;
    billing.name = "billing";
    billing.budget.enabled = true;
    billing.budget.ratio = 0;
    billing.budget.min_retries_per_window = 10;
    absl::StatusOr<PolicySet> policies = PolicySet::Create({billing});
    ASSERT_TRUE(policies.ok()) << policies.status();
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    absl::StatusOr<std::unique_ptr<Store>> sqlite = testing::OpenStore(where_);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<testing::GatedSyncStore>(sqlite_.get());
    EngineOptions options;
    options.max_pending_requests = 2;
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  void TearDown() override {
    if (store_ != nullptr) store_->Release();
    engine_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveStoreLocation(where_);
  }

  absl::StatusOr<CircuitView> ForceOpen() {
    Answer<CircuitView>& a = force_open_;
    AuditRecord audit;
    audit.identity = "test";
    engine_->SetCircuitOverride("billing", CircuitOverride::kForceOpen, audit, a.Callback());
    if (!a.done.WaitForNotificationWithTimeout(kWait)) {
      return absl::DeadlineExceededError("SetCircuitOverride did not answer");
    }
    return a.value;
  }

  // Holds the log's sync and fills the engine's pending-requests limit with two first failures
  // (answered only once the sync is released): the next worker request is refused. Returns the
  // writer's operation count once both are applied.
  int64_t FillThePendingLimit(Answer<Decision>* first, Answer<Decision>* second) {
    const int64_t before = store_->ops();
    store_->Hold();
    engine_->ReportFailure(testing::BillingEnvelope("m1"), testing::TransientFailure(), "", first->Callback());
    engine_->ReportFailure(testing::BillingEnvelope("m2"), testing::TransientFailure(), "", second->Callback());
    EXPECT_TRUE(store_->WaitForOps(before + 2, kWait));
    Answer<Decision>& refused = refused_;
    engine_->ReportFailure(testing::BillingEnvelope("m3"), testing::TransientFailure(), "", refused.Callback());
    EXPECT_TRUE(refused.done.WaitForNotificationWithTimeout(kWait));
    EXPECT_THAT(refused.value.status(),
                StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("overloaded")));
    return store_->ops();
  }

  testing::StoreLocation where_;
  std::unique_ptr<PolicySet> policies_;
  MtRandom rng_;
  std::unique_ptr<Store> sqlite_;  // The store under test (either kind).
  std::unique_ptr<testing::GatedSyncStore> store_;
  std::unique_ptr<Engine> engine_;
  // Answers the engine gives after a failed assertion returned are given during TearDown.
  Answer<Decision> m1_, m2_, refused_;
  Answer<CircuitView> force_open_;
  Answer<std::map<std::string, GuardView>> views_;
  Answer<CircuitView> forced_;
};

INSTANTIATE_TEST_SUITE_P(Stores, EngineGuardViewsTest, testing::AllStoreKinds(),
                         testing::StoreKindName);

TEST_P(EngineGuardViewsTest, ViewsAreAnsweredTrulyWhileWorkerRequestsAreRefusedForLoad) {
  ASSERT_THAT(ForceOpen().status(), IsOk());
  const int64_t ops = FillThePendingLimit(&m1_, &m2_);

  Answer<std::map<std::string, GuardView>>& views = views_;
  engine_->GuardViews(views.Callback());
  // Taken by the writer (not refused), and answered with its batch once the log is synced.
  ASSERT_TRUE(store_->WaitForOps(ops + 1, kWait));
  store_->Release();
  ASSERT_TRUE(views.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(views.value.ok()) << views.value.status();
  ASSERT_EQ(views.value->count("billing"), 1u);
  const GuardView& billing = views.value->at("billing");
  EXPECT_EQ(billing.circuit.state, CircuitState::kOpen);
  EXPECT_EQ(billing.circuit.override_mode, CircuitOverride::kForceOpen);
  // Two retries booked of the 10 the window allows.
  EXPECT_EQ(billing.budget_remaining, 8);
  ASSERT_TRUE(m1_.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(m2_.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(m1_.value.status(), IsOk());
  EXPECT_THAT(m2_.value.status(), IsOk());
}

TEST_P(EngineGuardViewsTest, AnOperatorCanForceACircuitWhileWorkerRequestsAreRefusedForLoad) {
  const int64_t ops = FillThePendingLimit(&m1_, &m2_);
  Answer<CircuitView>& forced = forced_;
  AuditRecord audit;
  audit.identity = "test";
  engine_->SetCircuitOverride("billing", CircuitOverride::kForceOpen, audit, forced.Callback());
  ASSERT_TRUE(store_->WaitForOps(ops + 1, kWait));
  store_->Release();
  ASSERT_TRUE(forced.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(forced.value.ok()) << forced.value.status();
  EXPECT_EQ(forced.value->state, CircuitState::kOpen);
}

TEST_P(EngineGuardViewsTest, AStoppedEngineAnswersUnavailableInsteadOfNoViews) {
  ASSERT_THAT(ForceOpen().status(), IsOk());
  engine_->Stop();
  engine_->GuardViews(views_.Callback());
  ASSERT_TRUE(views_.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(views_.value.status(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("shutting down")));
}

}  // namespace
}  // namespace retryd
