// The engine keeps the store's log short while requests never stop: the writer never checkpoints
// itself, and the checkpointer pauses it between two batches now and then so that the log starts
// over. Without that pause the WAL only grows (a checkpoint racing a writer that always commits
// never copies everything).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/sqlite_store.h"
#include "server/util/clock.h"
#include "server/util/random.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

TEST(EngineCheckpointTest, TheLogStartsOverUnderContinuousLoad) {
  const std::string dir = testing::MakeTempDir();
  absl::StatusOr<PolicySet> policies = PolicySet::Create({});
  ASSERT_TRUE(policies.ok()) << policies.status();
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(dir + "/data");
  ASSERT_TRUE(store.ok()) << store.status();
  MtRandom rng;
  EngineOptions options;
  options.checkpoint_interval = absl::Milliseconds(5);
  options.log_restart_pages = 500;  // 2 MB.
  absl::StatusOr<std::unique_ptr<Engine>> engine =
      Engine::Start(store->get(), &*policies, &SystemClock::Get(), &rng, options);
  ASSERT_TRUE(engine.ok()) << engine.status();

  // 4 000 first failures with 4 KB payloads, 64 in flight: 12 000+ WAL pages (48 MB+) in all.
  constexpr int kRequests = 4000;
  constexpr int kInFlight = 64;
  absl::Mutex mu;
  int in_flight = 0;
  int failed = 0;
  const std::string payload(4096, 'p');
  for (int i = 0; i < kRequests; ++i) {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(+[](int* n) { return *n < kInFlight; }, &in_flight));
      ++in_flight;
    }
    Envelope e;
    e.service = "billing";
    e.message_id = absl::StrCat("m", i);
    e.payload = payload;
    Failure f;
    f.error_code = "UPSTREAM_TIMEOUT";
    f.error_class = ErrorClass::kTransient;
    (*engine)->ReportFailure(e, f, "", [&](absl::StatusOr<Decision> d) {
      absl::MutexLock lock(&mu);
      --in_flight;
      if (!d.ok()) ++failed;
    });
  }
  {
    absl::MutexLock lock(&mu);
    mu.Await(absl::Condition(+[](int* n) { return *n == 0; }, &in_flight));
    EXPECT_EQ(failed, 0);
  }
  const auto wal_bytes = std::filesystem::file_size(dir + "/data/retryd.db-wal");
  EXPECT_LT(wal_bytes, 16u << 20) << "the WAL grew to " << wal_bytes << " bytes";

  (*engine)->Stop();
  engine->reset();
  store->reset();
  testing::RemoveTree(dir);
}

}  // namespace
}  // namespace retryd
