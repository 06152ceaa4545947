// The lazily written key index, through the store that uses it (a real SQLite file): duplicates
// are found before, during and after a merge, across reopening (the keys newer than the watermark
// are read back from their rows), after rollbacks and deletes, and after a merge cut short.
#include "server/store/key_index.h"

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/envelope.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "server/util/status_macros.h"
#include "tests/testing/schema_downgrade.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using testing::IsOk;
using testing::MakeTempDir;
using testing::RemoveTree;
using testing::StatusIs;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

Envelope MakeEnvelope(const std::string& service, const std::string& message_id,
                      EnvelopeState state = EnvelopeState::kScheduled) {
  Envelope e;
  e.service = service;
  e.message_id = message_id;
  e.attempt = 1;
  e.max_attempts = 5;
  e.first_seen_at = kT0;
  e.created_at = kT0;
  e.updated_at = kT0;
  e.payload = "payload-" + message_id;
  e.state = state;
  if (state == EnvelopeState::kSucceeded) {
    e.completed_at = kT0;
  } else if (state == EnvelopeState::kDeadLettered) {
    e.dead_lettered_at = kT0;
    e.dead_letter_reason = DeadLetterReason::kRetryExhausted;
  } else {
    e.next_retry_at = kT0 + absl::Seconds(10);
  }
  return e;
}

// Message ids in an order unrelated to their key order, as random ids are.
std::string MessageId(int i) { return absl::StrCat("m", (i * 7919) % 1000, "-", i); }

class KeyIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  void TearDown() override {
    store_.reset();
    RemoveTree(dir_);
  }

  // A merge starts at 8 pending keys and copies 3 per commit.
  void Open(int64_t merge_at = 8, int64_t slice = 3) {
    store_.reset();
    SqliteStore::Options options;
    options.keys.merge_at = merge_at;
    options.keys.slice = slice;
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(dir_ + "/data", options);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  // Inserts in a batch of its own: the envelope's id, or the insert's error.
  absl::StatusOr<int64_t> Insert(const std::string& service, const std::string& message_id,
                                 EnvelopeState state = EnvelopeState::kScheduled) {
    Envelope e = MakeEnvelope(service, message_id, state);
    RETURN_IF_ERROR(store_->Begin());
    absl::Status s = store_->Insert(&e);
    if (!s.ok()) {
      store_->Rollback();
      return s;
    }
    RETURN_IF_ERROR(store_->Commit());
    return e.id;
  }

  // Inserts MessageId(0) .. MessageId(n - 1), each in a batch of its own, and appends each key
  // with its envelope's id to `keys`.
  void InsertKeys(int n, std::vector<std::pair<std::string, int64_t>>* keys,
                  EnvelopeState state = EnvelopeState::kScheduled) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<int64_t> id = Insert("svc", MessageId(i), state);
      ASSERT_THAT(id, IsOk());
      keys->emplace_back(MessageId(i), *id);
    }
  }

  // An empty batch: carries a merge slice, like any commit.
  void Tick() {
    ASSERT_THAT(store_->Begin(), IsOk());
    ASSERT_THAT(store_->Commit(), IsOk());
  }

  // The id the writer finds for the key (0: none).
  int64_t WriterFinds(const std::string& service, const std::string& message_id) {
    absl::StatusOr<std::optional<Envelope>> e = store_->FindByKey(service, message_id, false);
    EXPECT_THAT(e, IsOk());
    return e.ok() && e->has_value() ? (*e)->id : 0;
  }

  // The id the read side finds for the key (0: none).
  int64_t ReaderFinds(const std::string& service, const std::string& message_id) {
    absl::StatusOr<std::optional<Envelope>> e = store_->Get(service, message_id);
    EXPECT_THAT(e, IsOk());
    return e.ok() && e->has_value() ? (*e)->id : 0;
  }

  std::string Query(const std::string& sql) {
    auto db = sqlite::Database::Open(dir_ + "/data/retryd.db", /*read_only=*/true);
    EXPECT_THAT(db, IsOk());
    if (!db.ok()) return "";
    absl::StatusOr<sqlite::Statement> s = (*db)->Prepare(sql);
    EXPECT_THAT(s, IsOk());
    if (!s.ok()) return "";
    absl::StatusOr<bool> row = s->Step();
    return row.ok() && *row ? s->ColumnText(0) : "";
  }

  // Every key must be taken, by the envelope with that id, on both sides.
  void ExpectAllFound(const std::vector<std::pair<std::string, int64_t>>& keys) {
    for (const auto& [message_id, id] : keys) {
      SCOPED_TRACE(message_id);
      EXPECT_EQ(WriterFinds("svc", message_id), id);
      EXPECT_EQ(ReaderFinds("svc", message_id), id);
      EXPECT_THAT(Insert("svc", message_id).status(), StatusIs(absl::StatusCode::kAlreadyExists));
    }
  }

  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(KeyIndexTest, NewKeysStayInMemoryUntilEnoughArePending) {
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(7, &keys));
  EXPECT_EQ(store_->keys().pending_count(), 7);
  EXPECT_EQ(store_->keys().merged_through(), 0);
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "0");
  ExpectAllFound(keys);
}

