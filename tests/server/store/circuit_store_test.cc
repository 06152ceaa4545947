// SqliteStore's circuits table on real SQLite files: every field round-trips (the guards' encoded
// windows included), a save replaces, a rolled-back batch leaves nothing, records survive a
// reopen, and version-1 and version-6 databases are migrated with their rows kept.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/circuit_breaker.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/test_stores.h"
#include "tests/testing/schema_downgrade.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using testing::IsOk;

const absl::Time kT0 = absl::FromUnixMicros(1700000000123456);

CircuitRecord Open(const std::string& service) {
  CircuitRecord r;
  r.service = service;
  r.state = CircuitState::kOpen;
  r.since = kT0;
  r.next_probe_at = kT0 + absl::Seconds(60);
  r.open_duration = absl::Seconds(60);
  r.override_mode = CircuitOverride::kForceClosed;
  r.override_note = "ticket OPS-7: \"vendor\" fix — deploying";
  r.override_peer = "ipv4:127.0.0.1:5555";
  r.override_at = kT0 + absl::Microseconds(7);
  r.windows = std::string("\x01\x00\xff\x7f windows", 12);  // Opaque bytes, NULs included.
  return r;
}

void ExpectSame(const CircuitRecord& a, const CircuitRecord& b) {
  EXPECT_EQ(a.service, b.service);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.since, b.since);
  EXPECT_EQ(a.next_probe_at, b.next_probe_at);
  EXPECT_EQ(a.open_duration, b.open_duration);
  EXPECT_EQ(a.override_mode, b.override_mode);
  EXPECT_EQ(a.override_note, b.override_note);
  EXPECT_EQ(a.override_peer, b.override_peer);
  EXPECT_EQ(a.override_at, b.override_at);
  EXPECT_EQ(a.windows, b.windows);
}

class CircuitStoreTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<testing::StoreLocation> where = testing::NewStoreLocation(GetParam());
    ASSERT_THAT(where, IsOk());
    where_ = *where;
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    testing::RemoveStoreLocation(where_);
  }
  void Reopen() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> s = testing::OpenStore(where_);
    ASSERT_THAT(s, IsOk());
    store_ = std::move(*s);
  }
  void Save(const CircuitRecord& r) {
    ASSERT_THAT(store_->Begin(), IsOk());
    ASSERT_THAT(store_->SaveCircuit(r), IsOk());
    ASSERT_THAT(store_->Commit(), IsOk());
  }
  std::vector<CircuitRecord> Load() {
    absl::StatusOr<std::vector<CircuitRecord>> all = store_->LoadCircuits();
    EXPECT_THAT(all, IsOk());
    return all.ok() ? *all : std::vector<CircuitRecord>();
  }

  testing::StoreLocation where_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, CircuitStoreTest, testing::AllStoreKinds(), testing::StoreKindName);

// Tests of SQLite's own schema upgrades.
class CircuitStoreTestSqlite : public CircuitStoreTest {};
INSTANTIATE_TEST_SUITE_P(Stores, CircuitStoreTestSqlite, ::testing::Values(testing::StoreKind::kSqlite),
                         testing::StoreKindName);

TEST_P(CircuitStoreTest, EveryFieldRoundTripsAndSurvivesReopen) {
  EXPECT_TRUE(Load().empty());
  CircuitRecord closed;
  closed.service = "billing";
  closed.since = kT0;  // next_probe_at and override_at unset (InfinitePast).
  Save(Open("orders"));
  Save(closed);
  Reopen();
  const std::vector<CircuitRecord> all = Load();
  ASSERT_EQ(all.size(), 2u);
  ExpectSame(all[0], closed);  // Ordered by service.
  ExpectSame(all[1], Open("orders"));
  EXPECT_EQ(all[0].next_probe_at, absl::InfinitePast());
  EXPECT_EQ(all[0].override_at, absl::InfinitePast());
}

TEST_P(CircuitStoreTest, SaveReplacesTheServicesRecord) {
  Save(Open("orders"));
  CircuitRecord half = Open("orders");
  half.state = CircuitState::kHalfOpen;
  half.next_probe_at = absl::InfinitePast();
  half.override_mode = CircuitOverride::kAuto;
  Save(half);
  const std::vector<CircuitRecord> all = Load();
  ASSERT_EQ(all.size(), 1u);
  ExpectSame(all[0], half);
}

TEST_P(CircuitStoreTest, RolledBackSaveLeavesNothing) {
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->BeginOp(), IsOk());
  ASSERT_THAT(store_->SaveCircuit(Open("orders")), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/false), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  EXPECT_TRUE(Load().empty());
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->SaveCircuit(Open("orders")), IsOk());
  store_->Rollback();
  Reopen();
  EXPECT_TRUE(Load().empty());
}

TEST_P(CircuitStoreTestSqlite, VersionOneDatabaseIsMigrated) {
  // A database as schema version 1 left it: no circuits table, one envelope.
  Envelope e;
  e.service = "orders";
  e.message_id = "m-1";
  e.state = EnvelopeState::kScheduled;
  e.next_retry_at = kT0;
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->Insert(&e), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  store_.reset();
  {
    absl::StatusOr<std::unique_ptr<sqlite::Database>> db =
        sqlite::Database::Open(where_.data_dir + "/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaOne), IsOk());
  }
  Reopen();
  EXPECT_TRUE(Load().empty());
  Save(Open("orders"));
  EXPECT_EQ(Load().size(), 1u);
  absl::StatusOr<std::optional<Envelope>> kept = store_->Get("orders", "m-1");
  ASSERT_THAT(kept, IsOk());
  EXPECT_TRUE(kept->has_value());
}

TEST_P(CircuitStoreTestSqlite, VersionSixDatabaseKeepsItsCircuitsWithoutWindows) {
  CircuitRecord before = Open("orders");
  Save(before);
  store_.reset();
  {
    absl::StatusOr<std::unique_ptr<sqlite::Database>> db =
        sqlite::Database::Open(where_.data_dir + "/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaSix), IsOk());
  }
  Reopen();
  std::vector<CircuitRecord> all = Load();
  ASSERT_EQ(all.size(), 1u);
  before.windows.clear();  // None stored before version 7: the windows start empty.
  ExpectSame(all[0], before);
  Save(Open("orders"));
  all = Load();
  ASSERT_EQ(all.size(), 1u);
  ExpectSame(all[0], Open("orders"));
}

}  // namespace
}  // namespace retryd
