// One active retryd per PostgreSQL database (server/store/pg/pg_store_owner.h): a second store
// opened on the same database waits as a standby until the owner's session ends, then takes
// over with a higher epoch; the old owner is fenced (its next batch is refused, IsFenced, before
// it writes) and its watchdog reports the loss.
#include <atomic>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_store.h"
#include "server/store/store_failure.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;

class PgStoreOwnerPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::retryd::testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_TRUE(dsn.ok()) << dsn.status();
    dsn_ = *dsn;
  }

  static PgStore::Options Fast(std::function<bool()> stop_waiting = nullptr) {
    PgStore::Options o;
    o.owner.check_interval = absl::Milliseconds(50);
    o.owner.stop_waiting = std::move(stop_waiting);
    return o;
  }

  std::string dsn_;
};

TEST_F(PgStoreOwnerPostgresTest, SecondStoreWaitsUntilTheOwnerCloses) {
  auto first = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(first.ok()) << first.status();
  const int64_t first_epoch = (*first)->owner_epoch();

  std::unique_ptr<PgStore> second;
  absl::Notification opened;
  std::thread t([&] {
    auto s = PgStore::Open(dsn_, Fast());
    ASSERT_TRUE(s.ok()) << s.status();
    second = *std::move(s);
    opened.Notify();
  });
  // While the first owns the database, the second is a standby.
  EXPECT_FALSE(opened.WaitForNotificationWithTimeout(absl::Seconds(1)));
  first->reset();
  EXPECT_TRUE(opened.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->owner_epoch(), first_epoch + 1);
  ASSERT_THAT(second->Begin(), IsOk());
  ASSERT_THAT(second->Commit(), IsOk());
}

// Stores opened without single_owner (an engine that decides everything in the database) open
// at once beside an owner and each other, and their batches are not fenced.
TEST_F(PgStoreOwnerPostgresTest, StoresWithoutSingleOwnerOpenAtOnce) {
  auto owner = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(owner.ok()) << owner.status();
  PgStore::Options shared = Fast();
  shared.single_owner = false;
  const absl::Time start = absl::Now();
  auto a = PgStore::Open(dsn_, shared);
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = PgStore::Open(dsn_, shared);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5)) << "a store without single_owner waited";
  for (auto* store : {a->get(), b->get()}) {
    ASSERT_THAT(store->Begin(), IsOk());
    ASSERT_THAT(store->Commit(), IsOk());
  }
  ASSERT_THAT((*owner)->Begin(), IsOk());  // The owner is not fenced by them either.
  ASSERT_THAT((*owner)->Commit(), IsOk());
}

TEST_F(PgStoreOwnerPostgresTest, StandbyGivesUpWhenAskedToStop) {
  auto first = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(first.ok()) << first.status();
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(300));
    stop = true;
  });
  auto second = PgStore::Open(dsn_, Fast([&] { return stop.load(); }));
  stopper.join();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kCancelled) << second.status();
}

TEST_F(PgStoreOwnerPostgresTest, OwnerThatLostItsSessionIsFencedBeforeItWrites) {
  auto old_owner = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(old_owner.ok()) << old_owner.status();
  // Its lock's session ends (a network cut, say) while the process itself goes on.
  (*old_owner)->ReleaseOwnerForTest();
  auto taker = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(taker.ok()) << taker.status();
  EXPECT_GT((*taker)->owner_epoch(), (*old_owner)->owner_epoch());

  const absl::Status begun = (*old_owner)->Begin();
  EXPECT_TRUE(IsFenced(begun)) << begun;
  EXPECT_TRUE(IsStoreFailure(begun)) << begun;
  // The taker's batches go on.
  ASSERT_THAT((*taker)->Begin(), IsOk());
  ASSERT_THAT((*taker)->Commit(), IsOk());
}

