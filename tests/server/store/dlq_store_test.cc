// Dead-letter queries of SqliteStore on a real SQLite file: every filter field against a
// brute-force oracle over random data (many seeds), keyset paging while rows are inserted,
// failure groups and stats.
#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/fingerprint.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/test_stores.h"
#include "tests/testing/schema_downgrade.h"
#include "tests/testing/server_process.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using testing::IsOk;
using testing::MakeTempDir;
using testing::RemoveTree;

const absl::Time kT0 = absl::FromUnixMicros(1700000000123456);

const std::vector<std::string> kServices = {"billing", "inventory", "mail.out"};
const std::vector<std::string> kCodes = {"UPSTREAM_TIMEOUT", "BAD_SCHEMA", "HTTP_503", ""};
const std::vector<std::string> kSchemas = {"v1", "v2", ""};
const std::vector<std::string> kMessages = {"order 17 not found", "order 99 not found",
                                            "timed out after 30s", "bad field 'sku'"};

class DlqStoreTest : public ::testing::TestWithParam<testing::StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    absl::StatusOr<testing::StoreLocation> where = testing::NewStoreLocation(GetParam());
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

  // Inserts `e` in its own batch.
  void Put(Envelope* e) {
    ASSERT_THAT(store_->Begin(), IsOk());
    ASSERT_THAT(store_->Insert(e), IsOk());
    ASSERT_THAT(store_->Commit(), IsOk());
  }

  // `count` random envelopes from seed `seed`, message ids "<prefix><n>" (so no key clashes),
  // each inserted in its own batch; returns them as inserted.
  std::vector<Envelope> PutRandom(unsigned seed, int count, const std::string& prefix) {
    std::mt19937 rng(seed);
    std::vector<Envelope> rows;
    for (int n = 0; n < count; ++n) {
      Envelope e = Random(rng, n);
      e.message_id = absl::StrCat(prefix, n);
      Put(&e);
      rows.push_back(e);
    }
    return rows;
  }

  // A random envelope: dead-lettered (mostly) or scheduled, times drawn from a small range so
  // that ties (same time, different id) are common.
  Envelope Random(std::mt19937& rng, int n) {
    auto pick = [&rng](const auto& v) { return v[rng() % v.size()]; };
    Envelope e;
    e.service = pick(kServices);
    e.message_id = absl::StrCat("m", n % 40, "-", n);
    if (rng() % 4 == 0) e.message_id = absl::StrCat("m", n % 7);  // Shared across services.
    e.attempt = 1;
    e.first_seen_at = kT0;
    e.created_at = kT0;
    e.updated_at = kT0;
    e.max_attempts = 5;
    e.schema_version = pick(kSchemas);
    e.last_error.error_code = pick(kCodes);
    e.last_error_class = static_cast<ErrorClass>(1 + rng() % 3);
    e.last_error.error_class = e.last_error_class;
    e.last_error.message = pick(kMessages);
    const absl::Time at = kT0 + absl::Seconds(rng() % 30);
    if (rng() % 5 == 0) {
      e.state = EnvelopeState::kScheduled;
      e.next_retry_at = at;
      e.last_decision = DecisionKind::kScheduled;
    } else {
      e.state = EnvelopeState::kDeadLettered;
      e.dead_lettered_at = at;
      e.dead_letter_reason = static_cast<DeadLetterReason>(1 + rng() % 4);
      e.last_decision = DecisionKind::kDeadLettered;
    }
    return e;
  }

  // A random filter over the same value pools (each field empty half the time).
  static EnvelopeFilter RandomFilter(std::mt19937& rng, const std::vector<Envelope>& rows) {
    EnvelopeFilter f;
    auto some = [&rng](auto& out, const auto& pool) {
      if (rng() % 2 == 0) return;
      const int n = 1 + rng() % 2;
      for (int i = 0; i < n; ++i) out.push_back(pool[rng() % pool.size()]);
    };
    if (rng() % 2 == 0) f.service = kServices[rng() % kServices.size()];
    some(f.error_codes, kCodes);
    some(f.error_classes, std::vector<ErrorClass>{ErrorClass::kTransient,
                                                   ErrorClass::kRecoverable,
                                                   ErrorClass::kPermanent});
    some(f.reasons, std::vector<DeadLetterReason>{
                        DeadLetterReason::kNonRetryable, DeadLetterReason::kRetryExhausted,
                        DeadLetterReason::kDeadlineExceeded, DeadLetterReason::kBudgetExhausted});
    some(f.schema_versions, kSchemas);
    std::vector<std::string> ids;
    std::vector<std::string> fps;
    for (const Envelope& e : rows) {
      ids.push_back(e.message_id);
      if (e.state == EnvelopeState::kDeadLettered) fps.push_back(FailureFingerprint(e));
    }
    if (rng() % 4 == 0) some(f.message_ids, ids);
    if (rng() % 3 == 0 && !fps.empty()) some(f.fingerprints, fps);
    if (rng() % 3 == 0) f.after = kT0 + absl::Seconds(rng() % 30);
    if (rng() % 3 == 0) f.before = kT0 + absl::Seconds(rng() % 30);
    return f;
  }

  template <typename T>
  static bool In(const std::vector<T>& values, const T& v) {
    return values.empty() || std::find(values.begin(), values.end(), v) != values.end();
  }

  // The oracle: the filter's meaning, written the plain way.
  static bool Matches(const EnvelopeFilter& f, EnvelopeState state, const Envelope& e) {
    const absl::Time t = state == EnvelopeState::kDeadLettered ? e.dead_lettered_at
                                                               : e.next_retry_at;
    return e.state == state && (f.service.empty() || e.service == f.service) &&
           In(f.error_codes, e.last_error.error_code) &&
           In(f.error_classes, e.last_error_class) &&
           (f.reasons.empty() ||
            (state == EnvelopeState::kDeadLettered && In(f.reasons, e.dead_letter_reason))) &&
           In(f.schema_versions, e.schema_version) && In(f.message_ids, e.message_id) &&
           (f.fingerprints.empty() || (state == EnvelopeState::kDeadLettered &&
                                       In(f.fingerprints, FailureFingerprint(e)))) &&
           t >= f.after && t < f.before;
  }

  // Pages through a listing; returns the ids in listing order.
  std::vector<int64_t> ListAll(ListQuery q, int page_size) {
    std::vector<int64_t> ids;
    q.limit = page_size;
    for (int pages = 0; pages < 10000; ++pages) {
      absl::StatusOr<ListPage> page = store_->List(q);
      EXPECT_THAT(page, IsOk());
      if (!page.ok() || page->envelopes.empty()) return ids;
      for (const Envelope& e : page->envelopes) ids.push_back(e.id);
      q.after_time = page->keys.back().time;
      q.after_id = page->keys.back().id;
    }
    ADD_FAILURE() << "listing did not end";
    return ids;
  }

  testing::StoreLocation where_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, DlqStoreTest, testing::AllStoreKinds(), testing::StoreKindName);