TEST_F(KeyIndexTest, MergeCopiesKeysInSlicesAndMovesTheWatermarkLast) {
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(8, &keys));
  // The eighth commit started the merge and copied its first slice.
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "3");
  EXPECT_EQ(store_->keys().merged_through(), 0);
  ExpectAllFound(keys);  // Half merged: found in either half.
  ASSERT_NO_FATAL_FAILURE(Tick());
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "6");
  EXPECT_EQ(store_->keys().merged_through(), 0);
  ASSERT_NO_FATAL_FAILURE(Tick());
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "8");
  EXPECT_EQ(Query("SELECT merged_through FROM key_merge"), absl::StrCat(keys.back().second));
  EXPECT_EQ(store_->keys().merged_through(), keys.back().second);
  EXPECT_EQ(store_->keys().pending_count(), 0);
  // The keys were copied in key order, each with its envelope's id.
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys k JOIN envelopes e ON e.id = k.id "
                  "AND e.service_id = k.service_id AND e.message_id = k.message_id"),
            "8");
  ExpectAllFound(keys);
}

TEST_F(KeyIndexTest, KeysAreFoundAfterReopeningBeforeDuringAndAfterAMerge) {
  std::vector<std::pair<std::string, int64_t>> keys;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<int64_t> id = Insert("svc", MessageId(i));
    ASSERT_THAT(id, IsOk());
    keys.emplace_back(MessageId(i), *id);
    // Closing between any two inserts: merged, half-merged and pending keys alike.
    ASSERT_NO_FATAL_FAILURE(Open());
  }
  ExpectAllFound(keys);
  ASSERT_NO_FATAL_FAILURE(Open(/*merge_at=*/1000));
  ExpectAllFound(keys);
}

TEST_F(KeyIndexTest, AMergeCutShortIsDoneAgainAfterReopening) {
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(8, &keys));
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "3");
  // Reopened with a large threshold: the 8 keys above the old watermark are pending again, 3 of
  // them also copied already.
  ASSERT_NO_FATAL_FAILURE(Open(/*merge_at=*/8, /*slice=*/100));
  EXPECT_EQ(store_->keys().pending_count(), 8);
  ExpectAllFound(keys);
  ASSERT_NO_FATAL_FAILURE(Tick());
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "8");
  EXPECT_EQ(store_->keys().pending_count(), 0);
}

TEST_F(KeyIndexTest, ARolledBackInsertLeavesItsKeyFree) {
  Envelope e = MakeEnvelope("svc", "undone");
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->Insert(&e), IsOk());
  store_->Rollback();
  EXPECT_EQ(WriterFinds("svc", "undone"), 0);
  EXPECT_EQ(ReaderFinds("svc", "undone"), 0);

  // Undone as one operation of a batch whose others are kept.
  Envelope kept = MakeEnvelope("svc", "kept");
  Envelope dropped = MakeEnvelope("svc", "dropped");
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->BeginOp(), IsOk());
  ASSERT_THAT(store_->Insert(&kept), IsOk());
  ASSERT_THAT(store_->EndOp(true), IsOk());
  ASSERT_THAT(store_->BeginOp(), IsOk());
  ASSERT_THAT(store_->Insert(&dropped), IsOk());
  ASSERT_THAT(store_->EndOp(false), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  EXPECT_EQ(WriterFinds("svc", "kept"), kept.id);
  EXPECT_EQ(WriterFinds("svc", "dropped"), 0);

  absl::StatusOr<int64_t> again = Insert("svc", "undone");
  ASSERT_THAT(again, IsOk());
  EXPECT_NE(*again, e.id);  // An id is never handed out twice.
  ASSERT_THAT(Insert("svc", "dropped"), IsOk());
}

