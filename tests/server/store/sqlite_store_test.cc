#include "server/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/envelope.h"
#include "server/store/sqlite_db.h"
#include "server/util/status_macros.h"
#include "tests/testing/schema_downgrade.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace retryd {

// Readable enum values in failure messages (found by argument-dependent lookup).
void PrintTo(EnvelopeState s, std::ostream* os) { *os << EnvelopeStateName(s); }
void PrintTo(ErrorClass c, std::ostream* os) { *os << ErrorClassName(c); }
void PrintTo(DeadLetterReason r, std::ostream* os) { *os << DeadLetterReasonName(r); }
void PrintTo(DecisionKind k, std::ostream* os) {
  *os << "DecisionKind(" << static_cast<int>(k) << ")";
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using testing::IsOk;
using testing::MakeTempDir;
using testing::RemoveTree;
using testing::StatusIs;

// Times with a non-zero microsecond part, so truncation to seconds or milliseconds would show.
const absl::Time kT0 = absl::FromUnixMicros(1700000000123456);

absl::Time At(int64_t micros_after_t0) { return kT0 + absl::Microseconds(micros_after_t0); }

// Sets the time (and the state-specific fields) that belong to `e->state`.
void SetStateTime(Envelope* e, absl::Time at) {
  switch (e->state) {
    case EnvelopeState::kScheduled:
      e->next_retry_at = at;
      break;
    case EnvelopeState::kLeased:
      e->lease_token = "lease-" + e->message_id;
      e->lease_expires_at = at;
      break;
    case EnvelopeState::kDeadLettered:
      e->dead_letter_reason = DeadLetterReason::kRetryExhausted;
      e->dead_lettered_at = at;
      break;
    case EnvelopeState::kSucceeded:
      e->completed_at = at;
      break;
    default:
      break;
  }
}

// A small envelope in `state` whose state time is `at`.
Envelope MakeEnvelope(std::string service, std::string message_id, EnvelopeState state,
                      absl::Time at) {
  Envelope e;
  e.service = std::move(service);
  e.message_id = std::move(message_id);
  e.attempt = 1;
  e.first_seen_at = kT0;
  e.payload = "payload-" + e.message_id;
  e.state = state;
  e.max_attempts = 5;
  e.created_at = kT0;
  e.updated_at = kT0;
  SetStateTime(&e, at);
  return e;
}

// An envelope with every field set to a distinctive value.
Envelope FullEnvelope(EnvelopeState state) {
  Envelope e;
  e.service = "billing";
  e.message_id = "msg-full";
  e.trace_id = "trace-7f3a";
  e.attempt = 4;
  e.first_seen_at = At(1);
  e.payload = std::string("a\0b\0\xff\x01 end", 10);
  e.content_type = "application/json";
  e.schema_version = "v3";
  e.source = "orders.queue";
  e.headers = {{"x-tenant", "acme"}, {"x-empty", ""}, {"x-unicode", "caf\xc3\xa9"}};
  e.state = state;
  e.max_attempts = 9;
  SetStateTime(&e, At(2000007));
  e.last_error.error_code = "UPSTREAM_TIMEOUT";
  e.last_error.error_class = ErrorClass::kTransient;
  e.last_error.message = "upstream timed out after 30s";
  e.last_error.http_status = 503;
  e.last_error.retry_after = absl::Seconds(30) + absl::Milliseconds(250);
  for (int i = 1; i <= 3; ++i) {
    AttemptRecord r;
    r.attempt = i;
    r.failed_at = At(i * 1000001);
    r.error_code = absl::StrCat("E", i);
    r.error_class = i == 3 ? ErrorClass::kRecoverable : ErrorClass::kTransient;
    r.message = absl::StrCat("attempt ", i, " failed");
    r.delay = absl::Seconds(i) + absl::Microseconds(3);
    e.history.push_back(r);
  }
  e.last_decision = DecisionKind::kScheduled;
  e.last_error_class = ErrorClass::kTransient;
  e.created_at = At(5);
  e.updated_at = At(3000009);
  return e;
}

void ExpectSameFailure(const Failure& want, const Failure& got) {
  EXPECT_EQ(got.error_code, want.error_code);
  EXPECT_EQ(got.error_class, want.error_class);
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(got.http_status, want.http_status);
  EXPECT_EQ(got.retry_after, want.retry_after);
}

// Every field but id and payload (checked by the callers, which know what to expect).
void ExpectSameFields(const Envelope& want, const Envelope& got) {
  EXPECT_EQ(got.service, want.service);
  EXPECT_EQ(got.message_id, want.message_id);
  EXPECT_EQ(got.trace_id, want.trace_id);
  EXPECT_EQ(got.attempt, want.attempt);
  EXPECT_EQ(got.first_seen_at, want.first_seen_at);
  EXPECT_EQ(got.content_type, want.content_type);
  EXPECT_EQ(got.schema_version, want.schema_version);
  EXPECT_EQ(got.source, want.source);
  EXPECT_EQ(got.headers, want.headers);
  EXPECT_EQ(got.state, want.state);
  EXPECT_EQ(got.max_attempts, want.max_attempts);
  EXPECT_EQ(got.next_retry_at, want.next_retry_at);
  EXPECT_EQ(got.lease_token, want.lease_token);
  EXPECT_EQ(got.lease_expires_at, want.lease_expires_at);
  EXPECT_EQ(got.dead_letter_reason, want.dead_letter_reason);
  EXPECT_EQ(got.dead_lettered_at, want.dead_lettered_at);
  EXPECT_EQ(got.completed_at, want.completed_at);
  ExpectSameFailure(want.last_error, got.last_error);
  ASSERT_EQ(got.history.size(), want.history.size());
  for (size_t i = 0; i < want.history.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("history[", i, "]"));
    EXPECT_EQ(got.history[i].attempt, want.history[i].attempt);
    EXPECT_EQ(got.history[i].failed_at, want.history[i].failed_at);
    EXPECT_EQ(got.history[i].error_code, want.history[i].error_code);
    EXPECT_EQ(got.history[i].error_class, want.history[i].error_class);
    EXPECT_EQ(got.history[i].message, want.history[i].message);
    EXPECT_EQ(got.history[i].delay, want.history[i].delay);
  }
  EXPECT_EQ(got.last_decision, want.last_decision);
  EXPECT_EQ(got.last_error_class, want.last_error_class);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.updated_at, want.updated_at);
}

// Inserts `e` in a batch of its own; returns its id.
absl::StatusOr<int64_t> InsertCommitted(Store& store, Envelope e) {
  RETURN_IF_ERROR(store.Begin());
  absl::Status s = store.Insert(&e);
  if (!s.ok()) {
    store.Rollback();
    return s;
  }
  RETURN_IF_ERROR(store.Commit());
  return e.id;
}

absl::Status UpdateCommitted(Store& store, const Envelope& e) {
  RETURN_IF_ERROR(store.Begin());
  absl::Status s = store.Update(e);
  if (!s.ok()) {
    store.Rollback();
    return s;
  }
  return store.Commit();
}

// The first column of the first row of `sql` on `db`, as text ("" when there is no row).
std::string QueryText(sqlite3* db, const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
    ADD_FAILURE() << "prepare " << sql << ": " << sqlite3_errmsg(db);
    return "";
  }
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    if (text != nullptr) out = text;
  }
  sqlite3_finalize(stmt);
  return out;
}

// Connections opened while a ConnectionCapture is alive, through SQLite's auto-extension hook
// (called for every new connection in the process). Lets a test look at the store's own writer
// connection, whose per-connection pragmas a separate connection cannot see.
std::vector<sqlite3*>* g_captured = nullptr;