// Tests of SQLite's own schema upgrades.
class DlqStoreTestSqlite : public DlqStoreTest {};
INSTANTIATE_TEST_SUITE_P(Stores, DlqStoreTestSqlite, ::testing::Values(testing::StoreKind::kSqlite),
                         testing::StoreKindName);

TEST_P(DlqStoreTest, FiltersMatchABruteForceOracleOverManySeeds) {
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    TearDown();
    SetUp();
    std::mt19937 rng(seed);
    std::vector<Envelope> rows;
    ASSERT_THAT(store_->Begin(), IsOk());
    for (int n = 0; n < 300; ++n) {
      Envelope e = Random(rng, n);
      if (store_->Insert(&e).ok()) rows.push_back(e);  // Key clashes are skipped.
    }
    ASSERT_THAT(store_->Commit(), IsOk());
    for (int trial = 0; trial < 40; ++trial) {
      const EnvelopeFilter f = RandomFilter(rng, rows);
      for (EnvelopeState state : {EnvelopeState::kDeadLettered, EnvelopeState::kScheduled}) {
        std::vector<std::tuple<absl::Time, int64_t>> want;
        for (const Envelope& e : rows) {
          if (Matches(f, state, e)) {
            want.emplace_back(state == EnvelopeState::kDeadLettered ? e.dead_lettered_at
                                                                    : e.next_retry_at,
                              e.id);
          }
        }
        std::sort(want.begin(), want.end());
        std::vector<int64_t> want_ids;
        for (const auto& [t, id] : want) want_ids.push_back(id);
        ListQuery q;
        q.state = state;
        q.filter = f;
        const int page_size = 1 + rng() % 20;
        ASSERT_EQ(ListAll(q, page_size), want_ids)
            << "trial " << trial << " state " << static_cast<int>(state) << " page "
            << page_size << " filter " << CanonicalFilterKey(f);
        if (state == EnvelopeState::kDeadLettered) {
          absl::StatusOr<int64_t> count = store_->CountDeadLetters(f);
          ASSERT_THAT(count, IsOk());
          EXPECT_EQ(*count, static_cast<int64_t>(want_ids.size()));
        }
      }
    }
  }
}

