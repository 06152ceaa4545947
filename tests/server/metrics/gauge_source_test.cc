// MakeGaugeSource when a source fails: a scrape leaves out what it could not read (the oldest
// dead-letter ages when the store read fails; the circuit and budget series when the engine does
// not answer) instead of showing 0 or an earlier scrape's value as current, and counts it in
// retryd_gauge_read_failures_total{source}. A real engine over a real SQLite store; the store
// read fails through a ForwardingStore.
#include "server/metrics/gauge_source.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/forwarding_store.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

// The value of the sample line that starts with `series` (labels in the text format's order),
// or -1 when the scrape has none.
double Sample(const std::string& scrape, absl::string_view series) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (!absl::StartsWith(line, series) || line.size() <= series.size() ||
        line[series.size()] != ' ') {
      continue;
    }
    double v = 0;
    if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
  }
  return -1;
}

// Whether the scrape has any sample line starting with `prefix`.
bool HasSeries(const std::string& scrape, absl::string_view prefix) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (absl::StartsWith(line, prefix)) return true;
  }
  return false;
}

// A SqliteStore whose CountByService fails while the test says so.
class FailingCountsStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  absl::StatusOr<std::vector<ServiceCounts>> CountByService() override {
    {
      absl::MutexLock lock(&mu_);
      if (fail_) return absl::UnavailableError("disk I/O error (injected)");
    }
    return ForwardingStore::CountByService();
  }
  void Fail(bool fail) {
    absl::MutexLock lock(&mu_);
    fail_ = fail;
  }

 private:
  absl::Mutex mu_;
  bool fail_ ABSL_GUARDED_BY(mu_) = false;
};

class GaugeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    Policy billing;
    billing.name = "billing";
    billing.budget.enabled = true;
    billing.budget.ratio = 0;
    billing.budget.min_retries_per_window = 10;
    absl::StatusOr<PolicySet> policies = PolicySet::Create({billing});
    ASSERT_TRUE(policies.ok()) << policies.status();
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite = SqliteStore::Open(dir_);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<FailingCountsStore>(sqlite_.get());
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, EngineOptions());
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
    metrics_.SetGaugeSource(MakeGaugeSource(engine_.get(), store_.get(), policies_.get(),
                                            &SystemClock::Get(), &metrics_));
  }

  void TearDown() override {
    metrics_.SetGaugeSource(nullptr);
    engine_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveTree(dir_);
  }

  void DeadLetter(const std::string& message_id) {
    Envelope e;
    e.service = "billing";
    e.message_id = message_id;
    e.payload = "p";
    Failure f;
    f.error_code = "BAD_SCHEMA";
    f.error_class = ErrorClass::kPermanent;
    absl::Notification done;
    engine_->ReportFailure(e, f, "", [&done](absl::StatusOr<Decision> d) {
      EXPECT_TRUE(d.ok()) << d.status();
      done.Notify();
    });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  }

  std::string dir_;
  std::unique_ptr<PolicySet> policies_;
  MtRandom rng_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<FailingCountsStore> store_;
  std::unique_ptr<Engine> engine_;
  Metrics metrics_{"v"};
};

TEST_F(GaugeSourceTest, AFailedStoreReadLeavesTheOldestAgeOutAndCountsIt) {
  DeadLetter("d1");
  std::string scrape = metrics_.Scrape();
  EXPECT_GE(Sample(scrape, R"(retryd_dead_letter_oldest_age_seconds{service="billing"})"), 0);
  EXPECT_EQ(Sample(scrape, R"(retryd_gauge_read_failures_total{source="store"})"), 0);

  store_->Fail(true);
  scrape = metrics_.Scrape();
  // Unknown for this scrape: no sample, rather than 0 ("no dead letter").
  EXPECT_EQ(Sample(scrape, R"(retryd_dead_letter_oldest_age_seconds{service="billing"})"), -1);
  EXPECT_EQ(Sample(scrape, R"(retryd_gauge_read_failures_total{source="store"})"), 1);
  // What does not come from the store is still there.
  EXPECT_EQ(Sample(scrape, R"(retryd_dead_letters{service="billing"})"), 1);
  EXPECT_EQ(Sample(scrape, R"(retryd_circuit_state{service="billing",state="closed"})"), 1);

  store_->Fail(false);
  scrape = metrics_.Scrape();
  EXPECT_GE(Sample(scrape, R"(retryd_dead_letter_oldest_age_seconds{service="billing"})"), 0);
  EXPECT_EQ(Sample(scrape, R"(retryd_gauge_read_failures_total{source="store"})"), 1);
}

TEST_F(GaugeSourceTest, GuardsTheEngineCannotReportAreLeftOutNotShownStale) {
  absl::Notification forced;
  AuditRecord audit;
  audit.identity = "test";
  engine_->SetCircuitOverride("billing", CircuitOverride::kForceOpen, audit,
                              [&forced](absl::StatusOr<CircuitView> v) {
                                EXPECT_TRUE(v.ok()) << v.status();
                                forced.Notify();
                              });
  ASSERT_TRUE(forced.WaitForNotificationWithTimeout(kWait));
  std::string scrape = metrics_.Scrape();
  EXPECT_EQ(Sample(scrape, R"(retryd_circuit_state{service="billing",state="open"})"), 1);
  EXPECT_EQ(Sample(scrape, R"(retryd_circuit_override{mode="force_open",service="billing"})"), 1);
  EXPECT_EQ(Sample(scrape, R"(retryd_retry_budget_remaining{service="billing"})"), 10);
  EXPECT_EQ(Sample(scrape, R"(retryd_gauge_read_failures_total{source="engine"})"), 0);

  engine_->Stop();
  scrape = metrics_.Scrape();
  EXPECT_FALSE(HasSeries(scrape, "retryd_circuit_state{"));
  EXPECT_FALSE(HasSeries(scrape, "retryd_circuit_override{"));
  EXPECT_FALSE(HasSeries(scrape, "retryd_retry_budget_remaining{"));
  EXPECT_EQ(Sample(scrape, R"(retryd_gauge_read_failures_total{source="engine"})"), 1);
  // The engine's last counts and the store's ages are still true, and still there.
  EXPECT_EQ(Sample(scrape, R"(retryd_dead_letters{service="billing"})"), 0);
}

}  // namespace
}  // namespace retryd