int CaptureConnection(sqlite3* db, const char** /*error*/, const sqlite3_api_routines* /*api*/) {
  if (g_captured != nullptr) g_captured->push_back(db);
  return SQLITE_OK;
}

class ConnectionCapture {
 public:
  ConnectionCapture() {
    g_captured = &connections_;
    sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(&CaptureConnection));
  }
  ~ConnectionCapture() {
    sqlite3_cancel_auto_extension(reinterpret_cast<void (*)(void)>(&CaptureConnection));
    g_captured = nullptr;
  }
  ConnectionCapture(const ConnectionCapture&) = delete;
  ConnectionCapture& operator=(const ConnectionCapture&) = delete;

  // The captured read-write connections.
  std::vector<sqlite3*> Writers() const {
    std::vector<sqlite3*> out;
    for (sqlite3* db : connections_) {
      if (sqlite3_db_readonly(db, "main") == 0) out.push_back(db);
    }
    return out;
  }

 private:
  std::vector<sqlite3*> connections_;
};

// Helpers shared by the fixtures of every store.
class StoreHelpers {
 protected:
  virtual ~StoreHelpers() = default;
  virtual Store& store() = 0;

  // Inserts and commits; fails the test on error. Returns the row id.
  int64_t Put(const Envelope& e) {
    absl::StatusOr<int64_t> id = InsertCommitted(store(), e);
    EXPECT_THAT(id, IsOk());
    return id.ok() ? *id : 0;
  }

  // Whether the writer finds the key (fails the test on error).
  bool WriterHas(const std::string& service, const std::string& message_id) {
    absl::StatusOr<std::optional<Envelope>> found =
        store().FindByKey(service, message_id, /*with_payload=*/false);
    EXPECT_THAT(found, IsOk());
    return found.ok() && found->has_value();
  }

  // Whether the read side finds the key (fails the test on error).
  bool ReaderHas(const std::string& service, const std::string& message_id) {
    absl::StatusOr<std::optional<Envelope>> found = store().Get(service, message_id);
    EXPECT_THAT(found, IsOk());
    return found.ok() && found->has_value();
  }

  // Every page of `query` (following the keys), as the envelopes' message ids in order.
  std::vector<std::string> ListAll(ListQuery query) {
    std::vector<std::string> ids;
    for (int pages = 0; pages < 100; ++pages) {
      absl::StatusOr<ListPage> page = store().List(query);
      EXPECT_THAT(page, IsOk());
      if (!page.ok() || page->envelopes.empty()) return ids;
      EXPECT_LE(page->envelopes.size(), static_cast<size_t>(query.limit));
      EXPECT_EQ(page->keys.size(), page->envelopes.size());
      for (const Envelope& e : page->envelopes) ids.push_back(e.message_id);
      query.after_time = page->keys.back().time;
      query.after_id = page->keys.back().id;
    }
    ADD_FAILURE() << "listing did not end";
    return ids;
  }

};

