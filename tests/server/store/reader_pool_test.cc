// The store's read side over a pool of read-only connections (server/store/reader_pool.h), on a
// real SQLite file: a read kept open on one connection (as a long DLQ scan would be) does not hold
// up other reads, a read that finds every connection busy answers UNAVAILABLE after the bounded
// wait instead of blocking, a read that runs past its time limit is interrupted, and a connection
// comes back to the pool after each read.
#include "server/store/reader_pool.h"

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/envelope.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

Envelope DeadLetter(const std::string& service, int i) {
  Envelope e;
  e.service = service;
  e.message_id = absl::StrCat("m-", i);
  e.attempt = 5;
  e.max_attempts = 5;
  e.first_seen_at = kT0;
  e.created_at = kT0;
  e.updated_at = kT0;
  e.payload = "p";
  e.state = EnvelopeState::kDeadLettered;
  e.dead_letter_reason = DeadLetterReason::kRetryExhausted;
  e.dead_lettered_at = kT0 + absl::Seconds(i);
  e.last_error.error_code = "UPSTREAM_TIMEOUT";
  return e;
}

class ReaderPoolTest : public ::testing::Test {
 protected:
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) testing::RemoveTree(dir_);
  }

  void Open(ReaderPool::Options readers) {
    dir_ = testing::MakeTempDir();
    SqliteStore::Options options;
    options.readers = readers;
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir_, options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  void AddDeadLetters(int n) {
    ASSERT_THAT(store_->Begin(), IsOk());
    for (int i = 0; i < n; ++i) {
      Envelope e = DeadLetter("billing", i);
      ASSERT_THAT(store_->Insert(&e), IsOk());
    }
    ASSERT_THAT(store_->Commit(), IsOk());
  }

  // Borrows a read connection and opens a read transaction on it, as a scan in progress has.
  struct HeldRead {
    std::optional<ReaderPool::Reader> reader;
    std::optional<sqlite::Statement> scan;
  };
  HeldRead HoldARead() {
    HeldRead held;
    absl::StatusOr<ReaderPool::Reader> reader = store_->AcquireReaderForTest();
    EXPECT_TRUE(reader.ok()) << reader.status();
    if (!reader.ok()) return held;
    held.reader.emplace(std::move(*reader));
    absl::StatusOr<sqlite::Statement> scan =
        held.reader->db().Prepare("SELECT id FROM envelopes ORDER BY id");
    EXPECT_TRUE(scan.ok()) << scan.status();
    if (!scan.ok()) return held;
    held.scan.emplace(std::move(*scan));
    // Stepped once and not finished: the read transaction stays open until the statement goes.
    absl::StatusOr<bool> row = held.scan->Step();
    EXPECT_TRUE(row.ok() && *row);
    return held;
  }

  std::string dir_;
  std::unique_ptr<SqliteStore> store_;
};

TEST_F(ReaderPoolTest, AReadHeldOpenOnOneConnectionDoesNotHoldUpOtherReads) {
  ReaderPool::Options readers;
  readers.size = 2;
  // Far longer than the test: a read that waited for the held connection would fail the test
  // with UNAVAILABLE (the held read is only released at the end).
  readers.wait = absl::Seconds(60);
  Open(readers);
  AddDeadLetters(3);
  HeldRead held = HoldARead();

  // The overview, a listing, the stats and the replay runner's scan all run beside it.
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  ASSERT_TRUE(counts.ok()) << counts.status();
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].dead, 3);
  ListQuery q;
  q.limit = 10;
  absl::StatusOr<ListPage> page = store_->List(q);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->envelopes.size(), 3u);
  absl::StatusOr<DeadLetterStatsRow> stats = store_->DeadLetterStats("", kT0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->total, 3);
  EXPECT_THAT(store_->ListReplaysInStates({1, 2}).status(), IsOk());

  // Committed writes are seen by the next read, though the held one keeps its older snapshot.
  ASSERT_THAT(store_->Begin(), IsOk());
  Envelope e = DeadLetter("billing", 3);
  ASSERT_THAT(store_->Insert(&e), IsOk());
  ASSERT_THAT(store_->Commit(), IsOk());
  absl::StatusOr<int64_t> count = store_->CountDeadLetters(EnvelopeFilter());
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 4);
}

