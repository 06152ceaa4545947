// The engine's disk-full check (EngineOptions::min_free_bytes): while the injected free-space
// source reports less than the reserve, requests that write are refused RESOURCE_EXHAUSTED
// before the batch begins, nothing is stored and the engine keeps running (operator reads are
// still answered); once the source reports enough again, the same request succeeds. Over a real
// SQLite store.
#include <atomic>
#include <map>
#include <memory>
#include <optional>
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
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

constexpr absl::Duration kWait = absl::Seconds(20);
constexpr int64_t kReserve = 1 << 20;

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

class EngineDiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    Policy billing;
    billing.name = "billing";
    absl::StatusOr<PolicySet> policies = PolicySet::Create({billing});
    ASSERT_TRUE(policies.ok()) << policies.status();
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite = SqliteStore::Open(dir_ + "/data");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    store_ = *std::move(sqlite);
    EngineOptions options;
    options.min_free_bytes = kReserve;
    options.free_bytes_where = "/injected";
    options.free_bytes = [this]() -> absl::StatusOr<int64_t> { return free_.load(); };
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  void TearDown() override {
    engine_.reset();
    store_.reset();
    testing::RemoveTree(dir_);
  }

  absl::StatusOr<Decision> ReportFirstFailure(const std::string& message_id) {
    auto a = std::make_shared<Answer<Decision>>();
    // The callback keeps the answer alive, should it come after a timed-out wait.
    engine_->ReportFailure(testing::BillingEnvelope(message_id), testing::TransientFailure(), "",
                           [a](absl::StatusOr<Decision> v) {
                             a->value = std::move(v);
                             a->done.Notify();
                           });
    if (!a->done.WaitForNotificationWithTimeout(kWait)) {
      return absl::DeadlineExceededError("ReportFailure did not answer");
    }
    return a->value;
  }

  std::optional<Envelope> Stored(const std::string& message_id) {
    absl::StatusOr<std::optional<Envelope>> e = store_->Get("billing", message_id);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : std::nullopt;
  }

  std::string dir_;
  std::unique_ptr<PolicySet> policies_;
  MtRandom rng_;
  std::atomic<int64_t> free_{int64_t{1} << 30};
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineDiskFullTest, RefusesWritesWhileTheDiskIsLowAndResumesWhenSpaceReturns) {
  free_ = kReserve - 1;
  absl::StatusOr<Decision> refused = ReportFirstFailure("m1");
  EXPECT_THAT(refused.status(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("disk full: 1048575 bytes free on /injected, below the reserve "
                                 "of 1048576")));
  EXPECT_THAT(refused.status(), StatusIs(absl::StatusCode::kResourceExhausted,
                                         HasSubstr("nothing was changed")));
  EXPECT_FALSE(Stored("m1").has_value());

  // Operator reads are still answered while writes are refused.
  Answer<std::map<std::string, GuardView>> views;
  engine_->GuardViews(views.Callback());
  ASSERT_TRUE(views.done.WaitForNotificationWithTimeout(kWait));
  EXPECT_THAT(views.value.status(), IsOk());

  // Still refused on a second try; the engine did not stop.
  EXPECT_THAT(ReportFirstFailure("m1").status(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_FALSE(Stored("m1").has_value());

  free_ = kReserve;
  absl::StatusOr<Decision> accepted = ReportFirstFailure("m1");
  ASSERT_THAT(accepted.status(), IsOk());
  EXPECT_FALSE(accepted->duplicate);
  EXPECT_TRUE(Stored("m1").has_value());
}

TEST_F(EngineDiskFullTest, AnUnknownFreeSpaceDoesNotRefuse) {
  engine_.reset();
  EngineOptions options;
  options.min_free_bytes = kReserve;
  options.free_bytes = []() -> absl::StatusOr<int64_t> {
    return absl::UnavailableError("statvfs failed");
  };
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  engine_ = *std::move(engine);
  EXPECT_THAT(ReportFirstFailure("m2").status(), IsOk());
  EXPECT_TRUE(Stored("m2").has_value());
}

}  // namespace
}  // namespace retryd
