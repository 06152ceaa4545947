#include "server/store/sqlite_db.h"

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd::sqlite {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using retryd::testing::IsOk;
using retryd::testing::MakeTempDir;
using retryd::testing::RemoveTree;
using retryd::testing::StatusIs;

// Steps `s`, failing the test on error; returns whether a row is ready.
bool StepRow(Statement& s) {
  absl::StatusOr<bool> row = s.Step();
  EXPECT_THAT(row, IsOk());
  return row.ok() && *row;
}

TEST(ErrorStatusTest, MapsResultCodesToCanonicalCodes) {
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_BUSY, "w"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_LOCKED, "w"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_IOERR_FSYNC, "w"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_FULL, "w"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_CANTOPEN, "w"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_CONSTRAINT_UNIQUE, "w"),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_ERROR, "w"), StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_CORRUPT, "w"), StatusIs(absl::StatusCode::kInternal));
}

TEST(ErrorStatusTest, MessageNamesTheOperationAndTheCode) {
  EXPECT_THAT(ErrorStatus(nullptr, SQLITE_BUSY, "commit batch"),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("commit batch: "), HasSubstr(sqlite3_errstr(SQLITE_BUSY)),
                             HasSubstr("(sqlite code 5)"))));
}

class DatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    path_ = dir_ + "/test.db";
    absl::StatusOr<std::unique_ptr<Database>> db = Database::Open(path_, /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    db_ = std::move(*db);
    ASSERT_THAT(db_->Exec("CREATE TABLE t (k TEXT PRIMARY KEY, i INTEGER, b BLOB)"), IsOk());
  }

  void TearDown() override {
    db_.reset();
    RemoveTree(dir_);
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<Database> db_;
};

TEST_F(DatabaseTest, BoundValuesRoundTrip) {
  const std::string blob("\0a\0\xff", 4);
  absl::StatusOr<Statement> insert = db_->Prepare("INSERT INTO t (k, i, b) VALUES (?, ?, ?)");
  ASSERT_THAT(insert, IsOk());
  insert->BindText(1, "min");
  insert->BindInt(2, INT64_MIN);
  insert->BindBlob(3, blob);
  ASSERT_THAT(insert->Run(), IsOk());
  EXPECT_EQ(db_->Changes(), 1);
  const int64_t first = db_->LastInsertRowId();
  insert->BindText(1, "max");
  insert->BindInt(2, INT64_MAX);
  insert->BindNull(3);
  ASSERT_THAT(insert->Run(), IsOk());
  EXPECT_EQ(db_->LastInsertRowId(), first + 1);

  absl::StatusOr<Statement> select = db_->Prepare("SELECT k, i, b FROM t ORDER BY rowid");
  ASSERT_THAT(select, IsOk());
  ASSERT_TRUE(StepRow(*select));
  EXPECT_EQ(select->ColumnText(0), "min");
  EXPECT_EQ(select->ColumnInt(1), INT64_MIN);
  EXPECT_EQ(select->ColumnBlob(2), blob);
  EXPECT_FALSE(select->ColumnIsNull(2));
  ASSERT_TRUE(StepRow(*select));
  EXPECT_EQ(select->ColumnText(0), "max");
  EXPECT_EQ(select->ColumnInt(1), INT64_MAX);
  EXPECT_TRUE(select->ColumnIsNull(2));
  EXPECT_EQ(select->ColumnBlob(2), "");
  ASSERT_FALSE(StepRow(*select));
}

TEST_F(DatabaseTest, EmptyBlobIsStoredAsBlobNotNull) {
  absl::StatusOr<Statement> insert = db_->Prepare("INSERT INTO t (k, b) VALUES ('e', ?)");
  ASSERT_THAT(insert, IsOk());
  insert->BindBlob(1, "");
  ASSERT_THAT(insert->Run(), IsOk());

  absl::StatusOr<Statement> select = db_->Prepare("SELECT typeof(b), length(b) FROM t");
  ASSERT_THAT(select, IsOk());
  ASSERT_TRUE(StepRow(*select));
  EXPECT_EQ(select->ColumnText(0), "blob");
  EXPECT_EQ(select->ColumnInt(1), 0);
}

