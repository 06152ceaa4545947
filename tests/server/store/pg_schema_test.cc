// The libpq layer (pg_conn), DSN redaction (pg_dsn) and the migrations (pg_schema), against a
// real PostgreSQL (tests/testing/pg_cluster.h). Tests that need the server are named *Postgres*.
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_dsn.h"
#include "server/store/pg/pg_schema.h"
#include "server/store/pg/pg_store.h"
#include "server/store/store_failure.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;
using ::retryd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(PgDsnTest, RedactsPasswordsInBothForms) {
  EXPECT_EQ(pg::RedactDsn("host=db user=app password=s3cret dbname=retryd"),
            "host=db user=app password=*** dbname=retryd");
  EXPECT_EQ(pg::RedactDsn("password = 'it\\'s secret' host=db"), "password = *** host=db");
  EXPECT_EQ(pg::RedactDsn("postgresql://app:s3cret@db:5432/retryd?sslmode=require"),
            "postgresql://app:***@db:5432/retryd?sslmode=require");
  EXPECT_EQ(pg::RedactDsn("postgres://app@db/retryd?password=s3cret&sslmode=disable"),
            "postgres://app@db/retryd?password=***&sslmode=disable");
  EXPECT_EQ(pg::RedactDsn("host=db options='-csearch_path=a' password='x y'"),
            "host=db options='-csearch_path=a' password=***");
  EXPECT_EQ(pg::RedactDsn("host=db"), "host=db");
  EXPECT_EQ(pg::RedactDsn(""), "");
}

TEST(PgConnPostgresTest, RefusedConnectionIsUnavailableAndRedacted) {
  // A port nobody listens on (the discard port on loopback).
  auto conn = pg::Connection::Open("host=127.0.0.1 port=9 user=x password=s3cret connect_timeout=2");
  ASSERT_THAT(conn, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsStoreFailure(conn.status()));
  EXPECT_THAT(std::string(conn.status().message()), Not(HasSubstr("s3cret")));
  EXPECT_THAT(std::string(conn.status().message()), HasSubstr("password=***"));
}

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_THAT(cluster, IsOk());
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn, IsOk());
    dsn_ = *dsn;
  }
  std::unique_ptr<pg::Connection> Connect() {
    auto c = pg::Connection::Open(dsn_);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }
  std::string dsn_;
};

using PgConnPostgres = PostgresTest;

TEST_F(PgConnPostgres, ParamsAndResultsRoundTrip) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  const std::string bytes("a\0b\xff", 4);
  auto r = c->Exec("SELECT $1::bigint, $2::text, $3::bytea, $4::integer IS NULL, 7::int2, true",
                   pg::Params().Int(-1234567890123).Text("héllo").Bytes(bytes).Null());
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->Int(0, 0), -1234567890123);
  EXPECT_EQ(r->Text(0, 1), "héllo");
  EXPECT_EQ(r->Text(0, 2), bytes);
  EXPECT_EQ(r->Int(0, 3), 1);
  EXPECT_EQ(r->Int(0, 4), 7);
  EXPECT_EQ(r->Int(0, 5), 1);
}

TEST_F(PgConnPostgres, ErrorsCarrySqlstateAndUniqueViolationIsAnAnswer) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_THAT(c->ExecScript("CREATE TABLE t (k text PRIMARY KEY)"), IsOk());
  ASSERT_THAT(c->Exec("INSERT INTO t VALUES ($1)", pg::Params().Text("a")), IsOk());
  auto dup = c->Exec("INSERT INTO t VALUES ($1)", pg::Params().Text("a"));
  EXPECT_THAT(dup, StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("SQLSTATE 23505")));
  EXPECT_FALSE(IsStoreFailure(dup.status()));
  auto bad = c->Exec("SELECT * FROM no_such_table");
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInternal, HasSubstr("SQLSTATE 42P01")));
  EXPECT_TRUE(IsStoreFailure(bad.status()));
}

TEST_F(PgConnPostgres, SavepointUndoesOnlyItsWrites) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_THAT(c->ExecScript("CREATE TABLE t (k text PRIMARY KEY)"), IsOk());
  ASSERT_THAT(c->Begin(), IsOk());
  ASSERT_THAT(c->Exec("INSERT INTO t VALUES ('kept')"), IsOk());
  ASSERT_THAT(c->Savepoint("op"), IsOk());
  ASSERT_THAT(c->Exec("INSERT INTO t VALUES ('undone')"), IsOk());
  EXPECT_THAT(c->Exec("INSERT INTO t VALUES ('kept')"), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_THAT(c->RollbackToSavepoint("op"), IsOk());
  ASSERT_THAT(c->Commit(), IsOk());
  auto r = c->Exec("SELECT k FROM t ORDER BY k");
  ASSERT_THAT(r, IsOk());
  ASSERT_EQ(r->rows(), 1);
  EXPECT_EQ(r->Text(0, 0), "kept");
}

