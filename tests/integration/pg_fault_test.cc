// retryd on PostgreSQL when PostgreSQL fails: the server killed with -9 mid-load stops retryd
// with exit code 74 (the crash-only path of server/store/store_failure.h), and after both restart
// every acknowledged envelope is there; a server that refuses the connection at start-up is a
// clear error; the DSN's password appears in no log line.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/engine/engine.h"
#include "server/store/pg/pg_conn.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class PostgresFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    dir_ = MakeTempDir();
  }
  void TearDown() override {
    if (!dir_.empty()) RemoveTree(dir_);
  }
  std::string dir_;
};

TEST_F(PostgresFaultTest, ServerKilledMidLoadStopsRetrydAndLosesNothingAcknowledged) {
  // A cluster of this test's own: it is killed.
  auto cluster = PgCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto dsn = (*cluster)->CreateDatabase();
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  auto server = ServerProcess::Start(dir_, "", {"--store", "postgres", "--postgres-dsn", *dsn});
  ASSERT_TRUE(server.ok()) << server.status();

  constexpr int kClients = 16;
  std::vector<std::vector<std::string>> acked(kClients);
  std::atomic<int64_t> total_acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  const std::string address = (*server)->address();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::RetryService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (int n = 0; !stop; ++n) {
        const std::string id = "c" + std::to_string(c) + "-" + std::to_string(n);
        v1::ReportFailureResponse resp;
        grpc::Status s = stub->ReportFailure(Context(absl::Seconds(5)).get(),
                                             FirstFailure("pgfault", id), &resp);
        if (!s.ok()) return;  // The server is gone.
        acked[c].push_back(id);
        ++total_acked;
      }
    });
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (total_acked < 1000 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  (*cluster)->Kill();
  // Clients stop at their first error. A batch under way when the connection goes fails midway:
  // retryd stops itself with 74. When the loss is found by the next batch's BEGIN instead,
  // nothing was written and retryd answers UNAVAILABLE and stays up (it reconnects later).
  for (auto& t : clients) t.join();
  stop = true;
  absl::StatusOr<int> code = (*server)->WaitForExit(absl::Seconds(5));
  if (code.ok()) {
    EXPECT_EQ(*code, kStoreFailureExitCode) << (*server)->log();
    std::printf("pg fault test: retryd exited %d\n", *code);
  } else {
    EXPECT_THAT((*server)->log(), HasSubstr("store_begin_failed"));
    std::printf("pg fault test: retryd stayed up, answering UNAVAILABLE\n");
  }
  ASSERT_GT(total_acked.load(), 0);

  ASSERT_TRUE((*cluster)->Restart().ok());
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->log();
  auto admin = (*server)->AdminStub();
  int64_t missing = 0;
  for (const auto& ids : acked) {
    for (const std::string& id : ids) {
      v1::Envelope e;
      grpc::Status s = GetEnvelope(*admin, "pgfault", id, &e);
      if (!s.ok() || e.state() != v1::SCHEDULED || e.attempt() != 1) {
        ++missing;
        ADD_FAILURE() << "acknowledged envelope " << id << " lost: " << s.error_message();
      }
    }
  }
  const int64_t stored = ServiceSummaryOf(*admin, "pgfault").scheduled();
  std::printf("pg fault test: acknowledged=%lld missing=%lld stored=%lld\n",
              static_cast<long long>(total_acked.load()), static_cast<long long>(missing),
              static_cast<long long>(stored));
  EXPECT_EQ(missing, 0);
  EXPECT_GE(stored, total_acked.load());
}

