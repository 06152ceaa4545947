// Shared mode's database side (server/store/pg: pg_leases, pg_guard_rows, pg_job_claims,
// pg_due_signal) with several connections standing for several replicas on one real PostgreSQL
// (tests/testing/pg_cluster.h). Every test here needs the server: their names say Postgres.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_db_time.h"
#include "server/store/pg/pg_due_signal.h"
#include "server/store/pg/pg_guard_rows.h"
#include "server/store/pg/pg_guard_sync.h"
#include "server/core/circuit_breaker.h"
#include "server/core/policy_set.h"
#include "server/core/service_guards.h"
#include "server/store/pg/pg_job_claims.h"
#include "server/store/pg/pg_lease_token.h"
#include "server/store/pg/pg_leases.h"
#include "server/store/pg/pg_schema.h"
#include "server/util/status_macros.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;
using ::retryd::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kScheduled = 1;
constexpr int kSucceeded = 4;

class SharedPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_THAT(cluster, IsOk());
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn, IsOk());
    dsn_ = *dsn;
    db_ = Connect();
    ASSERT_NE(db_, nullptr);
    ASSERT_THAT(pg::Migrate(*db_), IsOk());
  }

  std::unique_ptr<pg::Connection> Connect() {
    auto c = pg::Connection::Open(dsn_);
    EXPECT_THAT(c, IsOk());
    return c.ok() ? std::move(*c) : nullptr;
  }

  // Inserts `n` scheduled envelopes of `service` due `due_in` after the database's now
  // (negative: already due), message ids prefix0..prefix(n-1).
  void Seed(const std::string& service, int n, absl::Duration due_in,
            const std::string& prefix = "m") {
    ASSERT_THAT(db_->Exec(absl::StrCat(
                              "INSERT INTO envelopes (service, message_id, state, sort_at, attempt,"
                              " max_attempts, first_seen_at, created_at, updated_at, details,"
                              " payload) SELECT $1, $2 || g, 1, ",
                              pg::kDbNowMicros,
                              " + $3::bigint + g, 1, 5, 0, 0, 0, ''::bytea, ''::bytea"
                              " FROM generate_series(0, $4 - 1) g"),
                          pg::Params().Text(service).Text(prefix)
                              .Int(absl::ToInt64Microseconds(due_in)).Int(n)),
                IsOk());
  }

  int64_t Count(const std::string& where) {
    auto r = db_->Exec("SELECT count(*) FROM envelopes WHERE " + where);
    EXPECT_THAT(r, IsOk());
    return r.ok() ? r->Int(0, 0) : -1;
  }

  // ClaimDue in a transaction of its own.
  absl::StatusOr<std::vector<pg::ClaimedLease>> Claim(pg::Connection& c, const std::string& svc,
                                                      int max, absl::Duration visibility) {
    if (absl::Status s = c.Begin(); !s.ok()) return s;
    auto claimed = pg::ClaimDue(c, svc, max, visibility);
    if (!claimed.ok()) {
      c.Rollback();
      return claimed;
    }
    if (absl::Status s = c.Commit(); !s.ok()) return s;
    return claimed;
  }

  // What a replica's expiry sweep does, in one transaction: takes expired leases back and
  // schedules them again at once (the real one re-decides them by policy).
  absl::StatusOr<int> SweepAndRequeue(pg::Connection& c, int max) {
    if (absl::Status s = c.Begin(); !s.ok()) return s;
    auto expired = pg::ClaimExpired(c, max);
    if (!expired.ok()) {
      c.Rollback();
      return expired.status();
    }
    for (const pg::ExpiredLease& e : *expired) {
      absl::Status s = c.Exec(absl::StrCat("UPDATE envelopes SET state = 1, attempt = attempt + 1,"
                                           " sort_at = ", pg::kDbNowMicros, " WHERE id = $1"),
                              pg::Params().Int(e.id))
                           .status();
      if (!s.ok()) {
        c.Rollback();
        return s;
      }
    }
    if (absl::Status s = c.Commit(); !s.ok()) return s;
    return static_cast<int>(expired->size());
  }

  std::string dsn_;
  std::unique_ptr<pg::Connection> db_;
};