TEST_F(PgConnPostgres, TerminatedSessionIsAnUnavailableStoreFailure) {
  auto c = Connect();
  auto killer = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_NE(killer, nullptr);
  ASSERT_THAT(killer->Exec("SELECT pg_terminate_backend($1)", pg::Params().Int(c->backend_pid())),
              IsOk());
  auto r = c->Exec("SELECT 1");
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsStoreFailure(r.status()));
  EXPECT_FALSE(c->ok());
}

// A value PostgreSQL cannot hold (a NUL byte in a text column) is an answer about the request:
// the op is undone and the batch commits the others; the process is not stopped for it.
TEST_F(PgConnPostgres, NulByteInTextIsAnAnswerNotAStoreFailure) {
  auto store = PgStore::Open(dsn_);
  ASSERT_THAT(store, IsOk());
  ASSERT_THAT((*store)->Begin(), IsOk());
  ASSERT_THAT((*store)->BeginOp(), IsOk());
  Envelope bad;
  bad.service = "svc";
  bad.message_id = std::string("a\0b", 3);
  bad.state = EnvelopeState::kScheduled;
  absl::Status s = (*store)->Insert(&bad);
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_FALSE(IsStoreFailure(s));
  ASSERT_THAT((*store)->EndOp(false), IsOk());
  ASSERT_THAT((*store)->BeginOp(), IsOk());
  Envelope good = bad;
  good.message_id = "ab";
  ASSERT_THAT((*store)->Insert(&good), IsOk());
  ASSERT_THAT((*store)->EndOp(true), IsOk());
  ASSERT_THAT((*store)->Commit(), IsOk());
  auto got = (*store)->Get("svc", "ab");
  ASSERT_THAT(got, IsOk());
  EXPECT_TRUE(got->has_value());
}

using PgSchemaPostgres = PostgresTest;

TEST_F(PgSchemaPostgres, MigratesAnEmptyDatabaseOnceAndRecordsTheVersion) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  auto before = pg::CurrentVersion(*c);
  ASSERT_THAT(before, IsOk());
  EXPECT_EQ(*before, 0);
  ASSERT_THAT(pg::Migrate(*c), IsOk());
  ASSERT_THAT(pg::Migrate(*c), IsOk());  // Nothing left to do.
  auto v = pg::CurrentVersion(*c);
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(*v, pg::SchemaVersion());
  auto rows = c->Exec("SELECT count(*) FROM schema_version");
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->Int(0, 0), pg::SchemaVersion());
  for (const char* table : {"envelopes", "circuits", "audit_events", "replays"}) {
    auto t = c->Exec("SELECT to_regclass($1) IS NOT NULL", pg::Params().Text(table));
    ASSERT_THAT(t, IsOk());
    EXPECT_EQ(t->Int(0, 0), 1) << table;
  }
}

TEST_F(PgSchemaPostgres, RefusesADatabaseOfANewerRetryd) {
  auto c = Connect();
  ASSERT_NE(c, nullptr);
  ASSERT_THAT(pg::Migrate(*c), IsOk());
  ASSERT_THAT(c->Exec("INSERT INTO schema_version (version) VALUES ($1)",
                      pg::Params().Int(pg::SchemaVersion() + 1)),
              IsOk());
  EXPECT_THAT(pg::Migrate(*c),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("upgrade retryd")));
}

// Replicas starting at once: every one migrates the same empty database concurrently, on its
// own connection (its own backend, as separate processes would be). All succeed and the
// migrations are applied exactly once.
TEST_F(PgSchemaPostgres, ConcurrentStartsDoNotRace) {
  constexpr int kReplicas = 8;
  std::vector<std::unique_ptr<pg::Connection>> conns;
  for (int i = 0; i < kReplicas; ++i) {
    conns.push_back(Connect());
    ASSERT_NE(conns.back(), nullptr);
  }
  std::vector<absl::Status> results(kReplicas);
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] { results[i] = pg::Migrate(*conns[i]); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : results) EXPECT_THAT(s, IsOk());
  auto rows = conns[0]->Exec("SELECT count(*), max(version) FROM schema_version");
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ(rows->Int(0, 0), pg::SchemaVersion());
  EXPECT_EQ(rows->Int(0, 1), pg::SchemaVersion());
}

}  // namespace
}  // namespace retryd
