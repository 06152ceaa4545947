// AdminService.ListServices over gRPC (a real server on a free 127.0.0.1 port, a real engine over
// a real SQLite store): while worker requests are refused at the pending-requests limit it shows
// the real circuits and budgets, and once the engine is stopping it answers UNAVAILABLE, never
// every circuit CLOSED with a full budget.
#include "server/rpc/admin_service.h"

#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/auth/authorizer.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/gated_sync_store.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

class AdminServiceTest : public ::testing::Test {
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
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite = SqliteStore::Open(dir_ + "/data");
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<testing::GatedSyncStore>(sqlite_.get());
    EngineOptions options;
    options.max_pending_requests = 2;
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &SystemClock::Get(), &rng_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);

    admin_ = std::make_unique<AdminServiceImpl>(store_.get(), engine_.get(), policies_.get(),
                                                &SystemClock::Get(), &auth_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    stub_ = v1::AdminService::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                                          grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (store_ != nullptr) store_->Release();
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
    engine_.reset();
    admin_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveTree(dir_);
  }

  grpc::Status ListServices(v1::ListServicesResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + 2 * kWait));
    return stub_->ListServices(&ctx, v1::ListServicesRequest(), resp);
  }

  void ForceOpen() {
    auto done = std::make_shared<absl::Notification>();
    AuditRecord audit;
    audit.identity = "test";
    engine_->SetCircuitOverride("billing", CircuitOverride::kForceOpen, audit,
                                [done](absl::StatusOr<CircuitView> v) {
                                  EXPECT_TRUE(v.ok()) << v.status();
                                  done->Notify();
                                });
    ASSERT_TRUE(done->WaitForNotificationWithTimeout(kWait));
  }

  std::string dir_;
  std::unique_ptr<PolicySet> policies_;
  MtRandom rng_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<testing::GatedSyncStore> store_;
  std::unique_ptr<Engine> engine_;
  const Authorizer auth_{TokenTable(), /*certificate_identity=*/false};
  std::unique_ptr<AdminServiceImpl> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

TEST_F(AdminServiceTest, ListServicesShowsTheRealCircuitsAndBudgetsAtThePendingLimit) {
  ForceOpen();
  // Two first failures wait for the held log sync; they fill the pending-requests limit.
  const int64_t before = store_->ops();
  store_->Hold();
  // Shared with the callbacks, which the engine may call after a failed assertion returned.
  struct Answers {
    absl::Notification m1, m2, m3;
    absl::Status refused;
  };
  auto answers = std::make_shared<Answers>();
  engine_->ReportFailure(testing::BillingEnvelope("m1"), testing::TransientFailure(), "", [answers](absl::StatusOr<Decision>) {
    answers->m1.Notify();
  });
  engine_->ReportFailure(testing::BillingEnvelope("m2"), testing::TransientFailure(), "", [answers](absl::StatusOr<Decision>) {
    answers->m2.Notify();
  });
  ASSERT_TRUE(store_->WaitForOps(before + 2, kWait));
  engine_->ReportFailure(testing::BillingEnvelope("m3"), testing::TransientFailure(), "", [answers](absl::StatusOr<Decision> d) {
    answers->refused = d.status();
    answers->m3.Notify();
  });
  ASSERT_TRUE(answers->m3.WaitForNotificationWithTimeout(kWait));
  ASSERT_EQ(answers->refused.code(), absl::StatusCode::kResourceExhausted) << answers->refused;

  v1::ListServicesResponse resp;
  grpc::Status status;
  std::thread call([&] { status = ListServices(&resp); });
  // The overview's engine request is taken by the writer, not refused; it is answered with its
  // batch once the log is synced.
  const bool taken = store_->WaitForOps(before + 3, kWait);
  store_->Release();
  call.join();
  EXPECT_TRUE(taken);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(resp.services_size(), 1);
  const v1::ServiceSummary& billing = resp.services(0);
  EXPECT_EQ(billing.service(), "billing");
  EXPECT_EQ(billing.circuit_state(), v1::OPEN);
  EXPECT_EQ(billing.budget_remaining(), 8);  // Two retries booked of the window's 10.
  EXPECT_EQ(billing.scheduled(), 2);
  ASSERT_TRUE(answers->m1.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(answers->m2.WaitForNotificationWithTimeout(kWait));
}

TEST_F(AdminServiceTest, ListServicesAnswersUnavailableOnceTheEngineStops) {
  ForceOpen();
  v1::ListServicesResponse resp;
  ASSERT_TRUE(ListServices(&resp).ok());
  ASSERT_EQ(resp.services_size(), 1);
  EXPECT_EQ(resp.services(0).circuit_state(), v1::OPEN);

  engine_->Stop();
  resp.Clear();
  grpc::Status status = ListServices(&resp);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("circuits and budgets cannot be read"));
  EXPECT_EQ(resp.services_size(), 0);
}

}  // namespace
}  // namespace retryd