class SqliteStoreTest : public ::testing::Test, public StoreHelpers {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty());
    data_dir_ = dir_ + "/data";
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  void TearDown() override {
    store_.reset();
    RemoveTree(dir_);
  }

  void OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(data_dir_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  void Reopen() {
    store_.reset();
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  std::string db_path() const { return data_dir_ + "/retryd.db"; }

  Store& store() override { return *store_; }

  std::string dir_;
  std::string data_dir_;
  std::unique_ptr<SqliteStore> store_;
};

// The fixture of the tests every store passes alike: one instance per store (StoreKind).
class StoreTest : public ::testing::TestWithParam<testing::StoreKind>, public StoreHelpers {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<testing::StoreLocation> where = testing::NewStoreLocation(GetParam());
    ASSERT_THAT(where, IsOk());
    where_ = *where;
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  void TearDown() override {
    store_.reset();
    testing::RemoveStoreLocation(where_);
  }

  void OpenStore() {
    absl::StatusOr<std::unique_ptr<Store>> store = testing::OpenStore(where_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }

  void Reopen() {
    store_.reset();
    ASSERT_NO_FATAL_FAILURE(OpenStore());
  }

  Store& store() override { return *store_; }

  testing::StoreLocation where_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, testing::AllStoreKinds(), testing::StoreKindName);

// ---- Open ----

TEST_F(SqliteStoreTest, OpenCreatesDataDirAndDatabaseFile) {
  const std::string nested = dir_ + "/a/b/c";
  ASSERT_FALSE(std::filesystem::exists(nested));

  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(nested);
  ASSERT_THAT(store, IsOk());

  EXPECT_EQ((*store)->path(), nested + "/retryd.db");
  EXPECT_TRUE(std::filesystem::is_regular_file(nested + "/retryd.db"));
}

TEST_F(SqliteStoreTest, OpenFailsWhenDataDirIsAFile) {
  const std::string file = dir_ + "/not-a-dir";
  testing::WriteFile(file, "x");

  EXPECT_THAT(SqliteStore::Open(file),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot create data dir")));
}

TEST_F(SqliteStoreTest, DatabaseIsInWalModeWithCurrentSchemaVersion) {
  absl::StatusOr<std::unique_ptr<sqlite::Database>> other =
      sqlite::Database::Open(db_path(), /*read_only=*/true);
  ASSERT_THAT(other, IsOk());

  EXPECT_EQ(QueryText((*other)->raw(), "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(QueryText((*other)->raw(), "PRAGMA user_version"),
            std::to_string(SqliteStore::kSchemaVersion));
}

TEST_F(SqliteStoreTest, WriterConnectionCommitsWithoutWaitingForTheDiskAndUsesForeignKeys) {
  store_.reset();
  ConnectionCapture capture;
  ASSERT_NO_FATAL_FAILURE(OpenStore());

  const std::vector<sqlite3*> writers = capture.Writers();
  ASSERT_EQ(writers.size(), 1u);
  EXPECT_EQ(QueryText(writers[0], "PRAGMA journal_mode"), "wal");
  // 1 = NORMAL: COMMIT writes the log, SyncLog() fsyncs it (checkpoints still sync).
  EXPECT_EQ(QueryText(writers[0], "PRAGMA synchronous"), "1");
  EXPECT_EQ(QueryText(writers[0], "PRAGMA foreign_keys"), "1");
}

TEST_P(StoreTest, ReopenKeepsData) {
  const Envelope e = FullEnvelope(EnvelopeState::kDeadLettered);
  const int64_t id = Put(e);

  ASSERT_NO_FATAL_FAILURE(Reopen());

  absl::StatusOr<std::optional<Envelope>> found = store_->FindById(id, /*with_payload=*/true);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, id);
  EXPECT_EQ((*found)->payload, e.payload);
  ExpectSameFields(e, **found);
}

TEST_P(StoreTest, ReopenKeepsServicesSoKeysStillResolve) {
  Put(MakeEnvelope("svc-a", "m1", EnvelopeState::kScheduled, At(1)));

  ASSERT_NO_FATAL_FAILURE(Reopen());

  EXPECT_TRUE(WriterHas("svc-a", "m1"));
  Envelope dup = MakeEnvelope("svc-a", "m1", EnvelopeState::kScheduled, At(2));
  EXPECT_THAT(InsertCommitted(*store_, dup), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(InsertCommitted(*store_, MakeEnvelope("svc-a", "m2", EnvelopeState::kScheduled,
                                                    At(3))),
              IsOk());
}

TEST_F(SqliteStoreTest, OpenRejectsNewerSchemaVersion) {
  store_.reset();
  {
    absl::StatusOr<std::unique_ptr<sqlite::Database>> other =
        sqlite::Database::Open(db_path(), /*read_only=*/false);
    ASSERT_THAT(other, IsOk());
    ASSERT_THAT((*other)->Exec(absl::StrCat("PRAGMA user_version = ",
                                            SqliteStore::kSchemaVersion + 1)),
                IsOk());
  }

  EXPECT_THAT(SqliteStore::Open(data_dir_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("newer")));
}

// ---- Insert / Find ----

class SqliteStoreRoundTripTest : public SqliteStoreTest,
                                 public ::testing::WithParamInterface<EnvelopeState> {};

TEST_P(SqliteStoreRoundTripTest, EveryFieldRoundTripsWithPayload) {
  Envelope e = FullEnvelope(GetParam());
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->Insert(&e), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  EXPECT_GT(e.id, 0);

  absl::StatusOr<std::optional<Envelope>> by_key =
      store_->FindByKey(e.service, e.message_id, /*with_payload=*/true);
  ASSERT_THAT(by_key, IsOk());
  ASSERT_TRUE(by_key->has_value());
  EXPECT_EQ((*by_key)->id, e.id);
  EXPECT_EQ((*by_key)->payload, e.payload);
  EXPECT_EQ((*by_key)->payload.size(), 10u);
  ExpectSameFields(e, **by_key);

  absl::StatusOr<std::optional<Envelope>> by_id = store_->FindById(e.id, /*with_payload=*/true);
  ASSERT_THAT(by_id, IsOk());
  ASSERT_TRUE(by_id->has_value());
  EXPECT_EQ((*by_id)->id, e.id);
  EXPECT_EQ((*by_id)->payload, e.payload);
  ExpectSameFields(e, **by_id);

  absl::StatusOr<std::optional<Envelope>> read = store_->Get(e.service, e.message_id);
  ASSERT_THAT(read, IsOk());
  ASSERT_TRUE(read->has_value());
  EXPECT_EQ((*read)->id, e.id);
  EXPECT_EQ((*read)->payload, e.payload);
  ExpectSameFields(e, **read);
}

TEST_P(SqliteStoreRoundTripTest, FindWithoutPayloadLeavesItEmpty) {
  const Envelope e = FullEnvelope(GetParam());
  const int64_t id = Put(e);

  absl::StatusOr<std::optional<Envelope>> by_key =
      store_->FindByKey(e.service, e.message_id, /*with_payload=*/false);
  ASSERT_THAT(by_key, IsOk());
  ASSERT_TRUE(by_key->has_value());
  EXPECT_EQ((*by_key)->id, id);
  EXPECT_THAT((*by_key)->payload, IsEmpty());
  ExpectSameFields(e, **by_key);

  absl::StatusOr<std::optional<Envelope>> by_id = store_->FindById(id, /*with_payload=*/false);
  ASSERT_THAT(by_id, IsOk());
  ASSERT_TRUE(by_id->has_value());
  EXPECT_THAT((*by_id)->payload, IsEmpty());
  ExpectSameFields(e, **by_id);
}

INSTANTIATE_TEST_SUITE_P(AllStates, SqliteStoreRoundTripTest,
                         ::testing::Values(EnvelopeState::kScheduled, EnvelopeState::kLeased,
                                           EnvelopeState::kDeadLettered,
                                           EnvelopeState::kSucceeded),
                         [](const ::testing::TestParamInfo<EnvelopeState>& info) {
                           switch (info.param) {
                             case EnvelopeState::kScheduled:
                               return std::string("Scheduled");
                             case EnvelopeState::kLeased:
                               return std::string("Leased");
                             case EnvelopeState::kDeadLettered:
                               return std::string("DeadLettered");
                             default:
                               return std::string("Succeeded");
                           }
                         });

TEST_P(StoreTest, DefaultEnvelopeWithEmptyPayloadRoundTrips) {
  Envelope e;
  e.service = "svc";
  e.message_id = "bare";
  e.state = EnvelopeState::kScheduled;
  e.next_retry_at = At(42);
  const int64_t id = Put(e);

  absl::StatusOr<std::optional<Envelope>> found = store_->FindById(id, /*with_payload=*/true);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_THAT((*found)->payload, IsEmpty());
  EXPECT_THAT((*found)->headers, IsEmpty());
  EXPECT_THAT((*found)->history, IsEmpty());
  EXPECT_EQ((*found)->last_error.retry_after, absl::ZeroDuration());
  ExpectSameFields(e, **found);
}

TEST_P(StoreTest, FindReturnsNulloptWhenAbsent) {
  const int64_t id = Put(MakeEnvelope("svc", "m1", EnvelopeState::kScheduled, At(1)));

  absl::StatusOr<std::optional<Envelope>> unknown_service =
      store_->FindByKey("other", "m1", /*with_payload=*/true);
  ASSERT_THAT(unknown_service, IsOk());
  EXPECT_FALSE(unknown_service->has_value());

  absl::StatusOr<std::optional<Envelope>> unknown_message =
      store_->FindByKey("svc", "m2", /*with_payload=*/false);
  ASSERT_THAT(unknown_message, IsOk());
  EXPECT_FALSE(unknown_message->has_value());

  absl::StatusOr<std::optional<Envelope>> unknown_id =
      store_->FindById(id + 1000, /*with_payload=*/true);
  ASSERT_THAT(unknown_id, IsOk());
  EXPECT_FALSE(unknown_id->has_value());

  absl::StatusOr<std::optional<Envelope>> read = store_->Get("svc", "m2");
  ASSERT_THAT(read, IsOk());
  EXPECT_FALSE(read->has_value());
}

TEST_P(StoreTest, InsertAssignsDistinctIds) {
  const int64_t a = Put(MakeEnvelope("svc", "m1", EnvelopeState::kScheduled, At(1)));
  const int64_t b = Put(MakeEnvelope("svc", "m2", EnvelopeState::kScheduled, At(1)));
  const int64_t c = Put(MakeEnvelope("other", "m1", EnvelopeState::kScheduled, At(1)));

  EXPECT_GT(a, 0);
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
}

TEST_P(StoreTest, InsertOfTakenKeyIsAlreadyExistsAndKeepsTheOriginal) {
  const Envelope original = MakeEnvelope("svc", "m1", EnvelopeState::kScheduled, At(1));
  const int64_t id = Put(original);

  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope dup = MakeEnvelope("svc", "m1", EnvelopeState::kDeadLettered, At(9));
  dup.payload = "different";
  EXPECT_THAT(store_->Insert(&dup), StatusIs(absl::StatusCode::kAlreadyExists));
  // The batch is still usable after the rejected statement.
  Envelope other = MakeEnvelope("svc", "m2", EnvelopeState::kScheduled, At(2));
  EXPECT_THAT(store_->Insert(&other), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());

  absl::StatusOr<std::optional<Envelope>> found =
      store_->FindByKey("svc", "m1", /*with_payload=*/true);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->id, id);
  EXPECT_EQ((*found)->state, EnvelopeState::kScheduled);
  EXPECT_EQ((*found)->payload, original.payload);
  EXPECT_TRUE(WriterHas("svc", "m2"));
}

TEST_P(StoreTest, SameMessageIdUnderAnotherServiceIsSeparate) {
  Envelope a = MakeEnvelope("svc-a", "shared-id", EnvelopeState::kScheduled, At(1));
  Envelope b = MakeEnvelope("svc-b", "shared-id", EnvelopeState::kDeadLettered, At(2));
  b.payload = "b's payload";
  const int64_t id_a = Put(a);
  const int64_t id_b = Put(b);
  ASSERT_NE(id_a, id_b);

  absl::StatusOr<std::optional<Envelope>> found_a =
      store_->FindByKey("svc-a", "shared-id", /*with_payload=*/true);
  absl::StatusOr<std::optional<Envelope>> found_b =
      store_->FindByKey("svc-b", "shared-id", /*with_payload=*/true);
  ASSERT_THAT(found_a, IsOk());
  ASSERT_THAT(found_b, IsOk());
  ASSERT_TRUE(found_a->has_value());
  ASSERT_TRUE(found_b->has_value());
  EXPECT_EQ((*found_a)->id, id_a);
  EXPECT_EQ((*found_a)->state, EnvelopeState::kScheduled);
  EXPECT_EQ((*found_a)->payload, a.payload);
  EXPECT_EQ((*found_b)->id, id_b);
  EXPECT_EQ((*found_b)->state, EnvelopeState::kDeadLettered);
  EXPECT_EQ((*found_b)->payload, b.payload);
}

// ---- Update / UpdateDroppingPayload ----

TEST_P(StoreTest, UpdateRewritesFieldsButKeepsPayload) {
  const Envelope original = FullEnvelope(EnvelopeState::kLeased);
  const int64_t id = Put(original);

  Envelope changed = original;
  changed.id = id;
  changed.payload = "must not be written";
  changed.trace_id = "trace-2";
  changed.attempt = 5;
  changed.first_seen_at = At(-7);
  changed.content_type = "text/plain";
  changed.schema_version = "v4";
  changed.source = "other.queue";
  changed.headers = {{"x-new", "1"}};
  changed.state = EnvelopeState::kDeadLettered;
  changed.max_attempts = 5;
  changed.lease_token.clear();
  changed.lease_expires_at = absl::InfinitePast();
  changed.dead_letter_reason = DeadLetterReason::kNonRetryable;
  changed.dead_lettered_at = At(9000001);
  changed.last_error = Failure{"BAD_REQUEST", ErrorClass::kPermanent, "invalid body", 400,
                               absl::ZeroDuration()};
  AttemptRecord r;
  r.attempt = 5;
  r.failed_at = At(9000000);
  r.error_code = "BAD_REQUEST";
  r.error_class = ErrorClass::kPermanent;
  r.message = "invalid body";
  changed.history.push_back(r);
  changed.last_decision = DecisionKind::kDeadLettered;
  changed.last_error_class = ErrorClass::kPermanent;
  changed.updated_at = At(9000002);
  ASSERT_THAT(UpdateCommitted(*store_, changed), IsOk());

  absl::StatusOr<std::optional<Envelope>> found = store_->FindById(id, /*with_payload=*/true);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->payload, original.payload);
  ExpectSameFields(changed, **found);
}

TEST_P(StoreTest, UpdateOfMissingIdIsNotFound) {
  Envelope e = MakeEnvelope("svc", "m1", EnvelopeState::kScheduled, At(1));
  e.id = Put(e);

  Envelope missing = e;
  missing.id = e.id + 1000;
  ASSERT_THAT(store_->Begin(), IsOk());
  EXPECT_THAT(store_->Update(missing), StatusIs(absl::StatusCode::kNotFound));
  ASSERT_THAT(store_->Commit(), IsOk());
}

TEST_P(StoreTest, UpdateDroppingPayloadRewritesTheFieldsAndEmptiesOnlyThatPayload) {
  Envelope e = FullEnvelope(EnvelopeState::kLeased);
  const int64_t id = Put(e);
  const int64_t other = Put(MakeEnvelope("billing", "keep", EnvelopeState::kScheduled, At(1)));

  e.id = id;
  e.state = EnvelopeState::kSucceeded;
  e.completed_at = At(9);
  e.updated_at = At(9);
  e.lease_token.clear();
  e.lease_expires_at = absl::InfinitePast();  // The stored time follows the state.
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->UpdateDroppingPayload(e), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());

  absl::StatusOr<std::optional<Envelope>> found = store_->FindById(id, /*with_payload=*/true);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_THAT((*found)->payload, IsEmpty());
  EXPECT_EQ((*found)->state, EnvelopeState::kSucceeded);
  EXPECT_EQ((*found)->completed_at, At(9));
  ExpectSameFields(e, **found);

  absl::StatusOr<std::optional<Envelope>> kept = store_->FindById(other, /*with_payload=*/true);
  ASSERT_THAT(kept, IsOk());
  ASSERT_TRUE(kept->has_value());
  EXPECT_EQ((*kept)->payload, "payload-keep");
}

// ---- Batches and operations ----

TEST_P(StoreTest, CommittedBatchSurvivesReopen) {
  ASSERT_THAT(store_->Begin(), IsOk());
  for (const char* id : {"m1", "m2", "m3"}) {
    Envelope e = MakeEnvelope("svc", id, EnvelopeState::kScheduled, At(1));
    ASSERT_THAT(store_->Insert(&e), IsOk());
  }
  ASSERT_THAT(store_->Commit(), IsOk());

  ASSERT_NO_FATAL_FAILURE(Reopen());

  EXPECT_TRUE(WriterHas("svc", "m1"));
  EXPECT_TRUE(WriterHas("svc", "m2"));
  EXPECT_TRUE(WriterHas("svc", "m3"));
}

TEST_P(StoreTest, RolledBackBatchLeavesNothing) {
  const int64_t kept = Put(MakeEnvelope("svc", "kept", EnvelopeState::kScheduled, At(1)));

  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope fresh = MakeEnvelope("new-svc", "m1", EnvelopeState::kScheduled, At(2));
  ASSERT_THAT(store_->Insert(&fresh), IsOk());
  Envelope changed = MakeEnvelope("svc", "kept", EnvelopeState::kDeadLettered, At(3));
  changed.id = kept;
  ASSERT_THAT(store_->Update(changed), IsOk());
  store_->Rollback();

  EXPECT_FALSE(WriterHas("new-svc", "m1"));
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_FALSE(WriterHas("new-svc", "m1"));
  absl::StatusOr<std::optional<Envelope>> found = store_->FindById(kept, /*with_payload=*/false);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->state, EnvelopeState::kScheduled);
  // The service row inserted by the abandoned batch is gone too.
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].service, "svc");
}

