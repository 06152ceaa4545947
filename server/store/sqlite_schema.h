// The SQLite schema of SqliteStore, as the migrations that build it: the schema is versioned by
// PRAGMA user_version, and each migration takes it one version up in a transaction of its own.
// Used only inside server/store.
#ifndef RETRYD_SERVER_STORE_SQLITE_SCHEMA_H_
#define RETRYD_SERVER_STORE_SQLITE_SCHEMA_H_

#include "absl/status/status.h"
#include "server/store/sqlite_db.h"

namespace retryd {

// Brings `db` from its schema version to SqliteStore::kSchemaVersion, one committed migration at
// a time. FAILED_PRECONDITION if the file was written by a newer schema; a failed migration is
// rolled back and its error returned, naming the version it was migrating to.
absl::Status Migrate(sqlite::Database& db);

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_SQLITE_SCHEMA_H_