class ClaimsPostgresTest : public SharedPostgresTest {
 protected:
  // `claimers` connections claim `per_claim` at a time, one claim per transaction, until
  // nothing of `service` is due; answers the ids each one got, and prints the rate.
  std::vector<std::vector<int64_t>> ClaimAll(const std::string& service, int claimers,
                                             int per_claim) {
    std::vector<std::vector<int64_t>> claimed(claimers);
    std::vector<std::thread> threads;
    const absl::Time start = absl::Now();
    for (int r = 0; r < claimers; ++r) {
      threads.emplace_back([this, r, &claimed, &service, per_claim] {
        auto c = Connect();
        ASSERT_NE(c, nullptr);
        for (;;) {
          auto got = Claim(*c, service, per_claim, absl::Seconds(60));
          ASSERT_THAT(got, IsOk());
          if (got->empty()) return;
          for (const auto& l : *got) claimed[r].push_back(l.id);
        }
      });
    }
    for (auto& th : threads) th.join();
    const absl::Duration took = absl::Now() - start;
    size_t total = 0;
    for (const auto& ids : claimed) total += ids.size();
    std::cout << "claims: " << total << " envelopes by " << claimers << " claimer(s), "
              << per_claim << " per claim and transaction, in " << took << " ("
              << static_cast<int64_t>(total / absl::ToDoubleSeconds(took)) << "/s)\n";
    return claimed;
  }
};

TEST_F(ClaimsPostgresTest, ReplicasClaimingAtOnceTakeEveryDueEnvelopeExactlyOnce) {
  constexpr int kDue = 3000;
  Seed("one", kDue, absl::Seconds(-60));
  Seed("svc", kDue, absl::Seconds(-60));
  Seed("svc", 500, absl::Hours(1), "future");
  // One claimer, for the rate's comparison.
  const auto alone = ClaimAll("one", 1, 10);
  EXPECT_EQ(alone[0].size(), static_cast<size_t>(kDue));
  constexpr int kReplicas = 3;
  const auto claimed = ClaimAll("svc", kReplicas, 10);
  std::set<int64_t> all;
  int total = 0;
  for (const auto& ids : claimed) {
    total += static_cast<int>(ids.size());
    all.insert(ids.begin(), ids.end());
    EXPECT_GT(ids.size(), 0u) << "every replica got a share";
  }
  EXPECT_EQ(total, kDue) << "nothing claimed twice";
  EXPECT_EQ(all.size(), static_cast<size_t>(kDue));
  EXPECT_EQ(Count("service = 'svc' AND state = 2"), kDue);
  EXPECT_EQ(Count("state = 1 AND message_id LIKE 'future%'"), 500) << "future retries untouched";
}

TEST_F(ClaimsPostgresTest, FutureRetriesStayOutOfTheHotClaim) {
  Seed("svc", 5, absl::Seconds(-1));
  Seed("svc", 20000, absl::Minutes(10), "future");
  ASSERT_THAT(db_->ExecScript("ANALYZE envelopes"), IsOk());
  // The claim reads the due prefix of envelopes_due and stops: the plan's index scan returns
  // the due rows only, never a future one that a filter then drops.
  auto plan = db_->Exec(absl::StrCat(
      "EXPLAIN (ANALYZE, COSTS OFF, FORMAT TEXT) SELECT id FROM envelopes WHERE service = 'svc'"
      " AND state = 1 AND sort_at <= ", pg::kDbNowMicros,
      " ORDER BY sort_at, id LIMIT 100 FOR UPDATE SKIP LOCKED"));
  ASSERT_THAT(plan, IsOk());
  std::string text;
  for (int i = 0; i < plan->rows(); ++i) text += plan->Text(i, 0) + "\n";
  EXPECT_THAT(text, HasSubstr("Index Scan using envelopes_due")) << text;
  EXPECT_THAT(text, ::testing::Not(HasSubstr("Rows Removed by Filter"))) << text;
  auto got = Claim(*db_, "svc", 100, absl::Seconds(30));
  ASSERT_THAT(got, IsOk());
  EXPECT_EQ(got->size(), 5u);
}