TEST_P(StoreTest, ServiceFirstSeenInRolledBackBatchCanBeUsedAgain) {
  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope e = MakeEnvelope("new-svc", "m1", EnvelopeState::kScheduled, At(1));
  ASSERT_THAT(store_->Insert(&e), IsOk());
  store_->Rollback();

  EXPECT_THAT(InsertCommitted(*store_, MakeEnvelope("new-svc", "m1", EnvelopeState::kScheduled,
                                                    At(1))),
              IsOk());
  EXPECT_TRUE(ReaderHas("new-svc", "m1"));
}

TEST_P(StoreTest, EndOpWithoutKeepUndoesOnlyThatOperation) {
  const int64_t existing = Put(MakeEnvelope("svc", "existing", EnvelopeState::kScheduled, At(1)));

  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope a = MakeEnvelope("svc", "a", EnvelopeState::kScheduled, At(2));
  ASSERT_THAT(store_->Insert(&a), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/true), IsOk());

  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope b = MakeEnvelope("svc", "b", EnvelopeState::kScheduled, At(3));
  ASSERT_THAT(store_->Insert(&b), IsOk());
  Envelope changed = MakeEnvelope("svc", "existing", EnvelopeState::kDeadLettered, At(4));
  changed.id = existing;
  ASSERT_THAT(store_->Update(changed), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/false), IsOk());
  EXPECT_FALSE(WriterHas("svc", "b"));

  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope c = MakeEnvelope("svc", "c", EnvelopeState::kScheduled, At(5));
  ASSERT_THAT(store_->Insert(&c), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/true), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());

  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_TRUE(WriterHas("svc", "a"));
  EXPECT_FALSE(WriterHas("svc", "b"));
  EXPECT_TRUE(WriterHas("svc", "c"));
  absl::StatusOr<std::optional<Envelope>> found =
      store_->FindById(existing, /*with_payload=*/false);
  ASSERT_THAT(found, IsOk());
  ASSERT_TRUE(found->has_value());
  EXPECT_EQ((*found)->state, EnvelopeState::kScheduled);
}