TEST_F(ReaderPoolTest, AReadFindingEveryConnectionBusyAnswersUnavailableAfterTheWait) {
  ReaderPool::Options readers;
  readers.size = 1;
  readers.wait = absl::Milliseconds(50);
  Open(readers);
  AddDeadLetters(1);
  {
    HeldRead held = HoldARead();
    EXPECT_THAT(store_->CountByService().status(),
                StatusIs(absl::StatusCode::kUnavailable, HasSubstr("read connections")));
    EXPECT_THAT(store_->Get("billing", "m-0").status(),
                StatusIs(absl::StatusCode::kUnavailable));
  }
  // The held read gave its connection back.
  absl::StatusOr<std::optional<Envelope>> found = store_->Get("billing", "m-0");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(found->has_value());
}

TEST_F(ReaderPoolTest, AWaitingReadGetsTheConnectionOnceItIsGivenBack) {
  ReaderPool::Options readers;
  readers.size = 1;
  readers.wait = absl::Seconds(60);
  Open(readers);
  AddDeadLetters(2);
  auto held = std::make_unique<HeldRead>(HoldARead());
  absl::Notification done;
  absl::StatusOr<int64_t> count;
  std::thread reader([&] {
    count = store_->CountDeadLetters(EnvelopeFilter());
    done.Notify();
  });
  // Whether or not the read has started waiting yet, it must get the connection once it is back.
  EXPECT_FALSE(done.HasBeenNotified());
  held.reset();
  reader.join();
  ASSERT_TRUE(count.ok()) << count.status();
  EXPECT_EQ(*count, 2);
}

TEST_F(ReaderPoolTest, AReadPastItsTimeLimitIsInterruptedAndTheConnectionServesTheNext) {
  ReaderPool::Options readers;
  readers.size = 1;
  readers.read_timeout = absl::Nanoseconds(1);  // Every read longer than a few steps.
  Open(readers);
  AddDeadLetters(500);
  ListQuery q;
  q.limit = 1000;
  EXPECT_THAT(store_->List(q).status(), StatusIs(absl::StatusCode::kDeadlineExceeded));
  // The interrupted statement is gone with its read: the same connection answers a short read.
  absl::StatusOr<std::optional<ReplayRow>> replay = store_->GetReplay(1);
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_FALSE(replay->has_value());
}

TEST_F(ReaderPoolTest, EveryReadGivesItsConnectionBack) {
  ReaderPool::Options readers;
  readers.size = 3;
  readers.wait = absl::Milliseconds(50);
  Open(readers);
  AddDeadLetters(2);
  for (int i = 0; i < 20; ++i) {
    ASSERT_THAT(store_->CountByService().status(), IsOk());
    ASSERT_THAT(store_->Get("billing", "m-1").status(), IsOk());
    ASSERT_THAT(store_->Get("nobody", "m-1").status(), IsOk());
    ASSERT_THAT(store_->ListFailureGroups(GroupQuery()).status(), IsOk());
    ASSERT_THAT(store_->ListAudit(AuditQuery()).status(), IsOk());
    ASSERT_THAT(store_->DeadLetterHistogram("", absl::UnixEpoch(), absl::Now(), absl::Hours(1))
                    .status(),
                IsOk());
    ASSERT_THAT(store_->GetReplay(1).status(), IsOk());
    ASSERT_THAT(store_->ListReplays(0, 10).status(), IsOk());
  }
  // All three are free: three reads can be held at once.
  HeldRead a = HoldARead();
  HeldRead b = HoldARead();
  HeldRead c = HoldARead();
  EXPECT_THAT(store_->CountByService().status(), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace retryd