TEST_F(PgStoreOwnerPostgresTest, TakeoverWaitsForTheOldOwnersOpenBatch) {
  auto old_owner = PgStore::Open(dsn_, Fast());
  ASSERT_TRUE(old_owner.ok()) << old_owner.status();
  ASSERT_THAT((*old_owner)->Begin(), IsOk());  // A batch is open, fenced by the old epoch.
  (*old_owner)->ReleaseOwnerForTest();
  absl::Notification taken;
  std::unique_ptr<PgStore> taker;
  std::thread t([&] {
    auto s = PgStore::Open(dsn_, Fast());
    ASSERT_TRUE(s.ok()) << s.status();
    taker = *std::move(s);
    taken.Notify();
  });
  // The epoch bump waits for the open batch, so the two never write at once.
  EXPECT_FALSE(taken.WaitForNotificationWithTimeout(absl::Milliseconds(700)));
  ASSERT_THAT((*old_owner)->Commit(), IsOk());
  EXPECT_TRUE(taken.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  EXPECT_TRUE(IsFenced((*old_owner)->Begin()));
}

// Ends the PostgreSQL session `pid` as an administrator (or a failover) would.
void TerminateBackend(const std::string& dsn, int pid) {
  auto admin = pg::Connection::Open(dsn);
  ASSERT_TRUE(admin.ok()) << admin.status();
  auto killed = (*admin)->Exec("SELECT pg_terminate_backend($1::integer)", pg::Params().Int(pid));
  ASSERT_TRUE(killed.ok()) << killed.status();
  ASSERT_EQ(killed->Int(0, 0), 1);
}

TEST_F(PgStoreOwnerPostgresTest, WatchdogTakesTheLockUpAgainWhenNobodyTookOver) {
  std::atomic<int> lost{0};
  PgStore::Options o = Fast();
  o.owner.on_lost = [&](absl::Status) { ++lost; };
  auto owner = PgStore::Open(dsn_, std::move(o));
  ASSERT_TRUE(owner.ok()) << owner.status();
  const int old_pid = (*owner)->owner_backend_pid();
  TerminateBackend(dsn_, old_pid);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while ((*owner)->owner_backend_pid() == old_pid && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_NE((*owner)->owner_backend_pid(), old_pid) << "the lock was not taken up again";
  EXPECT_EQ(lost.load(), 0);
  // It owns the database again: its batches go on and a second store waits.
  ASSERT_THAT((*owner)->Begin(), IsOk());
  ASSERT_THAT((*owner)->Commit(), IsOk());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    absl::SleepFor(absl::Milliseconds(400));
    stop = true;
  });
  auto second = PgStore::Open(dsn_, Fast([&] { return stop.load(); }));
  stopper.join();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kCancelled) << second.status();
}

TEST_F(PgStoreOwnerPostgresTest, WatchdogStopsAnOwnerTakenOverWhileItsSessionWasLost) {
  std::atomic<int> lost{0};
  absl::Notification reported;
  PgStore::Options o = Fast();
  o.owner.check_interval = absl::Seconds(1);  // The standby below retries every 50 ms: it wins.
  o.owner.on_lost = [&](absl::Status s) {
    EXPECT_TRUE(IsFenced(s)) << s;
    ++lost;
    reported.Notify();
  };
  auto owner = PgStore::Open(dsn_, std::move(o));
  ASSERT_TRUE(owner.ok()) << owner.status();
  std::unique_ptr<PgStore> taker;
  std::thread t([&] {
    auto s = PgStore::Open(dsn_, Fast());
    ASSERT_TRUE(s.ok()) << s.status();
    taker = *std::move(s);
  });
  absl::SleepFor(absl::Milliseconds(200));  // The taker waits as a standby.
  TerminateBackend(dsn_, (*owner)->owner_backend_pid());
  EXPECT_TRUE(reported.WaitForNotificationWithTimeout(absl::Seconds(10)));
  t.join();
  EXPECT_EQ(lost.load(), 1);
  ASSERT_NE(taker, nullptr);
  EXPECT_GT(taker->owner_epoch(), (*owner)->owner_epoch());
  EXPECT_TRUE(IsFenced((*owner)->Begin()));
}

}  // namespace
}  // namespace retryd