// An undone operation that was the first to use a service must not leave that service behind in
// the writer's cache: later operations of the same batch use the service again.
TEST_P(StoreTest, ServiceFirstSeenInUndoneOperationCanBeUsedAgain) {
  ASSERT_THAT(store_->Begin(), IsOk());
  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope first = MakeEnvelope("new-svc", "m1", EnvelopeState::kScheduled, At(1));
  ASSERT_THAT(store_->Insert(&first), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/false), IsOk());

  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope other = MakeEnvelope("other-svc", "m1", EnvelopeState::kLeased, At(2));
  ASSERT_THAT(store_->Insert(&other), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/true), IsOk());

  ASSERT_THAT(store_->BeginOp(), IsOk());
  Envelope again = MakeEnvelope("new-svc", "m2", EnvelopeState::kScheduled, At(3));
  ASSERT_THAT(store_->Insert(&again), IsOk());
  ASSERT_THAT(store_->EndOp(/*keep=*/true), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());

  absl::StatusOr<std::optional<Envelope>> found_again = store_->Get("new-svc", "m2");
  ASSERT_THAT(found_again, IsOk());
  ASSERT_TRUE(found_again->has_value());
  EXPECT_EQ((*found_again)->service, "new-svc");
  absl::StatusOr<std::optional<Envelope>> found_other = store_->Get("other-svc", "m1");
  ASSERT_THAT(found_other, IsOk());
  ASSERT_TRUE(found_other->has_value());
  EXPECT_EQ((*found_other)->service, "other-svc");

  std::map<int64_t, std::string> live;
  ASSERT_THAT(store_->ForEachLive([&](const LiveRow& row) { live[row.id] = row.service; }),
              IsOk());
  EXPECT_THAT(live, UnorderedElementsAre(std::pair<const int64_t, std::string>(other.id,
                                                                                "other-svc"),
                                         std::pair<const int64_t, std::string>(again.id,
                                                                                "new-svc")));
}

// ---- Read side ----

TEST_P(StoreTest, ReadSideSeesCommittedDataOnly) {
  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope e = MakeEnvelope("svc", "m1", EnvelopeState::kDeadLettered, At(1));
  ASSERT_THAT(store_->Insert(&e), IsOk());

  EXPECT_TRUE(WriterHas("svc", "m1"));
  EXPECT_FALSE(ReaderHas("svc", "m1"));
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  EXPECT_THAT(*counts, IsEmpty());
  absl::StatusOr<ListPage> page = store_->List(ListQuery{});
  ASSERT_THAT(page, IsOk());
  EXPECT_THAT(page->envelopes, IsEmpty());

  ASSERT_THAT(store_->Commit(), IsOk());

  EXPECT_TRUE(ReaderHas("svc", "m1"));
  counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].dead, 1);
  page = store_->List(ListQuery{});
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->envelopes.size(), 1u);
  EXPECT_EQ(page->envelopes[0].id, e.id);
}

TEST_P(StoreTest, ReadSideSeesUpdateOnlyAfterCommit) {
  Envelope e = MakeEnvelope("svc", "m1", EnvelopeState::kScheduled, At(1));
  e.id = Put(e);

  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope dead = MakeEnvelope("svc", "m1", EnvelopeState::kDeadLettered, At(2));
  dead.id = e.id;
  ASSERT_THAT(store_->Update(dead), IsOk());

  absl::StatusOr<std::optional<Envelope>> before = store_->Get("svc", "m1");
  ASSERT_THAT(before, IsOk());
  ASSERT_TRUE(before->has_value());
  EXPECT_EQ((*before)->state, EnvelopeState::kScheduled);
  EXPECT_EQ((*before)->next_retry_at, At(1));

  ASSERT_THAT(store_->Commit(), IsOk());

  absl::StatusOr<std::optional<Envelope>> after = store_->Get("svc", "m1");
  ASSERT_THAT(after, IsOk());
  ASSERT_TRUE(after->has_value());
  EXPECT_EQ((*after)->state, EnvelopeState::kDeadLettered);
  EXPECT_EQ((*after)->dead_lettered_at, At(2));
  EXPECT_EQ((*after)->next_retry_at, absl::InfinitePast());
}

// ---- ForEachLive ----

TEST_P(StoreTest, ForEachLiveReturnsExactlyScheduledAndLeasedRows) {
  const int64_t s1 = Put(MakeEnvelope("svc-a", "s1", EnvelopeState::kScheduled, At(10)));
  const int64_t s2 = Put(MakeEnvelope("svc-b", "s2", EnvelopeState::kScheduled, At(20)));
  const int64_t l1 = Put(MakeEnvelope("svc-a", "l1", EnvelopeState::kLeased, At(30)));
  Put(MakeEnvelope("svc-a", "d1", EnvelopeState::kDeadLettered, At(40)));
  Put(MakeEnvelope("svc-b", "ok1", EnvelopeState::kSucceeded, At(50)));
  ASSERT_NO_FATAL_FAILURE(Reopen());  // The rebuild happens on a freshly opened store.

  std::map<int64_t, LiveRow> rows;
  ASSERT_THAT(store_->ForEachLive([&](const LiveRow& row) {
    EXPECT_TRUE(rows.emplace(row.id, row).second) << "row " << row.id << " seen twice";
  }),
              IsOk());

  ASSERT_EQ(rows.size(), 3u);
  ASSERT_EQ(rows.count(s1), 1u);
  ASSERT_EQ(rows.count(s2), 1u);
  ASSERT_EQ(rows.count(l1), 1u);
  EXPECT_EQ(rows[s1].service, "svc-a");
  EXPECT_EQ(rows[s1].state, EnvelopeState::kScheduled);
  EXPECT_EQ(rows[s1].at, At(10));
  EXPECT_EQ(rows[s2].service, "svc-b");
  EXPECT_EQ(rows[s2].state, EnvelopeState::kScheduled);
  EXPECT_EQ(rows[s2].at, At(20));
  EXPECT_EQ(rows[l1].service, "svc-a");
  EXPECT_EQ(rows[l1].state, EnvelopeState::kLeased);
  EXPECT_EQ(rows[l1].at, At(30));
}

// Schema 4 had one (state, service_id, sort_at) index over every row; 5 moves scheduled rows to
// their own (service_id, id) index. An upgraded store rebuilds the same schedule and counts.
TEST_F(SqliteStoreTest, UpgradeFromSchemaFourMovesScheduledRowsToTheirOwnIndex) {
  const int64_t s1 = Put(MakeEnvelope("svc-a", "s1", EnvelopeState::kScheduled, At(10)));
  const int64_t l1 = Put(MakeEnvelope("svc-a", "l1", EnvelopeState::kLeased, At(30)));
  Put(MakeEnvelope("svc-a", "d1", EnvelopeState::kDeadLettered, At(40)));
  store_.reset();
  {
    auto db = sqlite::Database::Open(db_path(), /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaFour), IsOk());
  }
  ASSERT_NO_FATAL_FAILURE(OpenStore());
  std::map<int64_t, EnvelopeState> live;
  ASSERT_THAT(store_->ForEachLive([&](const LiveRow& row) { live[row.id] = row.state; }), IsOk());
  EXPECT_EQ(live, (std::map<int64_t, EnvelopeState>{{s1, EnvelopeState::kScheduled},
                                                     {l1, EnvelopeState::kLeased}}));
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].scheduled, 1);
  EXPECT_EQ((*counts)[0].leased, 1);
  EXPECT_EQ((*counts)[0].dead, 1);
  auto db = sqlite::Database::Open(db_path(), /*read_only=*/true);
  ASSERT_THAT(db, IsOk());
  EXPECT_EQ(QueryText((*db)->raw(), "PRAGMA user_version"), absl::StrCat(SqliteStore::kSchemaVersion));
  EXPECT_THAT(QueryText((*db)->raw(),
                        "SELECT sql FROM sqlite_master WHERE name = 'envelopes_scheduled'"),
              HasSubstr("ON envelopes(service_id, id, sort_at, state)"));
}

