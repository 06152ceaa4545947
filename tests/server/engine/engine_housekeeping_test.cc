// Housekeeping over a real SQLite store and a fake clock: succeeded envelopes are forgotten once
// the dedupe window has passed, at the pace they succeeded (far above the 1 000 a minute that
// one pass a minute used to allow), a slice per batch, also on an idle server and after a
// restart; those still inside the window are kept, and a duplicate of one is still answered
// duplicate = true, while a duplicate of a forgotten one starts a new life.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/engine/engine_observer.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "server/util/random.h"
#include "tests/testing/engine_requests.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/forwarding_store.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

constexpr absl::Duration kWindow = absl::Seconds(10);

// A SqliteStore that counts the succeeded envelopes each transaction deleted.
class CountingStore final : public testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;

  absl::Status Begin() override {
    deleted_in_txn_ = 0;
    return ForwardingStore::Begin();
  }
  absl::StatusOr<int64_t> DeleteSucceededBefore(absl::Time cutoff, int limit) override {
    absl::StatusOr<int64_t> deleted = ForwardingStore::DeleteSucceededBefore(cutoff, limit);
    if (deleted.ok()) deleted_in_txn_ += *deleted;
    return deleted;
  }
  // Writer thread: what the last transaction deleted.
  int64_t deleted_in_txn() const { return deleted_in_txn_; }

 private:
  int64_t deleted_in_txn_ = 0;
};

// Every committed batch: its requests and the succeeded envelopes it deleted.
class BatchLog final : public EngineObserver {
 public:
  struct Batch {
    int requests = 0;
    int64_t deleted = 0;
  };
  explicit BatchLog(const CountingStore* store) : store_(store) {}

  void OnCommit(absl::Duration, int requests, bool ok) override {
    if (!ok) return;
    absl::MutexLock lock(&mu_);
    batches_.push_back(Batch{requests, store_->deleted_in_txn()});
  }
  void OnDecision(const Envelope&, const Failure&, const Decision&, bool) override {}
  void OnDuplicateFailure(const Envelope&) override {}
  void OnLeased(const Envelope&, absl::Duration) override {}
  void OnRetrySucceeded(const Envelope&, int) override {}
  void OnSync(absl::Duration) override {}

  std::vector<Batch> Batches() const {
    absl::MutexLock lock(&mu_);
    return batches_;
  }

 private:
  const CountingStore* const store_;
  mutable absl::Mutex mu_;
  std::vector<Batch> batches_ ABSL_GUARDED_BY(mu_);
};

class EngineHousekeepingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    // Retries fall due 1 ms after a failure, so a test makes an envelope succeed at a time of its
    // choosing.
    Policy policy;
    policy.backoff = BackoffSpec{absl::Milliseconds(1), 1.0, absl::Milliseconds(1),
                                 JitterKind::kNone, 0.0};
    absl::StatusOr<PolicySet> policies = PolicySet::Create({policy});
    ASSERT_TRUE(policies.ok()) << policies.status();
    policies_ = std::make_unique<PolicySet>(*std::move(policies));
    // Small merges, so that keys also reach envelope_keys (and must leave it again).
    SqliteStore::Options store_options;
    store_options.keys.merge_at = 512;
    absl::StatusOr<std::unique_ptr<SqliteStore>> sqlite =
        SqliteStore::Open(dir_ + "/data", store_options);
    ASSERT_TRUE(sqlite.ok()) << sqlite.status();
    sqlite_ = *std::move(sqlite);
    store_ = std::make_unique<CountingStore>(sqlite_.get());
    log_ = std::make_unique<BatchLog>(store_.get());
    ASSERT_NO_FATAL_FAILURE(StartEngine());
    absl::StatusOr<std::unique_ptr<sqlite::Database>> db =
        sqlite::Database::Open(sqlite_->path(), /*read_only=*/true);
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
  }

  void TearDown() override {
    engine_.reset();
    db_.reset();
    store_.reset();
    sqlite_.reset();
    testing::RemoveTree(dir_);
  }

  void StartEngine() {
    EngineOptions options;
    options.dedupe_window = kWindow;
    options.observer = log_.get();
    absl::StatusOr<std::unique_ptr<Engine>> engine =
        Engine::Start(store_.get(), policies_.get(), &clock_, &rng_, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    engine_ = *std::move(engine);
  }

  // A number from the committed database.
  int64_t Query(const std::string& sql) {
    absl::StatusOr<sqlite::Statement> s = db_->Prepare(sql);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return -1;
    absl::StatusOr<bool> row = s->Step();
    EXPECT_TRUE(row.ok() && *row) << sql;
    return row.ok() && *row ? s->ColumnInt(0) : -1;
  }
  int64_t Succeeded() { return Query("SELECT count(*) FROM envelopes WHERE state = 4"); }
  // Succeeded envelopes whose window has passed.
  int64_t Expired() {
    return Query(absl::StrCat("SELECT count(*) FROM envelopes WHERE state = 4 AND sort_at < ",
                              absl::ToUnixMicros(clock_.Now() - kWindow)));
  }

  // Reports first failures of `ids` and waits for the decisions.
  std::vector<Decision> ReportAll(const std::vector<std::string>& ids) {
    std::vector<absl::StatusOr<Decision>> answers(ids.size(), absl::UnknownError("unanswered"));
    absl::BlockingCounter pending(static_cast<int>(ids.size()));
    for (size_t i = 0; i < ids.size(); ++i) {
      Envelope e;
      e.service = "billing";
      e.message_id = ids[i];
      e.payload = "payload";
      engine_->ReportFailure(std::move(e), testing::TransientFailure(), "",
                             [&answers, &pending, i](absl::StatusOr<Decision> d) {
                               answers[i] = std::move(d);
                               pending.DecrementCount();
                             });
    }
    pending.Wait();
    std::vector<Decision> decisions;
    for (auto& a : answers) {
      EXPECT_TRUE(a.ok()) << a.status();
      decisions.push_back(a.ok() ? *a : Decision());
    }
    return decisions;
  }

  // `n` new envelopes fail and then succeed, 1 ms from now.
  void Succeed(const std::string& prefix, int n) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) ids.push_back(absl::StrCat(prefix, "-", i));
    ReportAll(ids);
    clock_.Advance(absl::Milliseconds(1));
    std::vector<std::string> tokens;
    while (static_cast<int>(tokens.size()) < n) {
      LeaseArgs args;
      args.service = "billing";
      args.max_messages = 500;
      absl::Notification done;
      absl::StatusOr<std::vector<LeasedItem>> items;
      engine_->Lease(std::move(args), [&](absl::StatusOr<std::vector<LeasedItem>> leased) {
        items = std::move(leased);
        done.Notify();
      });
      done.WaitForNotification();
      ASSERT_TRUE(items.ok()) << items.status();
      ASSERT_FALSE(items->empty()) << "leased " << tokens.size() << " of " << n;
      for (const LeasedItem& item : *items) tokens.push_back(item.lease_token);
    }
    absl::BlockingCounter pending(n);
    absl::Mutex mu;
    std::vector<absl::Status> failed;
    for (const std::string& token : tokens) {
      engine_->ReportSuccess("billing", token, [&](absl::Status s) {
        if (!s.ok()) {
          absl::MutexLock lock(&mu);
          failed.push_back(s);
        }
        pending.DecrementCount();
      });
    }
    pending.Wait();
    ASSERT_TRUE(failed.empty()) << failed.front();
  }

  // Runs one batch with one (empty) request in it, and waits for it.
  void Kick() {
    absl::Notification done;
    engine_->RunInTransaction([](EngineTxn&) { return absl::OkStatus(); },
                              [&](absl::Status s) {
                                EXPECT_TRUE(s.ok()) << s;
                                done.Notify();
                              });
    done.WaitForNotification();
  }

  // Waits (real time, bounded) until no succeeded envelope is past its window.
  bool ExpiredGoneWithin(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (Expired() != 0) {
      if (absl::Now() >= deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }

  // Every batch deleted at most its slice: max(64, 2 × its requests).
  void ExpectSlicesBounded() {
    for (const BatchLog::Batch& b : log_->Batches()) {
      EXPECT_LE(b.deleted, std::max<int64_t>(64, 2 * b.requests))
          << "a batch of " << b.requests << " requests deleted " << b.deleted;
    }
  }

  std::string dir_;
  testing::FakeClock clock_;
  MtRandom rng_;
  std::unique_ptr<PolicySet> policies_;
  std::unique_ptr<SqliteStore> sqlite_;
  std::unique_ptr<CountingStore> store_;
  std::unique_ptr<BatchLog> log_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<sqlite::Database> db_;
};

TEST_F(EngineHousekeepingTest, SustainedSuccessesAreForgottenAtTheirPaceAndTheTablesStopGrowing) {
  // 400 successes a (fake) second, 24 times what one pass of 1 000 a minute deleted, for three
  // windows; after each second the clock moves on and whatever left the window must be gone
  // within a few batches of 64, while the last 10 s of successes stay.
  constexpr int kPerSecond = 400;
  constexpr int kSeconds = 30;
  const int max_batches = (kPerSecond + 63) / 64 + 1;
  for (int second = 0; second < kSeconds; ++second) {
    ASSERT_NO_FATAL_FAILURE(Succeed(absl::StrCat("s", second), kPerSecond));
    clock_.Advance(absl::Seconds(1) - absl::Milliseconds(1));
    const size_t before = log_->Batches().size();
    Kick();
    ASSERT_TRUE(ExpiredGoneWithin(absl::Seconds(10)))
        << "second " << second << ": " << Expired() << " expired envelopes left";
    const std::vector<BatchLog::Batch> batches = log_->Batches();
    int deleting = 0;
    for (size_t i = before; i < batches.size(); ++i) deleting += batches[i].deleted > 0 ? 1 : 0;
    EXPECT_LE(deleting, max_batches) << "second " << second;
    // Kept: the successes of the last 10 s (those of second `second - 9` on).
    EXPECT_EQ(Succeeded(), int64_t{kPerSecond} * std::min(second + 1, 10)) << "second " << second;
  }
  ExpectSlicesBounded();

  // The key index shrank with the rows: every key left names a row, and few wait in memory.
  EXPECT_EQ(Query("SELECT count(*) FROM envelope_keys k WHERE NOT EXISTS "
                  "(SELECT 1 FROM envelopes e WHERE e.id = k.id)"),
            0);
  EXPECT_LE(Query("SELECT count(*) FROM envelope_keys"), Succeeded());

  // A duplicate of a success inside the window is still one; one of a forgotten success is a
  // new envelope.
  std::vector<Decision> again = ReportAll({absl::StrCat("s", kSeconds - 1, "-7"), "s0-7"});
  EXPECT_TRUE(again[0].duplicate);
  EXPECT_EQ(again[0].state, EnvelopeState::kSucceeded);
  EXPECT_FALSE(again[1].duplicate);
  EXPECT_EQ(again[1].state, EnvelopeState::kScheduled);
}

TEST_F(EngineHousekeepingTest, AnIdleServerForgetsOnItsOwnWhenTheWindowEnds) {
  ASSERT_NO_FATAL_FAILURE(Succeed("m", 3));

  // Inside the window: remembered, and a duplicate is answered as one.
  clock_.Advance(kWindow - absl::Seconds(1));
  std::vector<Decision> inside = ReportAll({"m-0"});
  EXPECT_TRUE(inside[0].duplicate);
  EXPECT_EQ(inside[0].state, EnvelopeState::kSucceeded);
  EXPECT_EQ(Succeeded(), 3);

  // Past it, with no request coming in: the writer wakes up for it by itself.
  clock_.Advance(absl::Seconds(2));
  EXPECT_TRUE(ExpiredGoneWithin(absl::Seconds(10))) << Expired() << " expired envelopes left";
  EXPECT_EQ(Succeeded(), 0);
  absl::StatusOr<std::optional<Envelope>> gone = sqlite_->Get("billing", "m-0");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(gone->has_value());

  // A late duplicate now starts a new life.
  std::vector<Decision> after = ReportAll({"m-0"});
  EXPECT_FALSE(after[0].duplicate);
  EXPECT_EQ(after[0].state, EnvelopeState::kScheduled);
  EXPECT_EQ(after[0].attempt, 1);
}

TEST_F(EngineHousekeepingTest, ABacklogFoundAtStartUpIsForgottenASliceAtATime) {
  constexpr int kBacklog = 2500;
  ASSERT_NO_FATAL_FAILURE(Succeed("old", kBacklog));
  clock_.Advance(absl::Seconds(1));
  ASSERT_NO_FATAL_FAILURE(Succeed("young", 10));
  engine_.reset();

  // The server was down while the window of the 2 500 passed (half a second ago); the 10 that
  // succeeded a second later are still inside theirs.
  clock_.Advance(kWindow - absl::Milliseconds(501));
  const size_t before = log_->Batches().size();
  ASSERT_NO_FATAL_FAILURE(StartEngine());
  ASSERT_TRUE(ExpiredGoneWithin(absl::Seconds(20))) << Expired() << " expired envelopes left";
  EXPECT_EQ(Succeeded(), 10);
  const std::vector<BatchLog::Batch> batches = log_->Batches();
  int64_t deleted = 0;
  int deleting = 0;
  for (size_t i = before; i < batches.size(); ++i) {
    deleted += batches[i].deleted;
    deleting += batches[i].deleted > 0 ? 1 : 0;
  }
  EXPECT_EQ(deleted, kBacklog);
  EXPECT_LE(deleting, (kBacklog + 63) / 64 + 1);
  ExpectSlicesBounded();
}

}  // namespace
}  // namespace retryd
