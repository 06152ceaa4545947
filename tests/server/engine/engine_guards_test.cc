// The guards across a restart: an engine over a real SQLite store in a temp dir, stopped and
// started again on the same data with a fake clock. The circuit's window, its HALF_OPEN trials
// and their outcomes, and the budget's first-attempt window resume exactly; a first failure that
// turns out to be a duplicate gives back everything the budget did for it.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/test_stores.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1700000040);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

BackoffSpec OneSecond() {
  return BackoffSpec{absl::Seconds(1), 1.0, absl::Seconds(1), JitterKind::kNone, 0};
}

// default: a circuit (5 calls, 50 %, open 10 s doubling, 2 trials), no budget.
// budget: a budget of half the first attempts, at least 1 a minute, DEAD_LETTER past it.
// paced: a budget of 1 a minute whatever the first attempts, DEFER past it.
PolicySet Policies() {
  Policy circuit;
  circuit.name = "default";
  circuit.max_attempts = 10;
  circuit.backoff = OneSecond();
  circuit.circuit.enabled = true;
  circuit.circuit.minimum_calls = 5;
  circuit.circuit.open_duration = absl::Seconds(10);
  circuit.circuit.max_open_duration = absl::Seconds(60);
  circuit.circuit.half_open_trials = 2;
  Policy budget;
  budget.name = "budget";
  budget.max_attempts = 10;
  budget.backoff = OneSecond();
  budget.budget.enabled = true;
  budget.budget.ratio = 0.5;
  budget.budget.min_retries_per_window = 1;
  budget.budget.when_exhausted = BudgetExhaustedAction::kDeadLetter;
  Policy paced = budget;
  paced.name = "paced";
  paced.budget.ratio = 0;
  paced.budget.when_exhausted = BudgetExhaustedAction::kDefer;
  absl::StatusOr<PolicySet> set = PolicySet::Create({circuit, budget, paced});
  EXPECT_TRUE(set.ok()) << set.status();
  return *std::move(set);
}

Envelope Env(const std::string& service, const std::string& message_id) {
  Envelope e;
  e.service = service;
  e.message_id = message_id;
  e.payload = "p";
  return e;
}

class EngineGuardsTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<testing::StoreLocation> where = testing::NewStoreLocation(GetParam());
    ASSERT_TRUE(where.ok()) << where.status();
    where_ = *where;
    Start();
  }
  void TearDown() override {
    Stop();
    testing::RemoveStoreLocation(where_);
  }

  void Start() {
    absl::StatusOr<std::unique_ptr<Store>> store = testing::OpenStore(where_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), &policies_, &clock_, &rng_, EngineOptions());
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }
  void Stop() {
    if (engine_ != nullptr) engine_->Stop();
    engine_.reset();
    store_.reset();
  }
  // Stops the engine, closes the store, and starts both again on the same data at `at`.
  void Restart(absl::Time at) {
    Stop();
    clock_.Set(at);
    Start();
  }

  absl::StatusOr<Decision> Report(const std::string& service, const std::string& message_id) {
    absl::StatusOr<Decision> out;
    absl::Notification done;
    engine_->ReportFailure(Env(service, message_id), testing::TransientFailure(), "",
                           [&](absl::StatusOr<Decision> d) {
                             out = std::move(d);
                             done.Notify();
                           });
    done.WaitForNotification();
    return out;
  }
  std::vector<LeasedItem> Lease(const std::string& service, absl::Duration visibility) {
    absl::StatusOr<std::vector<LeasedItem>> out;
    absl::Notification done;
    LeaseArgs args;
    args.service = service;
    args.max_messages = 10;
    args.visibility_timeout = visibility;
    engine_->Lease(args, [&](absl::StatusOr<std::vector<LeasedItem>> items) {
      out = std::move(items);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *std::move(out) : std::vector<LeasedItem>();
  }
  absl::Status Succeed(const std::string& service, const std::string& token) {
    absl::Status out;
    absl::Notification done;
    engine_->ReportSuccess(service, token, [&](absl::Status s) {
      out = s;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  absl::Status RecordOutcomes(const std::string& service, int64_t successes, int64_t failures) {
    absl::Status out;
    absl::Notification done;
    engine_->RecordOutcomes(service, successes, failures, [&](absl::Status s) {
      out = s;
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  std::map<std::string, GuardView> Views() {
    std::map<std::string, GuardView> out;
    absl::Notification done;
    engine_->GuardViews([&](absl::StatusOr<std::map<std::string, GuardView>> views) {
      EXPECT_TRUE(views.ok()) << views.status();
      if (views.ok()) out = *std::move(views);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  // Five TRANSIENT first failures of `service` at At(0): the circuit opens at the fifth.
  void OpenCircuit(const std::string& service) {
    for (int i = 1; i <= 5; ++i) {
      ASSERT_TRUE(Report(service, "m" + std::to_string(i)).ok());
    }
    ASSERT_EQ(engine_->Circuit(service).state, CircuitState::kOpen);
    ASSERT_EQ(engine_->Circuit(service).next_probe_at, At(10));
  }

  testing::StoreLocation where_;
  PolicySet policies_ = Policies();
  testing::FakeClock clock_{kT0};
  MtRandom rng_{7};
  std::unique_ptr<Store> store_;
  std::unique_ptr<Engine> engine_;
};

INSTANTIATE_TEST_SUITE_P(Stores, EngineGuardsTest, testing::AllStoreKinds(),
                         testing::StoreKindName);

TEST_P(EngineGuardsTest, FailureWindowSurvivesARestart) {
  for (int i = 1; i <= 4; ++i) ASSERT_TRUE(Report("orders", "m" + std::to_string(i)).ok());
  EXPECT_EQ(engine_->Circuit("orders").state, CircuitState::kClosed);  // 4 of minimum_calls 5.
  Restart(At(5));
  EXPECT_EQ(engine_->Circuit("orders").failure_rate, 1.0);  // 4 of 4, below minimum_calls.
  ASSERT_TRUE(Report("orders", "m5").ok());
  const CircuitView v = engine_->Circuit("orders");
  EXPECT_EQ(v.state, CircuitState::kOpen);  // The fifth failure, the first after the restart.
  EXPECT_EQ(v.since, At(5));
  EXPECT_EQ(v.failure_rate, 1.0);
}

TEST_P(EngineGuardsTest, HalfOpenTrialsSurviveARestart) {
  OpenCircuit("orders");
  clock_.Set(At(11));
  const std::vector<LeasedItem> trials = Lease("orders", absl::Seconds(30));
  ASSERT_EQ(trials.size(), 2u);  // half_open_trials of the five due.
  EXPECT_EQ(engine_->Circuit("orders").state, CircuitState::kHalfOpen);
  ASSERT_TRUE(Succeed("orders", trials[0].lease_token).ok());

  Restart(At(12));
  EXPECT_EQ(engine_->Circuit("orders").state, CircuitState::kHalfOpen);
  // Both trials are still out: no second set.
  EXPECT_TRUE(Lease("orders", absl::Seconds(30)).empty());
  EXPECT_EQ(engine_->Circuit("orders").state, CircuitState::kHalfOpen);
  // The trial leased before the restart counts, with the one that succeeded before it.
  ASSERT_TRUE(Succeed("orders", trials[1].lease_token).ok());
  EXPECT_EQ(engine_->Circuit("orders").state, CircuitState::kClosed);
  EXPECT_EQ(Lease("orders", absl::Seconds(30)).size(), 3u);
}

TEST_P(EngineGuardsTest, TrialWhoseLeaseExpiredOverARestartReopens) {
  OpenCircuit("orders");
  clock_.Set(At(11));
  ASSERT_EQ(Lease("orders", absl::Seconds(5)).size(), 2u);

  // Back at 20 s: the trials' leases expired while the server was down, which fails them.
  Restart(At(20));
  EXPECT_TRUE(Lease("orders", absl::Seconds(5)).empty());
  const CircuitView v = engine_->Circuit("orders");
  EXPECT_EQ(v.state, CircuitState::kOpen);
  EXPECT_EQ(v.since, At(20));
  EXPECT_EQ(v.next_probe_at, At(40));  // Twice the open duration.
}

TEST_P(EngineGuardsTest, BudgetWindowSurvivesARestart) {
  ASSERT_TRUE(RecordOutcomes("budget", 10, 0).ok());
  EXPECT_EQ(Views().at("budget").budget_remaining, 5);
  Restart(At(5));
  // Ten first attempts seen before the restart: still 5 retries, not the floor of 1.
  EXPECT_EQ(Views().at("budget").budget_remaining, 5);
  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<Decision> d = Report("budget", "m" + std::to_string(i));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->kind, DecisionKind::kScheduled) << i;
  }
  // A minute after the outcomes, they are out of the window.
  Restart(At(61));
  EXPECT_EQ(Views().at("budget").budget_remaining, 0);  // 3 first failures: floor 1, 3 booked.
}

TEST_P(EngineGuardsTest, DuplicateFirstFailureGivesBackItsDeferral) {
  absl::StatusOr<Decision> first = Report("paced", "m1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->next_retry_at, At(1));
  absl::StatusOr<Decision> second = Report("paced", "m2");
  ASSERT_TRUE(second.ok()) << second.status();
  // Deferred past every 60 s window that may hold m1's retry (one of its second 1 to 61):
  // one retry a minute.
  EXPECT_EQ(second->next_retry_at, At(62));
  absl::StatusOr<Decision> again = Report("paced", "m2");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->next_retry_at, At(62));
  // The duplicate was deferred to 123 s (61 one-second slots later) before it was found out;
  // that deferral is given back, and the next one is paced after m2's, not after it.
  absl::StatusOr<Decision> third = Report("paced", "m3");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->next_retry_at, At(123));
}

// A Lease or a circuit read that finds nothing changes nothing: names nobody reported become
// no service of the counts (ListServices, the gauges) nor of the guards' views, and no entry the
// writer keeps; a service a failure made is unaffected.
TEST_P(EngineGuardsTest, LeaseAndCircuitOfUnknownServicesChangeNothing) {
  ASSERT_TRUE(Report("orders", "m1").ok());
  const auto stats = engine_->Stats();
  const auto views = Views();
  ASSERT_TRUE(stats.contains("orders"));
  for (int i = 0; i < 500; ++i) {
    const std::string name = "nobody-" + std::to_string(i);
    EXPECT_TRUE(Lease(name, absl::Seconds(30)).empty());
    EXPECT_EQ(engine_->Circuit(name).state, CircuitState::kClosed);
  }
  const auto after = engine_->Stats();
  EXPECT_EQ(after.size(), stats.size());
  for (const auto& [name, unused] : after) EXPECT_TRUE(stats.contains(name)) << name;
  const auto views_after = Views();
  EXPECT_EQ(views_after.size(), views.size());
  for (const auto& [name, unused] : views_after) EXPECT_EQ(views.count(name), 1u) << name;
  // The service a failure made still leases.
  clock_.Set(At(2));
  EXPECT_EQ(Lease("orders", absl::Seconds(30)).size(), 1u);
}

}  // namespace
}  // namespace retryd