// The connection lost in the middle of a batch (the session ends itself from a trigger while the
// batch inserts a given message): retryd stops with 74 before answering, and after a restart
// what was acknowledged before is there and the lost batch's request can be sent again.
TEST_F(PostgresFaultTest, ConnectionLostMidBatchStopsRetrydWith74) {
  auto cluster = PgCluster::Shared();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto dsn = (*cluster)->CreateDatabase();
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  auto server = ServerProcess::Start(dir_, "", {"--store", "postgres", "--postgres-dsn", *dsn});
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(retry->ReportFailure(Context().get(), FirstFailure("svc", "acked"), &resp).ok());

  auto conn = pg::Connection::Open(*dsn);
  ASSERT_TRUE(conn.ok()) << conn.status();
  ASSERT_TRUE((*conn)->ExecScript(R"sql(
      CREATE FUNCTION end_session() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$;
      CREATE TRIGGER end_session BEFORE INSERT ON envelopes FOR EACH ROW
        WHEN (NEW.message_id = 'lost') EXECUTE FUNCTION end_session();
  )sql").ok());
  grpc::Status lost = retry->ReportFailure(Context().get(), FirstFailure("svc", "lost"), &resp);
  EXPECT_FALSE(lost.ok());
  absl::StatusOr<int> code = (*server)->WaitForExit(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, kStoreFailureExitCode) << (*server)->log();
  EXPECT_THAT((*server)->log(), HasSubstr("SQLSTATE"));

  ASSERT_TRUE((*conn)->ExecScript("DROP TRIGGER end_session ON envelopes").ok());
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->log();
  auto admin = (*server)->AdminStub();
  v1::Envelope e;
  EXPECT_TRUE(GetEnvelope(*admin, "svc", "acked", &e).ok());
  retry = (*server)->RetryStub();
  EXPECT_TRUE(retry->ReportFailure(Context().get(), FirstFailure("svc", "lost"), &resp).ok());
  EXPECT_FALSE(resp.decision().duplicate());
}

// PostgreSQL restarting between batches (a restart, a failover) costs no retryd restart: the
// next batch's BEGIN opens a new connection.
TEST_F(PostgresFaultTest, RetrydResumesByItselfWhenPostgresComesBack) {
  auto cluster = PgCluster::Start();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto dsn = (*cluster)->CreateDatabase();
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  auto server = ServerProcess::Start(dir_, "", {"--store", "postgres", "--postgres-dsn", *dsn});
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(retry->ReportFailure(Context().get(), FirstFailure("svc", "before"), &resp).ok());
  (*cluster)->Kill();
  ASSERT_TRUE((*cluster)->Restart().ok());
  // The first call after the restart may still meet the old connection's end.
  grpc::Status s;
  for (int i = 0; i < 3; ++i) {
    s = retry->ReportFailure(Context().get(), FirstFailure("svc", "after"), &resp);
    if (s.ok()) break;
  }
  EXPECT_TRUE(s.ok()) << s.error_message() << "\n" << (*server)->log();
  EXPECT_TRUE((*server)->running());
  auto admin = (*server)->AdminStub();
  for (const char* id : {"before", "after"}) {
    v1::Envelope e;
    grpc::Status got;
    for (int i = 0; i < 3; ++i) {
      got = GetEnvelope(*admin, "svc", id, &e);
      if (got.ok()) break;
    }
    EXPECT_TRUE(got.ok()) << id << ": " << got.error_message();
  }
}

TEST_F(PostgresFaultTest, RefusedConnectionAtStartUpIsAClearErrorWithoutThePassword) {
  const int port = FreePort();  // Nobody listens there.
  auto [code, out] = RunRetryd(
      dir_, {"--store", "postgres", "--postgres-dsn",
             "host=127.0.0.1 port=" + std::to_string(port) + " user=retryd password=hunter2",
             "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "off"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("store_open_failed"));
  EXPECT_THAT(out, HasSubstr("connecting to PostgreSQL"));
  EXPECT_THAT(out, HasSubstr("password=***"));
  EXPECT_THAT(out, Not(HasSubstr("hunter2")));
}

TEST_F(PostgresFaultTest, ThePasswordIsInNoLogLineNorInCheckConfig) {
  auto cluster = PgCluster::Shared();
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto dsn = (*cluster)->CreateDatabase();
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  // Trust authentication ignores the password; the log must not show it anyway.
  const std::string with_password = *dsn + " password=hunter2";
  auto server = ServerProcess::Start(
      dir_, "", {"--store", "postgres", "--postgres-dsn", with_password, "--log-level", "debug"});
  ASSERT_TRUE(server.ok()) << server.status();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE((*server)->RetryStub()->ReportFailure(Context().get(),
                                                    FirstFailure("svc", "m1"), &resp).ok());
  ASSERT_TRUE((*server)->Terminate(absl::Seconds(30)).ok());
  EXPECT_THAT((*server)->log(), HasSubstr("password=***"));
  EXPECT_THAT((*server)->log(), Not(HasSubstr("hunter2")));

  auto [code, out] = RunRetryd(dir_, {"--store", "postgres", "--check-config"});
  EXPECT_EQ(code, 0) << out;
  // The DSN from the environment variable, as an operator's Deployment would pass it.
  setenv("RETRYD_POSTGRES_DSN", "postgresql://retryd:hunter2@db/retryd", 1);
  std::tie(code, out) = RunRetryd(dir_, {"--store", "postgres", "--check-config"});
  unsetenv("RETRYD_POSTGRES_DSN");
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("postgresql://retryd:***@db/retryd"));
  EXPECT_THAT(out, Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace retryd::testing
