// Two real retryd processes on one PostgreSQL database: until the engine runs the shared paths
// (docs/shared-replicas.md), one owns the database and the other waits as a warm standby
// (server/store/pg/pg_store_owner.h). The standby does not serve while the owner lives; once the
// owner is killed with -9 it takes over and serves everything the owner acknowledged, including
// the owner's leases in flight, whose tokens it honours.
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

class PgStandbyPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    args_ = {"--store", "postgres", "--postgres-dsn", *dsn};
    dirs_[0] = MakeTempDir();
    dirs_[1] = MakeTempDir();
  }
  void TearDown() override {
    for (const std::string& d : dirs_) {
      if (!d.empty()) RemoveTree(d);
    }
  }

  std::vector<std::string> args_;
  std::string dirs_[2];
};

TEST_F(PgStandbyPostgresTest, StandbyServesNothingUntilTheOwnerDiesThenEverythingAcknowledged) {
  auto owner = ServerProcess::Start(dirs_[0], kFastPolicyConfig, args_);
  ASSERT_TRUE(owner.ok()) << owner.status();
  auto owner_stub = (*owner)->RetryStub();
  constexpr int kEnvelopes = 40;
  for (int i = 0; i < kEnvelopes; ++i) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*owner_stub, FirstFailure("orders", absl::StrCat("o-", i)), &resp).ok());
  }
  // Leases in flight on the owner when it dies.
  const v1::LeaseResponse in_flight =
      LeaseUntil(*owner_stub, "orders", 5, absl::Seconds(10), absl::Seconds(60));
  ASSERT_EQ(in_flight.envelopes_size(), 5);

  std::unique_ptr<ServerProcess> standby;
  absl::Notification serving;
  std::thread starter([&] {
    auto s = ServerProcess::Start(dirs_[1], kFastPolicyConfig, args_);
    ASSERT_TRUE(s.ok()) << s.status();
    standby = *std::move(s);
    serving.Notify();
  });
  // The standby does not serve while the owner lives.
  EXPECT_FALSE(serving.WaitForNotificationWithTimeout(absl::Seconds(3)));
  // It answers health checks meanwhile: alive ("" SERVING), not ready (the services NOT_SERVING),
  // so that a liveness probe leaves it alone and a readiness probe keeps traffic away.
  const std::string standby_log = ReadFile(dirs_[1] + "/retryd.log");
  ASSERT_THAT(standby_log, HasSubstr("\"standby_health_listening\""));
  const size_t at = standby_log.find("\"grpc_port\":", standby_log.find("standby_health_listening"));
  ASSERT_NE(at, std::string::npos);
  const int standby_port = std::atoi(standby_log.c_str() + at + 12);
  // HealthCheckRequest{service} (field 1) → HealthCheckResponse{status} (1 SERVING, 2 NOT_SERVING).
  for (const auto& [service, want] : std::vector<std::pair<std::string, std::string>>{
           {"", std::string("\x08\x01", 2)},
           {"retryd.v1.RetryService", std::string("\x08\x02", 2)}}) {
    std::string request;
    if (!service.empty()) request = std::string("\x0a", 1) + char(service.size()) + service;
    std::string response;
    grpc::Status st = RawUnaryCall(absl::StrCat("127.0.0.1:", standby_port),
                                   "/grpc.health.v1.Health/Check", request, &response);
    ASSERT_TRUE(st.ok()) << service << ": " << st.error_message();
    EXPECT_EQ(response, want) << "health of \"" << service << "\"";
  }
  v1::ReportFailureResponse resp;
  EXPECT_TRUE(Report(*owner_stub, FirstFailure("orders", "late"), &resp).ok());

  const absl::Time killed_at = absl::Now();
  (*owner)->Kill();
  EXPECT_TRUE(serving.WaitForNotificationWithTimeout(absl::Seconds(15)));
  starter.join();
  ASSERT_NE(standby, nullptr);
  const absl::Duration takeover = absl::Now() - killed_at;
  std::printf("{\"takeover_seconds\": %.3f}\n", absl::ToDoubleSeconds(takeover));
  EXPECT_THAT(standby->log(), HasSubstr("\"store_standby\""));
  EXPECT_THAT(standby->log(), HasSubstr("\"store_owned\""));

  // Everything the owner acknowledged is there.
  auto admin = standby->AdminStub();
  for (int i = 0; i < kEnvelopes; ++i) {
    v1::Envelope e;
    EXPECT_TRUE(GetEnvelope(*admin, "orders", absl::StrCat("o-", i), &e).ok()) << i;
  }
  v1::Envelope late;
  EXPECT_TRUE(GetEnvelope(*admin, "orders", "late", &late).ok());
  const v1::ServiceSummary summary = ServiceSummaryOf(*admin, "orders");
  EXPECT_EQ(summary.scheduled() + summary.leased(), kEnvelopes + 1);
  EXPECT_EQ(summary.leased(), 5);
  // The leases the owner granted are still good on the new owner.
  auto stub = standby->RetryStub();
  for (const auto& leased : in_flight.envelopes()) {
    EXPECT_TRUE(Succeed(*stub, leased).ok()) << leased.envelope().message_id();
  }
  // And the rest is leased from the new owner.
  const v1::LeaseResponse rest =
      LeaseUntil(*stub, "orders", kEnvelopes + 1 - 5, absl::Seconds(15));
  EXPECT_EQ(rest.envelopes_size(), kEnvelopes + 1 - 5);
}

}  // namespace
}  // namespace retryd::testing