// The queries on scheduled rows read the new index, not the table.
TEST_F(SqliteStoreTest, ScheduledRowsAreCountedAndListedFromTheirIndex) {
  auto db = sqlite::Database::Open(db_path(), /*read_only=*/true);
  ASSERT_THAT(db, IsOk());
  auto plan = [&](const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2((*db)->raw(), ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt,
                                 nullptr),
              SQLITE_OK);
    std::string details;
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      details += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      details += "; ";
    }
    sqlite3_finalize(stmt);
    return details;
  };
  EXPECT_THAT(plan("SELECT count(*) FROM envelopes WHERE state = 1 AND service_id = 1"),
              HasSubstr("COVERING INDEX envelopes_scheduled"));
  EXPECT_THAT(plan("SELECT id FROM envelopes WHERE state = 1 AND service_id = 1 "
                   "ORDER BY sort_at, id LIMIT 10"),
              HasSubstr("INDEX envelopes_scheduled"));
  EXPECT_THAT(plan("SELECT id, service_id, state, sort_at FROM envelopes WHERE state = 1"),
              HasSubstr("COVERING INDEX envelopes_scheduled"));
  EXPECT_THAT(plan("SELECT count(*) FROM envelopes WHERE state = 2 AND service_id = 1"),
              HasSubstr("COVERING INDEX envelopes_by_state"));
}

TEST_P(StoreTest, ForEachLiveOnEmptyStoreCallsNothing) {
  int calls = 0;
  ASSERT_THAT(store_->ForEachLive([&](const LiveRow&) { ++calls; }), IsOk());
  EXPECT_EQ(calls, 0);
}

// ---- CountByService ----

TEST_P(StoreTest, CountByServiceCountsEachStateAndOldestDeadLetter) {
  Put(MakeEnvelope("beta", "s1", EnvelopeState::kScheduled, At(1)));
  Put(MakeEnvelope("beta", "s2", EnvelopeState::kScheduled, At(2)));
  Put(MakeEnvelope("beta", "l1", EnvelopeState::kLeased, At(3)));
  Put(MakeEnvelope("beta", "d1", EnvelopeState::kDeadLettered, At(500)));
  Put(MakeEnvelope("beta", "d2", EnvelopeState::kDeadLettered, At(100)));
  Put(MakeEnvelope("beta", "d3", EnvelopeState::kDeadLettered, At(300)));
  Put(MakeEnvelope("beta", "ok", EnvelopeState::kSucceeded, At(1)));
  Put(MakeEnvelope("alpha", "l1", EnvelopeState::kLeased, At(4)));
  Put(MakeEnvelope("alpha", "d1", EnvelopeState::kDeadLettered, At(700)));
  Put(MakeEnvelope("gamma", "ok", EnvelopeState::kSucceeded, At(1)));

  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  ASSERT_EQ(counts->size(), 3u);

  const ServiceCounts& alpha = (*counts)[0];
  EXPECT_EQ(alpha.service, "alpha");
  EXPECT_EQ(alpha.scheduled, 0);
  EXPECT_EQ(alpha.leased, 1);
  EXPECT_EQ(alpha.dead, 1);
  EXPECT_EQ(alpha.oldest_dead_lettered_at, At(700));

  const ServiceCounts& beta = (*counts)[1];
  EXPECT_EQ(beta.service, "beta");
  EXPECT_EQ(beta.scheduled, 2);
  EXPECT_EQ(beta.leased, 1);
  EXPECT_EQ(beta.dead, 3);
  EXPECT_EQ(beta.oldest_dead_lettered_at, At(100));

  const ServiceCounts& gamma = (*counts)[2];
  EXPECT_EQ(gamma.service, "gamma");
  EXPECT_EQ(gamma.scheduled, 0);
  EXPECT_EQ(gamma.leased, 0);
  EXPECT_EQ(gamma.dead, 0);
  EXPECT_EQ(gamma.oldest_dead_lettered_at, absl::InfinitePast());
}

TEST_P(StoreTest, CountByServiceOnEmptyStoreIsEmpty) {
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_THAT(counts, IsOk());
  EXPECT_THAT(*counts, IsEmpty());
}

// ---- List ----

TEST_P(StoreTest, ListFiltersByState) {
  Put(MakeEnvelope("svc", "s1", EnvelopeState::kScheduled, At(1)));
  Put(MakeEnvelope("svc", "l1", EnvelopeState::kLeased, At(2)));
  Put(MakeEnvelope("svc", "d1", EnvelopeState::kDeadLettered, At(3)));
  Put(MakeEnvelope("svc", "d2", EnvelopeState::kDeadLettered, At(4)));
  Put(MakeEnvelope("svc", "ok", EnvelopeState::kSucceeded, At(5)));

  ListQuery q;
  q.state = EnvelopeState::kDeadLettered;
  EXPECT_THAT(ListAll(q), ElementsAre("d1", "d2"));
  q.state = EnvelopeState::kScheduled;
  EXPECT_THAT(ListAll(q), ElementsAre("s1"));
  q.state = EnvelopeState::kLeased;
  EXPECT_THAT(ListAll(q), ElementsAre("l1"));
  q.state = EnvelopeState::kSucceeded;
  EXPECT_THAT(ListAll(q), ElementsAre("ok"));
}

TEST_P(StoreTest, ListFiltersByService) {
  Put(MakeEnvelope("svc-a", "a1", EnvelopeState::kDeadLettered, At(1)));
  Put(MakeEnvelope("svc-b", "b1", EnvelopeState::kDeadLettered, At(2)));
  Put(MakeEnvelope("svc-a", "a2", EnvelopeState::kDeadLettered, At(3)));

  ListQuery q;
  q.filter.service = "svc-a";
  EXPECT_THAT(ListAll(q), ElementsAre("a1", "a2"));
  q.filter.service = "svc-b";
  EXPECT_THAT(ListAll(q), ElementsAre("b1"));
  q.filter.service = "unknown";
  EXPECT_THAT(ListAll(q), IsEmpty());
  q.filter.service.clear();
  EXPECT_THAT(ListAll(q), ElementsAre("a1", "b1", "a2"));
}