TEST_F(KeyIndexTest, DeletingAnEnvelopeFreesItsKeyMergedOrPending) {
  // 8 succeeded envelopes get merged; 3 more stay pending.
  for (int i = 0; i < 11; ++i) {
    ASSERT_THAT(Insert("svc", MessageId(i), EnvelopeState::kSucceeded), IsOk());
    if (i == 7) {
      for (int t = 0; t < 3; ++t) ASSERT_NO_FATAL_FAILURE(Tick());
    }
  }
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "8");
  ASSERT_EQ(store_->keys().pending_count(), 3);
  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<int64_t> deleted = store_->DeleteSucceededBefore(kT0 + absl::Seconds(1), 100);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 11);
  ASSERT_THAT(store_->Commit(), IsOk());
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "0");
  for (int i = 0; i < 11; ++i) {
    EXPECT_EQ(WriterFinds("svc", MessageId(i)), 0) << MessageId(i);
    EXPECT_EQ(ReaderFinds("svc", MessageId(i)), 0) << MessageId(i);
  }
  // A re-submission of a deleted key is a new envelope, found afterwards, also after reopening.
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(11, &keys));
  ExpectAllFound(keys);
  ASSERT_NO_FATAL_FAILURE(Open());
  ExpectAllFound(keys);
}

TEST_F(KeyIndexTest, AnEnvelopeDeletedDuringAMergeLeavesNoKeyBehind) {
  ASSERT_NO_FATAL_FAILURE(Open(/*merge_at=*/8, /*slice=*/1));
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(8, &keys, EnvelopeState::kSucceeded));
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "1");
  // A delete that is rolled back: its keys must still be copied.
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->DeleteSucceededBefore(kT0 + absl::Seconds(1), 100), IsOk());
  store_->Rollback();
  for (int t = 0; t < 7; ++t) ASSERT_NO_FATAL_FAILURE(Tick());
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "8");
  ExpectAllFound(keys);

  // Eight more, then all sixteen deleted while the second merge has copied one key.
  for (int i = 8; i < 16; ++i) {
    ASSERT_THAT(Insert("svc", MessageId(i), EnvelopeState::kSucceeded), IsOk());
  }
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "9");
  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<int64_t> deleted = store_->DeleteSucceededBefore(kT0 + absl::Seconds(1), 100);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 16);
  ASSERT_THAT(store_->Commit(), IsOk());
  for (int t = 0; t < 8; ++t) ASSERT_NO_FATAL_FAILURE(Tick());
  EXPECT_EQ(store_->keys().pending_count(), 0);
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "0");
}