TEST_P(DlqStoreTest, PagingWhileInsertingShowsEveryRowExactlyOnce) {
  std::mt19937 rng(7);
  std::set<int64_t> present;  // Rows stored before the listing started.
  int n = 0;
  for (; n < 500; ++n) {
    Envelope e = Random(rng, n);
    e.message_id = absl::StrCat("pre-", n);
    e.state = EnvelopeState::kDeadLettered;
    e.dead_letter_reason = DeadLetterReason::kRetryExhausted;
    e.dead_lettered_at = kT0 + absl::Seconds(rng() % 30);
    Put(&e);
    present.insert(e.id);
  }
  ListQuery q;
  q.limit = 7;
  std::vector<int64_t> seen;
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 2000) << "listing did not end; last key " << q.after_time << " " << q.after_id;
    absl::StatusOr<ListPage> page = store_->List(q);
    ASSERT_THAT(page, IsOk());
    if (page->envelopes.empty()) break;
    for (const Envelope& e : page->envelopes) seen.push_back(e.id);
    q.after_time = page->keys.back().time;
    q.after_id = page->keys.back().id;
    // New dead letters arrive between pages, before and after the cursor, some at its time
    // (for the first 60 pages: one at the cursor's time per page would never let it end).
    for (int k = 0; k < 3 && pages < 60; ++k, ++n) {
      Envelope e = Random(rng, n);
      e.message_id = absl::StrCat("new-", n);
      e.state = EnvelopeState::kDeadLettered;
      e.dead_letter_reason = DeadLetterReason::kNonRetryable;
      e.dead_lettered_at = k == 0 ? q.after_time : kT0 + absl::Seconds(rng() % 40);
      Put(&e);
    }
  }
  std::set<int64_t> unique(seen.begin(), seen.end());
  EXPECT_EQ(unique.size(), seen.size()) << "a row was listed twice";
  for (int64_t id : present) EXPECT_TRUE(unique.count(id)) << "row " << id << " was skipped";
}

TEST_P(DlqStoreTest, FailureGroupsMatchTheOracleAndPageLargestFirst) {
  const std::vector<Envelope> rows = PutRandom(3, 400, "g-");
  std::map<std::string, int64_t> want;
  for (const Envelope& e : rows) {
    if (e.state == EnvelopeState::kDeadLettered) want[FailureFingerprint(e)]++;
  }
  GroupQuery q;
  q.limit = 5;
  std::map<std::string, int64_t> got;
  int64_t previous = INT64_MAX;
  while (true) {
    absl::StatusOr<std::vector<FailureGroupRow>> page = store_->ListFailureGroups(q);
    ASSERT_THAT(page, IsOk());
    if (page->empty()) break;
    for (const FailureGroupRow& g : *page) {
      EXPECT_LE(g.count, previous) << "largest first";
      previous = g.count;
      EXPECT_TRUE(got.emplace(g.fingerprint, g.count).second) << "group listed twice";
      EXPECT_EQ(FailureFingerprint(g.sample), g.fingerprint) << "the sample is of the group";
      EXPECT_LE(g.first_seen, g.last_seen);
    }
    q.after = GroupKey{page->back().count, page->back().fingerprint};
  }
  EXPECT_EQ(got, want);
}

TEST_P(DlqStoreTest, StatsMatchTheOracle) {
  const std::vector<Envelope> rows = PutRandom(11, 300, "s-");
  for (const std::string& service : {std::string(), std::string("billing")}) {
    SCOPED_TRACE(service);
    const absl::Time since = kT0 + absl::Seconds(20);
    absl::StatusOr<DeadLetterStatsRow> stats = store_->DeadLetterStats(service, since);
    ASSERT_THAT(stats, IsOk());
    std::map<std::pair<std::string, int>, int64_t> counts;
    std::map<std::string, int64_t> codes;
    int64_t total = 0;
    int64_t recent = 0;
    absl::Time oldest = absl::InfiniteFuture();
    for (const Envelope& e : rows) {
      if (e.state != EnvelopeState::kDeadLettered) continue;
      if (!service.empty() && e.service != service) continue;
      counts[{e.service, static_cast<int>(e.dead_letter_reason)}]++;
      codes[e.last_error.error_code]++;
      total++;
      if (e.dead_lettered_at >= since) recent++;
      oldest = std::min(oldest, e.dead_lettered_at);
    }
    std::map<std::pair<std::string, int>, int64_t> got;
    for (const auto& c : stats->counts) got[{c.service, static_cast<int>(c.reason)}] = c.count;
    EXPECT_EQ(got, counts);
    EXPECT_EQ(stats->total, total);
    EXPECT_EQ(stats->since_count, recent);
    EXPECT_EQ(stats->oldest, oldest);
    ASSERT_EQ(stats->top_error_codes.size(), std::min<size_t>(10, codes.size()));
    for (const auto& [code, count] : stats->top_error_codes) EXPECT_EQ(codes[code], count);
  }
}

