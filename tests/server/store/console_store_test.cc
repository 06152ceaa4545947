// The store queries behind the console's API additions, on both stores (a real SQLite file, a
// real PostgreSQL): the dead-letter histogram (per service and bucket, against a brute-force
// count; on SQLite, read from an index only) and the filtered audit log (every filter against a
// brute-force selection, stable keyset paging).
#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/test_stores.h"

namespace retryd {
namespace {

using testing::IsOk;
using testing::MakeTempDir;
using testing::RemoveTree;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);
const std::vector<std::string> kServices = {"billing", "inventory", "mail.out"};

class ConsoleStoreTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    auto where = testing::NewStoreLocation(GetParam());
    ASSERT_THAT(where, IsOk());
    where_ = *where;
    auto store = testing::OpenStore(where_);
    ASSERT_THAT(store, IsOk());
    store_ = std::move(*store);
  }
  void TearDown() override {
    store_.reset();
    testing::RemoveStoreLocation(where_);
  }

  // A dead letter (or, with `scheduled`, a scheduled retry due) at `at`.
  void Put(const std::string& service, int n, absl::Time at, bool scheduled = false) {
    Envelope e;
    e.service = service;
    e.message_id = absl::StrCat("m", n);
    e.attempt = 1;
    e.max_attempts = 5;
    e.first_seen_at = kT0;
    e.created_at = kT0;
    e.updated_at = kT0;
    e.last_error.error_code = "E";
    if (scheduled) {
      e.state = EnvelopeState::kScheduled;
      e.next_retry_at = at;
      e.last_decision = DecisionKind::kScheduled;
    } else {
      e.state = EnvelopeState::kDeadLettered;
      e.dead_lettered_at = at;
      e.dead_letter_reason = DeadLetterReason::kNonRetryable;
      e.last_decision = DecisionKind::kDeadLettered;
    }
    ASSERT_THAT(store_->Begin(), IsOk());
    ASSERT_THAT(store_->Insert(&e), IsOk());
    ASSERT_THAT(store_->Commit(), IsOk());
  }

  testing::StoreLocation where_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, ConsoleStoreTest, testing::AllStoreKinds(),
                         testing::StoreKindName);

struct Row {
  std::string service;
  absl::Time at;
  bool scheduled;
};

// The histogram of random dead letters against a count done here, for many ranges, widths and
// service selections; scheduled envelopes at the same times are never counted.
TEST_P(ConsoleStoreTest, HistogramMatchesABruteForceCount) {
  std::mt19937 rng(7);
  std::vector<Row> rows;
  for (int n = 0; n < 400; ++n) {
    Row r{kServices[rng() % kServices.size()], kT0 + absl::Milliseconds(rng() % 3600000),
          rng() % 5 == 0};
    Put(r.service, n, r.at, r.scheduled);
    rows.push_back(r);
  }
  for (int round = 0; round < 60; ++round) {
    const absl::Time since = kT0 + absl::Seconds(static_cast<int>(rng() % 1800)) -
                             absl::Seconds(300);
    const absl::Time until = since + absl::Seconds(1 + static_cast<int>(rng() % 3600));
    const absl::Duration width = absl::Seconds(1 + static_cast<int>(rng() % 900));
    const std::string service = rng() % 3 == 0 ? "" : kServices[rng() % kServices.size()];
    std::map<std::pair<std::string, int64_t>, int64_t> want;
    for (const Row& r : rows) {
      if (r.scheduled || r.at < since || r.at >= until) continue;
      if (!service.empty() && r.service != service) continue;
      ++want[{r.service, (r.at - since) / width}];
    }
    auto got = store_->DeadLetterHistogram(service, since, until, width);
    ASSERT_THAT(got, IsOk());
    std::map<std::pair<std::string, int64_t>, int64_t> have;
    std::pair<std::string, int64_t> last;
    for (const HistogramCell& c : *got) {
      EXPECT_GT(c.count, 0);
      EXPECT_LT(last, std::make_pair(c.service, c.bucket)) << "cells out of order";
      last = {c.service, c.bucket};
      have[last] = c.count;
    }
    EXPECT_EQ(have, want) << "round " << round << " service '" << service << "'";
  }
}

// A dead letter exactly at a bucket's start is in that bucket; one at `until` is not counted.
TEST_P(ConsoleStoreTest, HistogramBucketEdges) {
  Put("billing", 1, kT0);
  Put("billing", 2, kT0 + absl::Seconds(60) - absl::Microseconds(1));
  Put("billing", 3, kT0 + absl::Seconds(60));
  Put("billing", 4, kT0 + absl::Seconds(120));
  auto got = store_->DeadLetterHistogram("", kT0, kT0 + absl::Seconds(120), absl::Seconds(60));
  ASSERT_THAT(got, IsOk());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].bucket, 0);
  EXPECT_EQ((*got)[0].count, 2);
  EXPECT_EQ((*got)[1].bucket, 1);
  EXPECT_EQ((*got)[1].count, 1);
  EXPECT_THAT(store_->DeadLetterHistogram("nobody", kT0, kT0 + absl::Hours(1), absl::Minutes(1)),
              IsOk());
  EXPECT_FALSE(store_->DeadLetterHistogram("", kT0, kT0, absl::Minutes(1)).ok());
  EXPECT_FALSE(
      store_->DeadLetterHistogram("", kT0, kT0 + absl::Hours(1), absl::ZeroDuration()).ok());
}

