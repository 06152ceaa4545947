// The stores a parametrised suite runs against: SQLite (a temporary data dir) and PostgreSQL (a
// fresh database on the run's shared test cluster, tests/testing/pg_cluster.h). Instances are
// named "Sqlite" and "Postgres" (StoreKindName), so `--gtest_filter=-*Postgres*` leaves out every
// PostgreSQL variant (the Dockerfile's builder has no server).
//
//   class MyTest : public ::testing::TestWithParam<StoreKind> { ... };
//   INSTANTIATE_TEST_SUITE_P(Stores, MyTest, AllStoreKinds(), StoreKindName);
#ifndef RETRYD_TESTS_TESTING_TEST_STORES_H_
#define RETRYD_TESTS_TESTING_TEST_STORES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "server/store/store.h"

namespace retryd::testing {

enum class StoreKind { kSqlite, kPostgres };

inline auto AllStoreKinds() {
  return ::testing::Values(StoreKind::kSqlite, StoreKind::kPostgres);
}
std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info);

// Where a test's store lives: a data dir (SQLite) or a DSN (PostgreSQL).
struct StoreLocation {
  StoreKind kind = StoreKind::kSqlite;
  std::string data_dir;  // SQLite; removed by ~StoreLocation's owner (RemoveStoreLocation).
  std::string dsn;       // PostgreSQL.
};

// A new, empty location. For PostgreSQL, a fresh database.
absl::StatusOr<StoreLocation> NewStoreLocation(StoreKind kind);
// Opens (creating, migrating) the store at `where`.
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreLocation& where);
// Deletes a SQLite location's files (PostgreSQL test databases go with their cluster).
void RemoveStoreLocation(const StoreLocation& where);
// The retryd command-line flags that select the store at `where`.
std::vector<std::string> StoreFlags(const StoreLocation& where);

// In a test's SetUp: skips PostgreSQL variants when RETRYD_SKIP_POSTGRES_TESTS=1.
#define RETRYD_SKIP_IF_NO_POSTGRES(kind)                                  \
  do {                                                                   \
    if ((kind) == ::retryd::testing::StoreKind::kPostgres &&             \
        ::retryd::testing::SkipPostgres()) {                             \
      GTEST_SKIP() << "RETRYD_SKIP_POSTGRES_TESTS=1";                    \
    }                                                                    \
  } while (false)

}  // namespace retryd::testing

#include "tests/testing/pg_cluster.h"

#endif  // RETRYD_TESTS_TESTING_TEST_STORES_H_