TEST_P(StoreTest, ListOrdersBySortTimeThenIdWithMatchingKeys) {
  // Inserted out of time order, with ties, so neither insertion order nor id order alone sorts.
  const int64_t late = Put(MakeEnvelope("svc", "late", EnvelopeState::kDeadLettered, At(300)));
  const int64_t tie1 = Put(MakeEnvelope("svc", "tie1", EnvelopeState::kDeadLettered, At(200)));
  const int64_t early = Put(MakeEnvelope("svc", "early", EnvelopeState::kDeadLettered, At(100)));
  const int64_t tie2 = Put(MakeEnvelope("svc", "tie2", EnvelopeState::kDeadLettered, At(200)));

  ListQuery q;
  q.limit = 10;
  absl::StatusOr<ListPage> page = store_->List(q);
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->envelopes.size(), 4u);
  ASSERT_EQ(page->keys.size(), 4u);
  const std::vector<int64_t> want_ids = {early, tie1, tie2, late};
  const std::vector<absl::Time> want_times = {At(100), At(200), At(200), At(300)};
  for (size_t i = 0; i < want_ids.size(); ++i) {
    SCOPED_TRACE(absl::StrCat("row ", i));
    EXPECT_EQ(page->envelopes[i].id, want_ids[i]);
    EXPECT_EQ(page->envelopes[i].dead_lettered_at, want_times[i]);
    EXPECT_EQ(page->keys[i].id, want_ids[i]);
    EXPECT_EQ(page->keys[i].time, want_times[i]);
    EXPECT_THAT(page->envelopes[i].payload, IsEmpty());
  }
}

TEST_P(StoreTest, ListUsesTheStatesOwnTime) {
  const int64_t s_late = Put(MakeEnvelope("svc", "s-late", EnvelopeState::kScheduled, At(20)));
  const int64_t s_early = Put(MakeEnvelope("svc", "s-early", EnvelopeState::kScheduled, At(10)));

  ListQuery q;
  q.state = EnvelopeState::kScheduled;
  absl::StatusOr<ListPage> page = store_->List(q);
  ASSERT_THAT(page, IsOk());
  ASSERT_EQ(page->keys.size(), 2u);
  EXPECT_EQ(page->keys[0].id, s_early);
  EXPECT_EQ(page->keys[0].time, At(10));
  EXPECT_EQ(page->keys[1].id, s_late);
  EXPECT_EQ(page->keys[1].time, At(20));
}

TEST_P(StoreTest, ListPagingVisitsEveryRowExactlyOnceAcrossEqualTimes) {
  // (message id, time) in insertion order; ties within and across page boundaries.
  const std::vector<std::pair<std::string, int64_t>> rows = {
      {"r0", 30}, {"r1", 10}, {"r2", 10}, {"r3", 20}, {"r4", 10}, {"r5", 30},
      {"r6", 20}, {"r7", 20}, {"r8", 40}, {"r9", 10}, {"r10", 30}};
  std::vector<std::pair<std::pair<int64_t, int64_t>, std::string>> expected;  // ((time, id), msg)
  for (const auto& [msg, t] : rows) {
    const int64_t id = Put(MakeEnvelope("svc", msg, EnvelopeState::kDeadLettered, At(t)));
    expected.push_back({{t, id}, msg});
  }
  // Another service's rows with the same times, which the service filter must skip.
  for (const auto& [msg, t] : rows) {
    Put(MakeEnvelope("noise", msg, EnvelopeState::kDeadLettered, At(t)));
  }
  std::sort(expected.begin(), expected.end());
  std::vector<std::string> want;
  for (const auto& [key, msg] : expected) want.push_back(msg);

  for (int limit : {1, 2, 3, 4, 11, 50}) {
    SCOPED_TRACE(absl::StrCat("limit ", limit));
    ListQuery q;
    q.filter.service = "svc";
    q.limit = limit;
    const std::vector<std::string> got = ListAll(q);
    EXPECT_EQ(got, want);
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()).size(), got.size());
  }
}

TEST_P(StoreTest, ListStartsStrictlyAfterTheGivenKey) {
  const int64_t a = Put(MakeEnvelope("svc", "a", EnvelopeState::kDeadLettered, At(10)));
  const int64_t b = Put(MakeEnvelope("svc", "b", EnvelopeState::kDeadLettered, At(10)));
  Put(MakeEnvelope("svc", "c", EnvelopeState::kDeadLettered, At(20)));
  ASSERT_LT(a, b);

  ListQuery q;
  q.after_time = At(10);
  q.after_id = a;
  EXPECT_THAT(ListAll(q), ElementsAre("b", "c"));
  q.after_id = b;
  EXPECT_THAT(ListAll(q), ElementsAre("c"));
  q.after_time = At(20);
  q.after_id = 0;
  EXPECT_THAT(ListAll(q), ElementsAre("c"));
  q.after_time = At(21);
  EXPECT_THAT(ListAll(q), IsEmpty());
}

// ---- DeleteSucceededBefore ----

TEST_P(StoreTest, DeleteSucceededBeforeDeletesOnlyOldSucceededRows) {
  Put(MakeEnvelope("svc", "old1", EnvelopeState::kSucceeded, At(10)));
  Put(MakeEnvelope("svc", "old2", EnvelopeState::kSucceeded, At(20)));
  Put(MakeEnvelope("other", "old3", EnvelopeState::kSucceeded, At(30)));
  Put(MakeEnvelope("svc", "at-cutoff", EnvelopeState::kSucceeded, At(100)));
  Put(MakeEnvelope("svc", "new", EnvelopeState::kSucceeded, At(200)));
  Put(MakeEnvelope("svc", "scheduled", EnvelopeState::kScheduled, At(1)));
  Put(MakeEnvelope("svc", "leased", EnvelopeState::kLeased, At(1)));
  Put(MakeEnvelope("svc", "dead", EnvelopeState::kDeadLettered, At(1)));

  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<int64_t> deleted = store_->DeleteSucceededBefore(At(100), /*limit=*/100);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 3);
  ASSERT_THAT(store_->Commit(), IsOk());

  EXPECT_FALSE(ReaderHas("svc", "old1"));
  EXPECT_FALSE(ReaderHas("svc", "old2"));
  EXPECT_FALSE(ReaderHas("other", "old3"));
  EXPECT_TRUE(ReaderHas("svc", "at-cutoff"));
  EXPECT_TRUE(ReaderHas("svc", "new"));
  EXPECT_TRUE(ReaderHas("svc", "scheduled"));
  EXPECT_TRUE(ReaderHas("svc", "leased"));
  EXPECT_TRUE(ReaderHas("svc", "dead"));

  // A deleted key is free again.
  EXPECT_THAT(InsertCommitted(*store_, MakeEnvelope("svc", "old1", EnvelopeState::kScheduled,
                                                    At(1))),
              IsOk());
}

TEST_P(StoreTest, DeleteSucceededBeforeHonorsTheLimit) {
  for (int i = 0; i < 5; ++i) {
    Put(MakeEnvelope("svc", absl::StrCat("ok", i), EnvelopeState::kSucceeded, At(i)));
  }

  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<int64_t> first = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(first, IsOk());
  EXPECT_EQ(*first, 2);
  absl::StatusOr<int64_t> second = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(*second, 2);
  absl::StatusOr<int64_t> third = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(third, IsOk());
  EXPECT_EQ(*third, 1);
  absl::StatusOr<int64_t> none = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none, 0);
  ASSERT_THAT(store_->Commit(), IsOk());

  ListQuery q;
  q.state = EnvelopeState::kSucceeded;
  EXPECT_THAT(ListAll(q), IsEmpty());
}

TEST_P(StoreTest, DeleteSucceededBeforeReachesEveryServicePastTheYoungRowsOfAnother) {
  // "a" comes first in the index; its rows are all inside the window.
  for (int i = 0; i < 50; ++i) {
    Put(MakeEnvelope("a", absl::StrCat("young", i), EnvelopeState::kSucceeded, At(1000 + i)));
  }
  Put(MakeEnvelope("b", "old1", EnvelopeState::kSucceeded, At(10)));
  Put(MakeEnvelope("b", "old2", EnvelopeState::kSucceeded, At(20)));
  Put(MakeEnvelope("c", "old3", EnvelopeState::kSucceeded, At(30)));

  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<int64_t> deleted = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 2);
  deleted = store_->DeleteSucceededBefore(At(1000), /*limit=*/2);
  ASSERT_THAT(deleted, IsOk());
  EXPECT_EQ(*deleted, 1);
  ASSERT_THAT(store_->Commit(), IsOk());
  EXPECT_FALSE(ReaderHas("b", "old1"));
  EXPECT_FALSE(ReaderHas("b", "old2"));
  EXPECT_FALSE(ReaderHas("c", "old3"));
  EXPECT_TRUE(ReaderHas("a", "young0"));
}

