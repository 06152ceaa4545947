#include "tests/testing/test_stores.h"

#include "server/store/pg/pg_store.h"
#include "server/store/sqlite_store.h"
#include "tests/testing/pg_cluster.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {

std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  return info.param == StoreKind::kPostgres ? "Postgres" : "Sqlite";
}

absl::StatusOr<StoreLocation> NewStoreLocation(StoreKind kind) {
  StoreLocation where;
  where.kind = kind;
  if (kind == StoreKind::kSqlite) {
    const std::string dir = MakeTempDir();
    if (dir.empty()) return absl::InternalError("cannot make a temporary directory");
    where.data_dir = dir + "/data";
    return where;
  }
  absl::StatusOr<PgCluster*> cluster = PgCluster::Shared();
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<std::string> dsn = (*cluster)->CreateDatabase();
  if (!dsn.ok()) return dsn.status();
  where.dsn = *dsn;
  return where;
}

absl::StatusOr<std::unique_ptr<Store>> OpenStore(const StoreLocation& where) {
  if (where.kind == StoreKind::kSqlite) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> s = SqliteStore::Open(where.data_dir);
    if (!s.ok()) return s.status();
    return std::unique_ptr<Store>(std::move(*s));
  }
  absl::StatusOr<std::unique_ptr<PgStore>> s = PgStore::Open(where.dsn);
  if (!s.ok()) return s.status();
  return std::unique_ptr<Store>(std::move(*s));
}

void RemoveStoreLocation(const StoreLocation& where) {
  if (where.kind != StoreKind::kSqlite || where.data_dir.empty()) return;
  // data_dir is <temp dir>/data.
  RemoveTree(where.data_dir.substr(0, where.data_dir.rfind('/')));
}

std::vector<std::string> StoreFlags(const StoreLocation& where) {
  if (where.kind == StoreKind::kSqlite) return {"--data-dir", where.data_dir};
  return {"--store", "postgres", "--postgres-dsn", where.dsn};
}

}  // namespace retryd::testing