TEST_F(DatabaseTest, TextWithEmbeddedNulRoundTrips) {
  const std::string text("a\0b", 3);
  absl::StatusOr<Statement> echo = db_->Prepare("SELECT ?");
  ASSERT_THAT(echo, IsOk());
  echo->BindText(1, text);
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnText(0), text);
}

TEST_F(DatabaseTest, ResetStatementCanBeRunAgainWithNewBindings) {
  absl::StatusOr<Statement> echo = db_->Prepare("SELECT ?");
  ASSERT_THAT(echo, IsOk());
  echo->BindInt(1, 1);
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnInt(0), 1);
  echo->Reset();
  echo->BindInt(1, 2);
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnInt(0), 2);
}

// The header promises that binding after a Step resets the statement (no explicit Reset needed).
TEST_F(DatabaseTest, BindAfterStepResetsTheStatement) {
  absl::StatusOr<Statement> echo = db_->Prepare("SELECT ?, ?");
  ASSERT_THAT(echo, IsOk());
  echo->BindInt(1, 1);
  echo->BindText(2, "kept");
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnInt(0), 1);

  echo->BindInt(1, 2);  // The statement is mid-result; no Reset in between.
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnInt(0), 2);
  EXPECT_EQ(echo->ColumnText(1), "kept");  // Other bindings survive.
  ASSERT_FALSE(StepRow(*echo));

  echo->BindInt(1, 3);  // After the statement ran to completion.
  ASSERT_TRUE(StepRow(*echo));
  EXPECT_EQ(echo->ColumnInt(0), 3);
}

TEST_F(DatabaseTest, UniqueViolationIsAlreadyExists) {
  ASSERT_THAT(db_->Exec("INSERT INTO t (k) VALUES ('dup')"), IsOk());

  absl::StatusOr<Statement> insert = db_->Prepare("INSERT INTO t (k) VALUES (?)");
  ASSERT_THAT(insert, IsOk());
  insert->BindText(1, "dup");
  EXPECT_THAT(insert->Run(),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("UNIQUE constraint failed")));
  // The statement is usable again after the failure.
  insert->BindText(1, "fresh");
  EXPECT_THAT(insert->Run(), IsOk());
  EXPECT_THAT(db_->Exec("INSERT INTO t (k) VALUES ('dup')"),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(DatabaseTest, BadSqlIsInternalAndQuotesTheSql) {
  EXPECT_THAT(db_->Prepare("SELEKT 1"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("prepare `SELEKT 1`")));
  EXPECT_THAT(db_->Exec("SELECT * FROM no_such_table"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no such table")));
}

TEST_F(DatabaseTest, WriteLockHeldElsewhereIsUnavailable) {
  absl::StatusOr<std::unique_ptr<Database>> other = Database::Open(path_, /*read_only=*/false);
  ASSERT_THAT(other, IsOk());
  sqlite3_busy_timeout((*other)->raw(), 0);  // Fail at once instead of waiting.

  ASSERT_THAT(db_->Exec("BEGIN IMMEDIATE"), IsOk());
  EXPECT_THAT((*other)->Exec("BEGIN IMMEDIATE"), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(db_->Exec("COMMIT"), IsOk());
  EXPECT_THAT((*other)->Exec("BEGIN IMMEDIATE"), IsOk());
  EXPECT_THAT((*other)->Exec("ROLLBACK"), IsOk());
}

TEST_F(DatabaseTest, ReadOnlyConnectionRejectsWrites) {
  absl::StatusOr<std::unique_ptr<Database>> reader = Database::Open(path_, /*read_only=*/true);
  ASSERT_THAT(reader, IsOk());

  EXPECT_THAT((*reader)->Exec("INSERT INTO t (k) VALUES ('x')"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("readonly")));
}

TEST(DatabaseOpenTest, ReadOnlyOpenOfMissingFileIsUnavailable) {
  const std::string dir = MakeTempDir();
  ASSERT_FALSE(dir.empty());

  EXPECT_THAT(Database::Open(dir + "/missing.db", /*read_only=*/true),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("missing.db")));
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::sqlite