TEST_P(StoreTest, OldestSucceededAtIsTheEarliestCompletionOfAnyService) {
  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<absl::Time> none = store_->OldestSucceededAt();
  ASSERT_THAT(none, IsOk());
  EXPECT_EQ(*none, absl::InfiniteFuture());
  ASSERT_THAT(store_->Commit(), IsOk());

  Put(MakeEnvelope("a", "late", EnvelopeState::kSucceeded, At(300)));
  Put(MakeEnvelope("b", "early", EnvelopeState::kSucceeded, At(200)));
  Put(MakeEnvelope("b", "later", EnvelopeState::kSucceeded, At(400)));
  Put(MakeEnvelope("a", "dead", EnvelopeState::kDeadLettered, At(1)));
  Put(MakeEnvelope("a", "leased", EnvelopeState::kLeased, At(2)));
  Put(MakeEnvelope("c", "scheduled", EnvelopeState::kScheduled, At(3)));

  ASSERT_THAT(store_->Begin(), IsOk());
  absl::StatusOr<absl::Time> oldest = store_->OldestSucceededAt();
  ASSERT_THAT(oldest, IsOk());
  EXPECT_EQ(*oldest, At(200));
  // Inside the batch it sees the batch's own deletes.
  ASSERT_THAT(store_->DeleteSucceededBefore(At(250), 10), IsOk());
  oldest = store_->OldestSucceededAt();
  ASSERT_THAT(oldest, IsOk());
  EXPECT_EQ(*oldest, At(300));
  ASSERT_THAT(store_->Commit(), IsOk());
}

TEST_F(SqliteStoreTest, ForgettingSucceededRowsSeeksEachServiceAndScansNoEnvelopes) {
  auto db = sqlite::Database::Open(db_path(), /*read_only=*/true);
  ASSERT_THAT(db, IsOk());
  auto plan = [&](const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2((*db)->raw(), ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt,
                                 nullptr),
              SQLITE_OK)
        << sqlite3_errmsg((*db)->raw());
    std::string details;
    while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
      details += reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      details += "; ";
    }
    sqlite3_finalize(stmt);
    return details;
  };
  // The services table is the outer loop; in each service only the expired range is read
  // (a seek on the state alone would read every succeeded row of the first services).
  const std::string deletes = plan(SqliteStore::DeleteSucceededSqlForTest());
  EXPECT_THAT(deletes, HasSubstr("SCAN s; "));
  EXPECT_THAT(deletes, HasSubstr("SEARCH e USING COVERING INDEX envelopes_by_state "
                                 "(state=? AND service_id=? AND sort_at<?)"));
  EXPECT_THAT(deletes, HasSubstr("SEARCH envelopes USING INTEGER PRIMARY KEY (rowid=?)"));
  EXPECT_THAT(deletes, Not(HasSubstr("SCAN e")));
  EXPECT_THAT(deletes, Not(HasSubstr("SCAN envelopes")));
  const std::string oldest = plan(SqliteStore::OldestSucceededSqlForTest());
  EXPECT_THAT(oldest, HasSubstr("SEARCH e USING COVERING INDEX envelopes_by_state "
                                "(state=? AND service_id=?)"));
  EXPECT_THAT(oldest, Not(HasSubstr("SCAN e")));
  EXPECT_THAT(oldest, Not(HasSubstr("TEMP B-TREE")));
}

}  // namespace
}  // namespace retryd

namespace retryd {
namespace {

// The inode of the file `path` names; 0 if it cannot be read.
ino_t Inode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

// The distinct inodes of the files this process has open under `path` (every connection's
// handle of the WAL, SyncLog's connection's among them), a deleted file of that name included
// (a handle left on a log that was replaced shows up as a second inode).
std::vector<ino_t> OpenInodes(const std::string& path) {
  std::vector<ino_t> inodes;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec || (target != path && target != path + " (deleted)")) continue;
    const int fd = std::stoi(entry.path().filename().string());
    struct stat st;
    if (fstat(fd, &st) == 0 &&
        std::find(inodes.begin(), inodes.end(), st.st_ino) == inodes.end()) {
      inodes.push_back(st.st_ino);
    }
  }
  return inodes;
}

// Commits `n` envelopes with 4 KB payloads (a WAL page or more each), one per transaction.
void CommitMany(Store& store, const std::string& prefix, int n) {
  const std::string payload(4096, 'p');
  for (int i = 0; i < n; ++i) {
    Envelope e = MakeEnvelope("wal", prefix + std::to_string(i), EnvelopeState::kScheduled, At(i));
    e.payload = payload;
    ASSERT_THAT(store.Begin(), IsOk());
    ASSERT_THAT(store.Insert(&e), IsOk());
    ASSERT_THAT(store.Commit(), IsOk());
  }
}

TEST_F(SqliteStoreTest, TheWriterNeverCheckpointsSoTheWalGrowsUntilACheckpoint) {
  ASSERT_NO_FATAL_FAILURE(CommitMany(*store_, "m", 600));
  // SQLite's default auto-checkpoint would have started the log over at 1000 pages.
  absl::StatusOr<Store::LogPages> pages = store_->CheckpointWal();
  ASSERT_THAT(pages, IsOk());
  EXPECT_GE(pages->total, 1200);
  EXPECT_EQ(pages->copied, pages->total);
}

// A checkpoint that copied everything, then a commit: the log starts over (the engine pauses its
// writer for exactly this, now and then). The WAL stays the file SyncLog fsyncs (same inode, the
// one SyncLog has open), which is what makes SyncLog's fdatasync cover the writer's commits.
TEST_F(SqliteStoreTest, ACompleteCheckpointBetweenCommitsStartsTheWalOverInTheSameFile) {
  const std::string wal = std::filesystem::canonical(db_path() + "-wal").string();
  const ino_t wal_inode = Inode(wal);
  ASSERT_NE(wal_inode, 0u);
  EXPECT_EQ(OpenInodes(wal), std::vector<ino_t>{wal_inode});
  for (int round = 0; round < 5; ++round) {
    ASSERT_NO_FATAL_FAILURE(CommitMany(*store_, absl::StrCat("r", round, "-"), 300));
    absl::StatusOr<Store::LogPages> before = store_->CheckpointWal();
    ASSERT_THAT(before, IsOk());
    EXPECT_GE(before->total, 600);
    EXPECT_EQ(before->copied, before->total);
    ASSERT_NO_FATAL_FAILURE(CommitMany(*store_, absl::StrCat("s", round, "-"), 1));
    absl::StatusOr<Store::LogPages> after = store_->CheckpointWal();
    ASSERT_THAT(after, IsOk());
    EXPECT_LE(after->total, 10) << "round " << round << ": the log did not start over";
  }
  // One round is about 7 MB of WAL; five without the restarts would be 33 MB.
  EXPECT_LT(std::filesystem::file_size(wal), 12u << 20);
  EXPECT_EQ(Inode(wal), wal_inode);
  EXPECT_EQ(OpenInodes(wal), std::vector<ino_t>{wal_inode});
  EXPECT_THAT(store_->SyncLog(), IsOk());
}

}  // namespace
}  // namespace retryd