TEST_F(KeyIndexTest, AMergedKeyWithoutItsEnvelopeDoesNotBlockTheKey) {
  ASSERT_THAT(Insert("svc", "real"), IsOk());
  store_.reset();
  {
    auto db = sqlite::Database::Open(dir_ + "/data/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec("INSERT INTO envelope_keys (service_id, message_id, id) "
                            "SELECT id, 'ghost', 999999 FROM services WHERE name = 'svc'"),
                IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(WriterFinds("svc", "ghost"), 0);
  EXPECT_EQ(ReaderFinds("svc", "ghost"), 0);
  absl::StatusOr<int64_t> id = Insert("svc", "ghost");
  ASSERT_THAT(id, IsOk());
  EXPECT_EQ(WriterFinds("svc", "ghost"), *id);
  EXPECT_EQ(ReaderFinds("svc", "ghost"), *id);
}

TEST_F(KeyIndexTest, IdsStayAboveTheWatermarkAfterTheNewestRowsAreDeleted) {
  for (int i = 0; i < 8; ++i) {
    ASSERT_THAT(Insert("svc", MessageId(i), EnvelopeState::kSucceeded), IsOk());
  }
  for (int t = 0; t < 3; ++t) ASSERT_NO_FATAL_FAILURE(Tick());
  const int64_t watermark = store_->keys().merged_through();
  ASSERT_GT(watermark, 0);
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->DeleteSucceededBefore(kT0 + absl::Seconds(1), 100), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  // SQLite would hand out id 1 again (the table is empty); the key would then sit below the
  // watermark, in neither half of the index, after the next open.
  ASSERT_NO_FATAL_FAILURE(Open());
  absl::StatusOr<int64_t> id = Insert("svc", "after");
  ASSERT_THAT(id, IsOk());
  EXPECT_GT(*id, watermark);
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_THAT(Insert("svc", "after").status(), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(KeyIndexTest, KeysOfDifferentServicesAreDistinct) {
  ASSERT_NO_FATAL_FAILURE(Open(/*merge_at=*/15, /*slice=*/100));
  std::vector<int64_t> ids;
  for (const char* service : {"a", "b", "c"}) {
    for (int i = 0; i < 5; ++i) {
      absl::StatusOr<int64_t> id = Insert(service, MessageId(i));
      ASSERT_THAT(id, IsOk());
      ids.push_back(*id);
    }
  }
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "15");
  size_t n = 0;
  for (const char* service : {"a", "b", "c"}) {
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(WriterFinds(service, MessageId(i)), ids[n]);
      EXPECT_EQ(ReaderFinds(service, MessageId(i)), ids[n]);
      ++n;
    }
  }
  EXPECT_EQ(WriterFinds("d", MessageId(0)), 0);
}

TEST_F(KeyIndexTest, SlicesGrowWhenKeysArriveFasterThanTheyAreCopied) {
  // Batches of 20 inserts against slices of 1: the merge still ends before 8 more keys arrive.
  ASSERT_NO_FATAL_FAILURE(Open(/*merge_at=*/8, /*slice=*/1));
  int n = 0;
  for (int batch = 0; batch < 10; ++batch) {
    ASSERT_THAT(store_->Begin(), IsOk());
    for (int i = 0; i < 20; ++i, ++n) {
      Envelope e = MakeEnvelope("svc", MessageId(n));
      ASSERT_THAT(store_->Insert(&e), IsOk());
    }
    ASSERT_THAT(store_->Commit(), IsOk());
    EXPECT_LE(store_->keys().pending_count(), 60) << "after batch " << batch;
  }
}

TEST_F(KeyIndexTest, SchemaFiveDatabaseMovesItsKeys) {
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(5, &keys));
  store_.reset();
  {
    auto db = sqlite::Database::Open(dir_ + "/data/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaFive), IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(Query("PRAGMA user_version"), absl::StrCat(SqliteStore::kSchemaVersion));
  EXPECT_EQ(Query("SELECT count(*) FROM sqlite_master WHERE name = 'envelopes_by_key'"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys"), "5");
  EXPECT_EQ(store_->keys().merged_through(), keys.back().second);
  EXPECT_EQ(store_->keys().pending_count(), 0);
  ExpectAllFound(keys);
}

TEST_F(KeyIndexTest, MessageIdFiltersFindMergedAndPendingKeys) {
  // Dead letters: 8 merged and 3 pending in "svc", one more in "other".
  std::vector<std::pair<std::string, int64_t>> keys;
  ASSERT_NO_FATAL_FAILURE(InsertKeys(8, &keys, EnvelopeState::kDeadLettered));
  for (int t = 0; t < 3; ++t) ASSERT_NO_FATAL_FAILURE(Tick());
  for (int i = 8; i < 11; ++i) {
    absl::StatusOr<int64_t> id = Insert("svc", MessageId(i), EnvelopeState::kDeadLettered);
    ASSERT_THAT(id, IsOk());
    keys.emplace_back(MessageId(i), *id);
  }
  ASSERT_EQ(Query("SELECT count(*) FROM envelope_keys"), "8");
  absl::StatusOr<int64_t> other = Insert("other", MessageId(1), EnvelopeState::kDeadLettered);
  ASSERT_THAT(other, IsOk());

  ListQuery q;
  q.state = EnvelopeState::kDeadLettered;
  q.filter.message_ids = {MessageId(1), MessageId(9), "absent"};
  auto listed = [&]() {
    std::set<int64_t> ids;
    absl::StatusOr<ListPage> page = store_->List(q);
    EXPECT_THAT(page, IsOk());
    if (page.ok()) {
      for (const Envelope& e : page->envelopes) ids.insert(e.id);
    }
    return ids;
  };
  EXPECT_EQ(listed(), (std::set<int64_t>{keys[1].second, keys[9].second, *other}));
  q.filter.service = "svc";
  EXPECT_EQ(listed(), (std::set<int64_t>{keys[1].second, keys[9].second}));
  absl::StatusOr<int64_t> count = store_->CountDeadLetters(q.filter);
  ASSERT_THAT(count, IsOk());
  EXPECT_EQ(*count, 2);
  q.filter.service = "absent";
  EXPECT_THAT(listed(), ::testing::IsEmpty());
}

// The lookups read the key table's primary key, not the envelopes.
TEST_F(KeyIndexTest, LookupsUseTheKeyTable) {
  auto db = sqlite::Database::Open(dir_ + "/data/retryd.db", /*read_only=*/true);
  ASSERT_THAT(db, IsOk());
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2((*db)->raw(),
                               "EXPLAIN QUERY PLAN SELECT id FROM envelope_keys "
                               "WHERE service_id = 1 AND message_id = 'x'",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  std::string plan;
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    plan += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
  }
  sqlite3_finalize(stmt);
  EXPECT_THAT(plan, ::testing::HasSubstr("USING PRIMARY KEY (service_id=? AND message_id=?)"));
}

}  // namespace
}  // namespace retryd