// The histogram's query reads an index that covers it, never the envelope rows (whose payloads
// and details make them large): across services and for one service.
TEST_P(ConsoleStoreTest, HistogramIsCountedFromACoveringIndex) {
  if (GetParam() != testing::StoreKind::kSqlite) GTEST_SKIP() << "SQLite's query plan";
  Put("billing", 1, kT0);
  auto db = sqlite::Database::Open(where_.data_dir + "/retryd.db", /*read_only=*/true);
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
  // The statements SqliteStore::DeadLetterHistogram builds (see sqlite_store_histogram.cc).
  const std::string all = plan(
      "SELECT e.service_id, (e.sort_at - 1) / 60 AS bucket, count(*) FROM envelopes e "
      "INDEXED BY envelopes_dead_histogram WHERE e.state = 3 AND e.sort_at >= 1 "
      "AND e.sort_at < 9 GROUP BY e.service_id, bucket");
  EXPECT_THAT(all, HasSubstr("COVERING INDEX envelopes_dead_histogram"));
  const std::string one = plan(
      "SELECT e.service_id, (e.sort_at - 1) / 60 AS bucket, count(*) FROM envelopes e "
      "WHERE e.state = 3 AND e.service_id = (SELECT id FROM services WHERE name = 'billing') "
      "AND e.sort_at >= 1 AND e.sort_at < 9 GROUP BY e.service_id, bucket");
  EXPECT_THAT(one, HasSubstr("COVERING INDEX envelopes_by_state"));
  EXPECT_THAT(one, Not(HasSubstr("SCAN e")));
}

const std::vector<std::string> kMethods = {"PurgeDeadLetters", "StartReplay",
                                           "SetCircuitOverride", "CancelReplay"};
const std::vector<std::string> kIdentities = {"alice", "bob", "anonymous"};
const std::vector<std::string> kTargets = {"billing", "inventory", "replays/1", "*"};
const std::vector<std::string> kResults = {"OK", "INVALID_ARGUMENT", "NOT_FOUND"};

// Every audit filter (and their combinations) against a selection done here, read page by page.
TEST_P(ConsoleStoreTest, AuditFiltersMatchABruteForceSelectionAcrossPages) {
  std::mt19937 rng(11);
  std::vector<AuditRecord> all;
  ASSERT_THAT(store_->Begin(), IsOk());
  for (int n = 0; n < 200; ++n) {
    AuditRecord r;
    r.time = kT0 + absl::Seconds(n / 2);  // Ties on time are common.
    r.method = kMethods[rng() % kMethods.size()];
    r.identity = kIdentities[rng() % kIdentities.size()];
    r.target = kTargets[rng() % kTargets.size()];
    r.result_code = kResults[rng() % kResults.size()];
    ASSERT_THAT(store_->AppendAudit(&r), IsOk());
    all.push_back(r);
  }
  ASSERT_THAT(store_->Commit(), IsOk());
  auto some = [&rng](const std::vector<std::string>& pool) {
    std::vector<std::string> out;
    if (rng() % 2 == 0) return out;
    for (int i = 0, n = 1 + rng() % 2; i < n; ++i) out.push_back(pool[rng() % pool.size()]);
    return out;
  };
  auto in = [](const std::vector<std::string>& values, const std::string& v) {
    return values.empty() || std::find(values.begin(), values.end(), v) != values.end();
  };
  for (int round = 0; round < 80; ++round) {
    AuditQuery q;
    q.methods = some(kMethods);
    q.identities = some(kIdentities);
    q.targets = some(kTargets);
    q.result_codes = some(kResults);
    if (rng() % 3 == 0) q.since = kT0 + absl::Seconds(rng() % 100);
    if (rng() % 3 == 0) q.until = kT0 + absl::Seconds(rng() % 100);
    std::vector<int64_t> want;
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      if (in(q.methods, it->method) && in(q.identities, it->identity) &&
          in(q.targets, it->target) && in(q.result_codes, it->result_code) &&
          it->time >= q.since && it->time < q.until) {
        want.push_back(it->id);
      }
    }
    std::vector<int64_t> got;
    q.limit = 1 + rng() % 7;
    for (int pages = 0; pages < 300; ++pages) {
      auto page = store_->ListAudit(q);
      ASSERT_THAT(page, IsOk());
      for (const AuditRecord& r : *page) got.push_back(r.id);
      if (static_cast<int>(page->size()) < q.limit) break;
      q.before_id = page->back().id;
    }
    EXPECT_EQ(got, want) << "round " << round;
  }
}

}  // namespace
}  // namespace retryd
