// `retryd migrate --from sqlite:PATH --to postgres:DSN` end to end with the real binary: a store
// seeded through the API on SQLite (retries, dead letters with payloads, a purge, a replay, a
// circuit override, so every table has rows) is copied; retryd started on the PostgreSQL copy
// answers the same through the API; a second run is refused and changes nothing.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kPermanent[] = "INVALID_SCHEMA";

TEST(PostgresMigrateTest, CopiesEverythingAndRefusesToRunTwice) {
  if (SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
  const std::string dir = MakeTempDir();
  auto cluster = PgCluster::Shared();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto dsn = (*cluster)->CreateDatabase();
  ASSERT_TRUE(dsn.ok()) << dsn.status();

  // Seed on SQLite.
  auto sqlite = ServerProcess::Start(dir);
  ASSERT_TRUE(sqlite.ok()) << sqlite.status();
  {
    auto retry = (*sqlite)->RetryStub();
    auto admin = (*sqlite)->AdminStub();
    v1::ReportFailureResponse resp;
    for (int i = 0; i < 20; ++i) {
      v1::ReportFailureRequest req = FirstFailure("billing", "r-" + std::to_string(i));
      req.mutable_envelope()->set_payload("payload-" + std::to_string(i));
      ASSERT_TRUE(retry->ReportFailure(Context().get(), req, &resp).ok());
    }
    for (int i = 0; i < 10; ++i) {
      v1::ReportFailureRequest req = FirstFailure("orders", "d-" + std::to_string(i), kPermanent);
      req.mutable_failure()->set_error_class(v1::PERMANENT);
      req.mutable_envelope()->set_payload(std::string("bin\0ary", 7));
      ASSERT_TRUE(retry->ReportFailure(Context().get(), req, &resp).ok());
    }
    v1::PurgeDeadLettersRequest purge;
    purge.mutable_filter()->set_service("orders");
    purge.mutable_filter()->add_message_ids("d-0");
    purge.set_note("bad deploy");
    v1::PurgeDeadLettersResponse purged;
    ASSERT_TRUE(admin->PurgeDeadLetters(Context().get(), purge, &purged).ok());
    v1::StartReplayRequest replay;
    replay.mutable_filter()->set_service("orders");
    replay.mutable_filter()->add_message_ids("d-1");
    v1::Replay started;
    ASSERT_TRUE(admin->StartReplay(Context().get(), replay, &started).ok());
    v1::SetCircuitOverrideRequest force;
    force.set_service("billing");
    force.set_override(v1::FORCE_OPEN);
    force.set_note("maintenance");
    v1::SetCircuitOverrideResponse forced;
    ASSERT_TRUE(admin->SetCircuitOverride(Context().get(), force, &forced).ok());
  }
  ASSERT_TRUE((*sqlite)->Terminate(absl::Seconds(30)).ok());

  const std::vector<std::string> migrate = {"migrate", "--from", "sqlite:" + dir + "/data",
                                            "--to", "postgres:" + *dsn};
  auto [code, out] = RunRetryd(dir, migrate);
  ASSERT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("envelopes=29"));
  EXPECT_THAT(out, HasSubstr("audit_events=3"));
  EXPECT_THAT(out, HasSubstr("replays=1"));
  EXPECT_THAT(out, HasSubstr("circuits=2"));  // billing (the override) and orders (its windows).

  // Read everything back through the API of retryd on PostgreSQL.
  const std::string pg_dir = MakeTempDir();
  auto pg = ServerProcess::Start(pg_dir, "", {"--store", "postgres", "--postgres-dsn", *dsn});
  ASSERT_TRUE(pg.ok()) << pg.status();
  auto admin = (*pg)->AdminStub();
  for (int i = 0; i < 20; ++i) {
    v1::Envelope e;
    ASSERT_TRUE(GetEnvelope(*admin, "billing", "r-" + std::to_string(i), &e).ok()) << i;
    EXPECT_EQ(e.state(), v1::SCHEDULED);
    EXPECT_EQ(e.payload(), "payload-" + std::to_string(i));
  }
  v1::Envelope purged_one;
  EXPECT_FALSE(GetEnvelope(*admin, "orders", "d-0", &purged_one).ok());
  for (int i = 2; i < 10; ++i) {
    v1::Envelope e;
    ASSERT_TRUE(GetEnvelope(*admin, "orders", "d-" + std::to_string(i), &e).ok()) << i;
    EXPECT_EQ(e.state(), v1::DEAD_LETTERED);
    EXPECT_EQ(e.payload(), std::string("bin\0ary", 7));
    EXPECT_EQ(e.last_error().error_code(), kPermanent);
  }
  EXPECT_EQ(ServiceSummaryOf(*admin, "billing").circuit_state(), v1::OPEN);
  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(admin->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit).ok());
  ASSERT_EQ(audit.events_size(), 3);
  EXPECT_EQ(audit.events(2).method(), "PurgeDeadLetters");
  EXPECT_EQ(audit.events(2).note(), "bad deploy");
  v1::ListReplaysResponse replays;
  ASSERT_TRUE(admin->ListReplays(Context().get(), v1::ListReplaysRequest(), &replays).ok());
  ASSERT_EQ(replays.replays_size(), 1);
  // New rows get new ids after the copied ones.
  v1::ReportFailureResponse resp;
  const grpc::Status reported =
      (*pg)->RetryStub()->ReportFailure(Context().get(), FirstFailure("billing", "new"), &resp);
  ASSERT_TRUE(reported.ok()) << reported.error_message() << (*pg)->log();
  ASSERT_TRUE((*pg)->Terminate(absl::Seconds(30)).ok());

  // Running it again is refused and changes nothing.
  std::tie(code, out) = RunRetryd(dir, migrate);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("not empty"));
  EXPECT_THAT(out, HasSubstr("30 envelopes"));
  RemoveTree(pg_dir);
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