TEST_P(DlqStoreTest, FilterValuesAreBoundNotSpliced) {
  Envelope e = Random(*std::make_unique<std::mt19937>(1), 1);
  e.state = EnvelopeState::kDeadLettered;
  e.dead_lettered_at = kT0;
  e.dead_letter_reason = DeadLetterReason::kNonRetryable;
  e.last_error.error_code = "X') OR 1=1 --";
  Put(&e);
  ListQuery q;
  q.filter.error_codes = {"' OR '1'='1"};
  EXPECT_TRUE(ListAll(q, 10).empty());
  q.filter.error_codes = {"X') OR 1=1 --"};
  EXPECT_EQ(ListAll(q, 10).size(), 1u);
}

TEST_P(DlqStoreTestSqlite, UpgradeFromSchemaOneFingerprintsExistingDeadLetters) {
  Envelope e = Random(*std::make_unique<std::mt19937>(2), 1);
  e.state = EnvelopeState::kDeadLettered;
  e.dead_lettered_at = kT0;
  e.dead_letter_reason = DeadLetterReason::kNonRetryable;
  e.last_error.message = "order 42 not found";
  Put(&e);
  store_.reset();
  // Turn the file back into a version-1 database holding that dead letter (the fingerprint
  // column came with version 3).
  {
    auto db = sqlite::Database::Open(where_.data_dir + "/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaOne), IsOk());
  }
  auto store = testing::OpenStore(where_);
  ASSERT_THAT(store, IsOk());
  store_ = std::move(*store);
  ListQuery q;
  q.filter.fingerprints = {FailureFingerprint(e)};
  EXPECT_EQ(ListAll(q, 10), std::vector<int64_t>{e.id});
}

// Schema 8 changed the normaliser: every id is one placeholder. A version-7 database holds the
// old fingerprints, which put "order a3f9c2d1" (old <hex>) and "order 44173025" (old <n>) in two
// groups; opening it recomputes them, so the groups, the fingerprint filter and the listing agree
// with what FailureFingerprint says now.
TEST_P(DlqStoreTestSqlite, UpgradeFromSchemaSevenRecomputesOldFingerprints) {
  std::vector<Envelope> dead;
  for (const char* message : {"order a3f9c2d1 not found", "order 44173025 not found"}) {
    Envelope e;
    e.service = "inventory";
    e.message_id = message;
    e.state = EnvelopeState::kDeadLettered;
    e.attempt = 3;
    e.max_attempts = 3;
    e.first_seen_at = e.created_at = e.updated_at = e.dead_lettered_at = kT0;
    e.dead_letter_reason = DeadLetterReason::kNonRetryable;
    e.last_error_class = ErrorClass::kTransient;
    e.last_error.error_code = "E";
    e.last_error.message = message;
    Put(&e);
    dead.push_back(e);
  }
  store_.reset();
  {
    auto db = sqlite::Database::Open(where_.data_dir + "/retryd.db", /*read_only=*/false);
    ASSERT_THAT(db, IsOk());
    ASSERT_THAT((*db)->Exec(testing::kDowngradeToSchemaSeven), IsOk());
    // The fingerprints version 7 wrote: FNV-1a 64 of "inventory\x1f1\x1fE\x1forder <hex> not
    // found" and of "... <n> not found" (computed independently of this code).
    ASSERT_THAT((*db)->Exec(absl::StrCat("UPDATE envelopes SET fingerprint = '5054a2607022b19e' "
                                         "WHERE id = ", dead[0].id)),
                IsOk());
    ASSERT_THAT((*db)->Exec(absl::StrCat("UPDATE envelopes SET fingerprint = '08ecccc1ac6d678b' "
                                         "WHERE id = ", dead[1].id)),
                IsOk());
  }
  auto store = testing::OpenStore(where_);
  ASSERT_THAT(store, IsOk());
  store_ = std::move(*store);

  const std::string fp = FailureFingerprint(dead[0]);
  ASSERT_EQ(fp, FailureFingerprint(dead[1]));
  GroupQuery g;
  absl::StatusOr<std::vector<FailureGroupRow>> groups = store_->ListFailureGroups(g);
  ASSERT_THAT(groups, IsOk());
  ASSERT_EQ(groups->size(), 1u);
  EXPECT_EQ((*groups)[0].fingerprint, fp);
  EXPECT_EQ((*groups)[0].count, 2);
  ListQuery q;
  q.filter.fingerprints = {fp};
  EXPECT_EQ(ListAll(q, 10), (std::vector<int64_t>{dead[0].id, dead[1].id}));
}

}  // namespace
}  // namespace retryd