TEST_F(ClaimsPostgresTest, DueIsJudgedByDatabaseTime) {
  // The claim takes no time from its caller: a row due 400 ms after the database's now is not
  // claimable before the database's clock gets there, whatever a replica's clock says.
  Seed("svc", 1, absl::Milliseconds(400));
  auto first = Claim(*db_, "svc", 10, absl::Seconds(30));
  ASSERT_THAT(first, IsOk());
  EXPECT_TRUE(first->empty());
  absl::SleepFor(absl::Milliseconds(500));
  auto second = Claim(*db_, "svc", 10, absl::Seconds(30));
  ASSERT_THAT(second, IsOk());
  ASSERT_EQ(second->size(), 1u);
  // The expiry is database time + visibility.
  auto now = pg::DbNow(*db_);
  ASSERT_THAT(now, IsOk());
  EXPECT_LE((*second)[0].expires_at, *now + absl::Seconds(30));
  EXPECT_GT((*second)[0].expires_at, *now + absl::Seconds(29));
}

using LeasesPostgresTest = SharedPostgresTest;

TEST_F(LeasesPostgresTest, TokenIsAcceptedByAnyReplica) {
  Seed("svc", 1, absl::Seconds(-1));
  auto a = Connect();
  auto b = Connect();
  auto c = Connect();
  auto got = Claim(*a, "svc", 1, absl::Seconds(30));
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 1u);
  const std::string token = (*got)[0].token;
  EXPECT_THAT(token, ::testing::StartsWith("L1."));
  auto extended = pg::ExtendLease(*b, token, absl::Seconds(60));
  ASSERT_THAT(extended, IsOk());
  EXPECT_GT(*extended, (*got)[0].expires_at);
  EXPECT_THAT(pg::FinishLease(*c, token, kSucceeded, absl::Now()), IsOk());
  EXPECT_EQ(Count("state = 4"), 1);
  // Completed: the token is done everywhere.
  EXPECT_THAT(pg::FinishLease(*a, token, kSucceeded, absl::Now()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")));
}

TEST_F(LeasesPostgresTest, WrongSecretOrMalformedTokenIsNotFound) {
  Seed("svc", 1, absl::Seconds(-1));
  auto got = Claim(*db_, "svc", 1, absl::Seconds(30));
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 1u);
  const pg::ClaimedLease& l = (*got)[0];
  const std::string forged =
      pg::FormatLeaseToken(l.id, l.generation, std::string(32, '0'));
  for (const std::string& bad : {forged, std::string("L1.x.1.00"), std::string("garbage"),
                                 absl::StrCat("L1.", l.id + 1000, ".1.", std::string(32, 'a'))}) {
    EXPECT_THAT(pg::ExtendLease(*db_, bad, absl::Seconds(5)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")))
        << bad;
  }
  EXPECT_EQ(Count("state = 2"), 1) << "nothing changed";
  EXPECT_THAT(pg::LockLease(*db_, l.token), IsOk());
}

TEST_F(LeasesPostgresTest, StaleTokenIsFailedPreconditionOnWhicheverReplicaGetsIt) {
  Seed("svc", 1, absl::Seconds(-1));
  auto a = Connect();
  auto b = Connect();
  auto first = Claim(*a, "svc", 1, absl::Milliseconds(200));
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(first->size(), 1u);
  const std::string stale = (*first)[0].token;
  absl::SleepFor(absl::Milliseconds(300));
  // Expired by the database's clock, not yet swept: already refused.
  EXPECT_THAT(pg::ExtendLease(*b, stale, absl::Seconds(30)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  // Replica b sweeps it and leases it again: a second worker holds it now.
  ASSERT_THAT(SweepAndRequeue(*b, 10), IsOk());
  auto second = Claim(*b, "svc", 1, absl::Seconds(30));
  ASSERT_THAT(second, IsOk());
  ASSERT_EQ(second->size(), 1u);
  EXPECT_GT((*second)[0].generation, (*first)[0].generation);
  // The first worker's late outcome and extension are refused on every replica, and change
  // nothing.
  for (pg::Connection* c : {a.get(), b.get()}) {
    EXPECT_THAT(pg::FinishLease(*c, stale, kSucceeded, absl::Now()),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
    EXPECT_THAT(pg::ExtendLease(*c, stale, absl::Seconds(30)),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_EXPIRED")));
  }
  EXPECT_EQ(Count("state = 2"), 1);
  // A caller that may not see the service is told nothing about it.
  auto other_service_only = [](const std::string& s) { return s == "other"; };
  EXPECT_THAT(pg::ExtendLease(*a, stale, absl::Seconds(30), other_service_only),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")));
  EXPECT_THAT(pg::FinishLease(*a, (*second)[0].token, kSucceeded, absl::Now()), IsOk());
}

TEST_F(LeasesPostgresTest, TwoOutcomesForOneLeaseOnTwoReplicasApplyOnce) {
  // A worker's report reaches replica a, times out, and is retried on replica b while a's
  // transaction is still open: b's conditional write waits on the row lock, then sees the lease
  // completed and is refused. The outcome is applied once.
  Seed("svc", 1, absl::Seconds(-1));
  auto a = Connect();
  auto b = Connect();
  auto got = Claim(*db_, "svc", 1, absl::Seconds(30));
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 1u);
  const std::string token = (*got)[0].token;
  ASSERT_THAT(a->Begin(), IsOk());
  ASSERT_THAT(a->Exec("UPDATE envelopes SET attempt = attempt + 1 WHERE id = $1",
                      pg::Params().Int((*got)[0].id)),
              IsOk());
  ASSERT_THAT(pg::FinishLease(*a, token, kScheduled, absl::Now()), IsOk());
  std::thread commit_later([&a] {
    absl::SleepFor(absl::Milliseconds(200));
    EXPECT_THAT(a->Commit(), IsOk());
  });
  ASSERT_THAT(b->Begin(), IsOk());
  EXPECT_THAT(pg::FinishLease(*b, token, kScheduled, absl::Now()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_NOT_FOUND")));
  b->Rollback();
  commit_later.join();
  EXPECT_EQ(Count("state = 1 AND attempt = 2"), 1) << "applied once";
}

using ExpiryPostgresTest = SharedPostgresTest;

TEST_F(ExpiryPostgresTest, SweepsOnSeveralReplicasTakeEachExpiredLeaseOnce) {
  constexpr int kRows = 600;
  Seed("svc", kRows, absl::Seconds(-1));
  auto got = Claim(*db_, "svc", kRows, absl::Milliseconds(50));
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), static_cast<size_t>(kRows));
  absl::SleepFor(absl::Milliseconds(100));
  std::atomic<int> swept{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([this, &swept] {
      auto c = Connect();
      ASSERT_NE(c, nullptr);
      for (;;) {
        auto n = SweepAndRequeue(*c, 25);
        ASSERT_THAT(n, IsOk());
        if (*n == 0) return;
        swept += *n;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(swept.load(), kRows);
  EXPECT_EQ(Count("state = 1 AND attempt = 2"), kRows) << "each expiry counted once";
}

using GuardRowsPostgresTest = SharedPostgresTest;

TEST_F(GuardRowsPostgresTest, RowRoundTripsAndOnlyOneOfConcurrentWritesFromOneVersionWins) {
  CircuitRecord open;
  open.service = "svc";
  open.state = CircuitState::kOpen;
  open.since = absl::FromUnixMicros(1700000000000000);
  open.next_probe_at = open.since + absl::Seconds(60);
  open.open_duration = absl::Seconds(60);
  open.override_at = absl::InfinitePast();
  open.windows = std::string("\x01\x00\xff", 3);
  auto first = pg::CasGuardRow(*db_, open, 0);
  ASSERT_THAT(first, IsOk());
  ASSERT_EQ(*first, std::optional<int64_t>(1));
  auto loaded = pg::LoadGuardRow(*db_, "svc");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->version, 1);
  EXPECT_EQ(loaded->record.state, CircuitState::kOpen);
  EXPECT_EQ(loaded->record.next_probe_at, open.next_probe_at);
  EXPECT_EQ(loaded->record.override_at, absl::InfinitePast());
  EXPECT_EQ(loaded->record.windows, open.windows);
  // A second first write loses.
  auto again = pg::CasGuardRow(*db_, open, 0);
  ASSERT_THAT(again, IsOk());
  EXPECT_FALSE(again->has_value());
  // Three replicas write from the version they all read: one wins.
  constexpr int kReplicas = 3;
  std::vector<std::unique_ptr<pg::Connection>> conns;
  for (int r = 0; r < kReplicas; ++r) conns.push_back(Connect());
  std::atomic<int> winners{0};
  std::vector<std::thread> threads;
  absl::Notification go;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      CircuitRecord mine = open;
      mine.state = CircuitState::kHalfOpen;
      mine.override_note = absl::StrCat("replica ", r);
      go.WaitForNotification();
      auto won = pg::CasGuardRow(*conns[r], mine, 1);
      ASSERT_THAT(won, IsOk());
      if (won->has_value()) ++winners;
    });
  }
  go.Notify();
  for (auto& t : threads) t.join();
  EXPECT_EQ(winners.load(), 1);
  loaded = pg::LoadGuardRow(*db_, "svc");
  ASSERT_THAT(loaded, IsOk());
  EXPECT_EQ(loaded->version, 2);
  EXPECT_THAT(loaded->record.override_note, HasSubstr("replica "));
}

// The real budget and breaker on the fleet's row (pg_guard_sync.h): a circuit that opens at 60
// failures in its window, 200 ms open, 2 trials.
class FleetGuardsPostgresTest : public SharedPostgresTest {
 protected:
  void SetUp() override {
    SharedPostgresTest::SetUp();
    if (IsSkipped()) return;
    Policy p;
    p.name = "svc";
    p.circuit.enabled = true;
    p.circuit.minimum_calls = 60;
    p.circuit.failure_rate_threshold = 0.5;
    p.circuit.open_duration = absl::Milliseconds(200);
    p.circuit.half_open_trials = 2;
    auto set = PolicySet::Create({p});
    ASSERT_THAT(set, IsOk());
    policies_ = *std::move(set);
  }

  // `n` RecordOutcomes of one failure each, one fleet-row write each, on `c`.
  void Failures(pg::Connection& c, int n) {
    for (int i = 0; i < n; ++i) {
      auto now = pg::DbNow(c);
      ASSERT_THAT(now, IsOk());
      auto done = pg::ApplyToGuardRow(c, policies_, "svc", *now,
                                      [&](ServiceGuards& g, const std::string& s) {
                                        g.RecordOutcomes(s, *now, 0, 1);
                                      });
      ASSERT_THAT(done, IsOk());
    }
  }

  CircuitState State() {
    auto row = pg::LoadGuardRow(*db_, "svc");
    EXPECT_THAT(row, IsOk());
    return row.ok() ? row->record.state : CircuitState::kUnspecified;
  }

  PolicySet policies_;
};

TEST_F(FleetGuardsPostgresTest, FailuresSeenByDifferentReplicasOpenTheCircuitTogether) {
  // One replica's 20 failures are not enough; with 20 more on each of two others, written at
  // the same time, the fleet's window holds 60 and the circuit opens. A lost write would leave it
  // below 60, closed.
  Failures(*db_, 20);
  EXPECT_EQ(State(), CircuitState::kClosed);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([this] {
      auto c = Connect();
      ASSERT_NE(c, nullptr);
      Failures(*c, 20);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(State(), CircuitState::kOpen);
}

TEST_F(FleetGuardsPostgresTest, ExactlyOneReplicaTakesTheHalfOpenTrials) {
  Failures(*db_, 60);
  ASSERT_EQ(State(), CircuitState::kOpen);
  absl::SleepFor(absl::Milliseconds(300));  // Past the open duration.
  constexpr int kReplicas = 3;
  std::vector<int> granted(kReplicas, 0);
  std::vector<int> attempts(kReplicas, 0);
  std::vector<std::thread> threads;
  absl::Notification go;
  for (int r = 0; r < kReplicas; ++r) {
    threads.emplace_back([&, r] {
      auto c = Connect();
      ASSERT_NE(c, nullptr);
      auto now = pg::DbNow(*c);
      ASSERT_THAT(now, IsOk());
      go.WaitForNotification();
      // Each replica has two due envelopes and leases what the circuit allows.
      auto done = pg::ApplyToGuardRow(
          *c, policies_, "svc", *now, [&](ServiceGuards& g, const std::string& s) {
            bool changed = false;
            const int64_t allowed = std::min<int64_t>(2, g.LeaseAllowance(s, *now, &changed));
            std::vector<int64_t> ids;
            for (int64_t i = 0; i < allowed; ++i) ids.push_back(r * 100 + i + 1);
            g.OnLeased(s, *now, ids, /*drained=*/false);
            granted[r] = static_cast<int>(ids.size());
          });
      ASSERT_THAT(done, IsOk());
      attempts[r] = done->attempts;
    });
  }
  go.Notify();
  for (auto& t : threads) t.join();
  int total = 0;
  int holders = 0;
  for (int r = 0; r < kReplicas; ++r) {
    total += granted[r];
    if (granted[r] > 0) ++holders;
  }
  EXPECT_EQ(total, 2) << "the trials were handed out once";
  EXPECT_EQ(holders, 1) << "by one replica";
  EXPECT_EQ(State(), CircuitState::kHalfOpen);
  std::cout << "half-open race: CAS attempts per replica " << attempts[0] << ", " << attempts[1]
            << ", " << attempts[2] << "\n";
}

using JobClaimsPostgresTest = SharedPostgresTest;

// One paced step of a replay job, as a replica runs it: under the job's epoch, re-schedules the
// next `n` dead letters after the stored cursor and moves the cursor, in one transaction.
absl::StatusOr<int> ReplayStep(pg::Connection& c, int64_t epoch, int n) {
  RETURN_IF_ERROR(c.Begin());
  auto step = [&]() -> absl::StatusOr<int> {
    RETURN_IF_ERROR(pg::FenceJob(c, "replay", "1", epoch));
    ASSIGN_OR_RETURN(pg::Result r,
                     c.Exec("WITH next AS (SELECT id FROM envelopes WHERE state = 3 AND id >"
                            " (SELECT cursor_id FROM replays WHERE id = 1) ORDER BY id LIMIT $1)"
                            " UPDATE envelopes e SET state = 1, attempt = attempt + 1 FROM next"
                            " WHERE e.id = next.id RETURNING e.id",
                            pg::Params().Int(n)));
    int64_t last = 0;
    for (int i = 0; i < r.rows(); ++i) last = std::max(last, r.Int(i, 0));
    if (r.rows() > 0) {
      RETURN_IF_ERROR(
          c.Exec("UPDATE replays SET cursor_id = $1 WHERE id = 1", pg::Params().Int(last))
              .status());
    }
    return r.rows();
  };
  absl::StatusOr<int> done = step();
  if (!done.ok()) {
    c.Rollback();
    return done;
  }
  RETURN_IF_ERROR(c.Commit());
  return done;
}

TEST_F(JobClaimsPostgresTest, ReplayIsResumedByAnotherReplicaWhenItsHolderDies) {
  constexpr int kDead = 300;
  Seed("svc", kDead, absl::Seconds(-1));
  ASSERT_THAT(db_->ExecScript("UPDATE envelopes SET state = 3;"
                              "INSERT INTO replays (id, state, created_at, body, cursor_at,"
                              " cursor_id, phase, canary_ids) VALUES (1, 1, 0, ''::bytea, 0, 0,"
                              " 0, '')"),
              IsOk());
  const absl::Duration takeover = absl::Milliseconds(300);
  auto a = Connect();
  auto b = Connect();
  auto ea = pg::ClaimJob(*a, "replay", "1", "replica-a", takeover);
  ASSERT_THAT(ea, IsOk());
  ASSERT_TRUE(ea->has_value());
  for (int i = 0; i < 5; ++i) ASSERT_THAT(ReplayStep(*a, **ea, 20), IsOk());
  // While a's heartbeat is fresh, b does not take the job.
  ASSERT_THAT(pg::HeartbeatJob(*a, "replay", "1", **ea), IsOk());
  auto early = pg::ClaimJob(*b, "replay", "1", "replica-b", takeover);
  ASSERT_THAT(early, IsOk());
  EXPECT_FALSE(early->has_value());
  // a dies mid-step (kill -9: its session ends, its open transaction is rolled back).
  ASSERT_THAT(a->Begin(), IsOk());
  ASSERT_THAT(a->ExecScript("UPDATE envelopes SET state = 1 WHERE state = 3 AND id IN"
                            " (SELECT id FROM envelopes WHERE state = 3 ORDER BY id LIMIT 20)"),
              IsOk());
  a.reset();
  absl::SleepFor(takeover + absl::Milliseconds(100));
  auto eb = pg::ClaimJob(*b, "replay", "1", "replica-b", takeover);
  ASSERT_THAT(eb, IsOk());
  ASSERT_TRUE(eb->has_value());
  EXPECT_EQ(**eb, **ea + 1);
  // A holder that was only paused (not dead) wakes up after the takeover: fenced.
  auto a_again = Connect();
  EXPECT_THAT(ReplayStep(*a_again, **ea, 20),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("JOB_TAKEN_OVER")));
  for (;;) {
    auto n = ReplayStep(*b, **eb, 20);
    ASSERT_THAT(n, IsOk());
    if (*n == 0) break;
  }
  ASSERT_THAT(pg::ReleaseJob(*b, "replay", "1", **eb), IsOk());
  EXPECT_EQ(Count("state = 1 AND attempt = 2"), kDead) << "every dead letter replayed once";
  EXPECT_EQ(Count("attempt <> 2"), 0);
}

using DueSignalPostgresTest = SharedPostgresTest;

TEST_F(DueSignalPostgresTest, ParkedPollOnAnotherReplicaWakesPromptly) {
  absl::Mutex mu;
  std::vector<std::pair<std::string, absl::Time>> heard;
  // The channel is the database's, shared with the other tests' schemas: listen for a service of
  // this test's own.
  const std::string service = absl::StrCat("wake-", getpid());
  auto listener = pg::DueListener::Start(dsn_, [&](const std::string& s) {
    if (s != service) return;
    absl::MutexLock l(&mu);
    heard.emplace_back(s, absl::Now());
  });
  ASSERT_THAT(listener, IsOk());
  auto notifier = pg::DueNotifier::Start(dsn_, absl::Milliseconds(50));
  ASSERT_THAT(notifier, IsOk());
  std::vector<absl::Duration> latencies;
  for (int i = 0; i < 10; ++i) {
    // Replica b commits due work (a plain autocommitted insert: no NOTIFY in it), then signals.
    Seed("svc", 1, absl::Seconds(-1), absl::StrCat("w", i, "-"));
    const absl::Time committed = absl::Now();
    (*notifier)->Signal(service);
    absl::Time woke = absl::InfiniteFuture();
    const absl::Time give_up = committed + absl::Seconds(3);
    while (absl::Now() < give_up) {
      {
        absl::MutexLock l(&mu);
        if (!heard.empty()) {
          EXPECT_EQ(heard.back().first, service);
          woke = heard.back().second;
          heard.clear();
          break;
        }
      }
      absl::SleepFor(absl::Microseconds(200));
    }
    ASSERT_NE(woke, absl::InfiniteFuture()) << "no wake-up within 3 s";
    latencies.push_back(woke - committed);
    absl::SleepFor(absl::Milliseconds(60));  // Past the notifier's interval.
  }
  std::sort(latencies.begin(), latencies.end());
  std::cout << "wake-up across replicas: median " << latencies[latencies.size() / 2] << ", max "
            << latencies.back() << "\n";
  EXPECT_LT(latencies.back(), absl::Milliseconds(500));
  // And the next due time a parked poll re-reads.
  auto next = pg::NextDueAt(*db_, "svc");
  ASSERT_THAT(next, IsOk());
  EXPECT_NE(*next, absl::InfiniteFuture());
}

TEST_F(DueSignalPostgresTest, NotificationsResumeAfterTheirConnectionsAreLost) {
  absl::Mutex mu;
  std::vector<std::string> heard;
  // Its own sessions carry a name of their own: other tests share the database (in schemas of
  // their own) and must keep their sessions.
  const std::string app = absl::StrCat("due_signal_test_", getpid());
  const std::string dsn = absl::StrCat(dsn_, " application_name=", app);
  auto listener = pg::DueListener::Start(dsn, [&](const std::string& service) {
    absl::MutexLock l(&mu);
    heard.push_back(service);
  });
  ASSERT_THAT(listener, IsOk());
  auto notifier = pg::DueNotifier::Start(dsn, absl::Milliseconds(10));
  ASSERT_THAT(notifier, IsOk());
  // The listener's and the notifier's sessions end.
  ASSERT_THAT(db_->Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = $1",
                        pg::Params().Text(app)),
              IsOk());
  auto heard_service = [&] {
    absl::MutexLock l(&mu);
    return std::find(heard.begin(), heard.end(), "svc") != heard.end();
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(8);
  while (!heard_service() && absl::Now() < deadline) {
    (*notifier)->Signal("svc");
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(heard_service()) << "no notification heard after the reconnects";
  absl::MutexLock l(&mu);
  EXPECT_EQ(heard.front(), "") << "the listener said it may have missed notifications";
}

TEST_F(DueSignalPostgresTest, SignalsOfOneServiceAreCoalesced) {
  // The channel is the database's, shared with the other tests' schemas: count only a service
  // of this test's own.
  const std::string service = absl::StrCat("coalesced-", getpid());
  std::atomic<int> heard{0};
  auto listener = pg::DueListener::Start(dsn_, [&](const std::string& s) {
    if (s == service) ++heard;
  });
  ASSERT_THAT(listener, IsOk());
  auto notifier = pg::DueNotifier::Start(dsn_, absl::Milliseconds(200));
  ASSERT_THAT(notifier, IsOk());
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Milliseconds(500)) {
    (*notifier)->Signal(service);
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::SleepFor(absl::Milliseconds(300));
  // ~500 signals in 0.5 s at one per 200 ms: 3 or 4 notifications, not hundreds.
  EXPECT_LE((*notifier)->sent(), 5);
  EXPECT_GE((*notifier)->sent(), 2);
  EXPECT_EQ(heard.load(), (*notifier)->sent());
}

}  // namespace
}  // namespace retryd
