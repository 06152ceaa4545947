// Engines on SharedScheduler (EngineOptions::make_scheduler): two replicas, each an Engine on a
// PgStore of its own, on one real PostgreSQL schema (tests/testing/pg_cluster.h), driven
// through the engine's public calls as the RPC layer drives them. Their names say Postgres.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/pg/pg_store.h"
#include "server/store/pg/shared_scheduler.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/status_matchers.h"

namespace retryd {
namespace {

using ::retryd::testing::IsOk;
using ::retryd::testing::PgCluster;
using ::retryd::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::SizeIs;

PolicySet TestPolicies() {
  Policy base;
  base.name = "default";
  base.backoff.jitter = JitterKind::kNone;
  Policy fast = base;
  fast.name = "fast";
  fast.backoff.initial = absl::Milliseconds(50);
  return *PolicySet::Create({base, fast});
}

Envelope NewEnvelope(const std::string& service, const std::string& message_id) {
  Envelope e;
  e.service = service;
  e.message_id = message_id;
  e.payload = "payload of " + message_id;
  e.first_seen_at = absl::InfinitePast();
  return e;
}

Failure Transient() {
  Failure f;
  f.error_code = "UPSTREAM_TIMEOUT";
  f.error_class = ErrorClass::kTransient;
  f.message = "timed out";
  return f;
}

// One replica: a store of its own and an engine on it.
struct Node {
  std::unique_ptr<PgStore> store;
  MtRandom rng{11};
  std::unique_ptr<Engine> engine;

  absl::StatusOr<Decision> ReportFailure(Envelope e, const std::string& token = "") {
    absl::StatusOr<Decision> out = absl::UnknownError("no answer");
    absl::Notification done;
    engine->ReportFailure(std::move(e), Transient(), token, [&](absl::StatusOr<Decision> d) {
      out = std::move(d);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  absl::StatusOr<std::vector<LeasedItem>> Lease(const std::string& service,
                                                absl::Duration wait) {
    absl::StatusOr<std::vector<LeasedItem>> out = absl::UnknownError("no answer");
    absl::Notification done;
    LeaseArgs args;
    args.service = service;
    args.max_messages = 10;
    args.wait_until = absl::Now() + wait;
    engine->Lease(std::move(args), [&](absl::StatusOr<std::vector<LeasedItem>> items) {
      out = std::move(items);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
  absl::Status ReportSuccess(const std::string& service, const std::string& token) {
    absl::Status out = absl::UnknownError("no answer");
    absl::Notification done;
    engine->ReportSuccess(service, token, [&](absl::Status s) {
      out = std::move(s);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }
};

class SharedEnginePostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SkipPostgres()) GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";
    auto cluster = PgCluster::Shared();
    ASSERT_THAT(cluster, IsOk());
    auto dsn = (*cluster)->CreateDatabase();
    ASSERT_THAT(dsn, IsOk());
    dsn_ = *dsn;
  }

  std::unique_ptr<Node> Start() {
    auto node = std::make_unique<Node>();
    PgStore::Options store_options;
    store_options.single_owner = false;  // Replicas share the schema.
    auto store = PgStore::Open(dsn_, store_options);
    EXPECT_THAT(store, IsOk());
    if (!store.ok()) return nullptr;
    node->store = std::move(*store);
    SharedSchedulerOptions shared;
    shared.dsn = dsn_;
    EngineOptions options;
    PgStore* pg = node->store.get();
    options.make_scheduler = [pg, shared](const SchedulerContext& ctx) {
      return std::make_unique<SharedScheduler>(ctx, pg, nullptr, shared);
    };
    auto engine =
        Engine::Start(pg, &policies_, &SystemClock::Get(), &node->rng, std::move(options));
    EXPECT_THAT(engine, IsOk());
    if (!engine.ok()) return nullptr;
    node->engine = std::move(*engine);
    return node;
  }

  std::string dsn_;
  const PolicySet policies_ = TestPolicies();
};

TEST_F(SharedEnginePostgresTest, ARetryRecordedOnOneReplicaIsLeasedAndCompletedOnAnother) {
  auto a = Start();
  auto b = Start();
  ASSERT_TRUE(a && b);
  auto decided = a->ReportFailure(NewEnvelope("fast", "m1"));
  ASSERT_THAT(decided, IsOk());
  EXPECT_EQ(decided->kind, DecisionKind::kScheduled);
  // B never saw the failure: its long-poll is woken when the retry comes due.
  const absl::Time asked = absl::Now();
  auto leased = b->Lease("fast", absl::Seconds(10));
  ASSERT_THAT(leased, IsOk());
  ASSERT_THAT(*leased, SizeIs(1));
  EXPECT_LT(absl::Now() - asked, absl::Seconds(3));
  const LeasedItem& item = (*leased)[0];
  EXPECT_EQ(item.envelope.message_id, "m1");
  // The token works on A, once; then on no replica.
  EXPECT_THAT(a->ReportSuccess("fast", item.lease_token), IsOk());
  EXPECT_THAT(b->ReportSuccess("fast", item.lease_token),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("LEASE_")));
  // Counts on both replicas converge: nothing scheduled or leased.
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    const auto sa = a->engine->Stats();
    const auto sb = b->engine->Stats();
    auto quiet = [](const absl::flat_hash_map<std::string, ServiceStats>& s) {
      auto it = s.find("fast");
      return it != s.end() && it->second.scheduled == 0 && it->second.leased == 0;
    };
    if (quiet(sa) && quiet(sb)) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(a->engine->Stats()["fast"].leased, 0);
  EXPECT_EQ(b->engine->Stats()["fast"].leased, 0);
  EXPECT_EQ(b->engine->Stats()["fast"].scheduled, 0);
  b->engine->Stop();
  a->engine->Stop();
}

TEST_F(SharedEnginePostgresTest, AFailedRetryReportedOnAnotherReplicaIsDecidedAgain) {
  auto a = Start();
  auto b = Start();
  ASSERT_TRUE(a && b);
  ASSERT_THAT(a->ReportFailure(NewEnvelope("fast", "m1")), IsOk());
  auto leased = a->Lease("fast", absl::Seconds(10));
  ASSERT_THAT(leased, IsOk());
  ASSERT_THAT(*leased, SizeIs(1));
  Envelope reported = NewEnvelope("fast", "m1");
  auto again = b->ReportFailure(reported, (*leased)[0].lease_token);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->attempt, 2);
  EXPECT_EQ(again->kind, DecisionKind::kScheduled);
  b->engine->Stop();
  a->engine->Stop();
}

}  // namespace
}  // namespace retryd
