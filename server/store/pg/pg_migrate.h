// `retryd migrate --from sqlite:PATH --to postgres:DSN`: copies a SQLite store (services,
// envelopes with their payloads and keys, circuits, the audit log, replay jobs) into an empty
// PostgreSQL database, in ONE PostgreSQL transaction: row ids are kept (replays' cursors name
// envelope ids), the id sequences continue after them, and the row count of every table is
// compared with the source's before COMMIT. A target that already holds any row is refused, so a
// second run changes nothing. The SQLite store is first brought to this build's schema (as
// retryd's start-up would); retryd must not be running on it.
#ifndef RETRYD_SERVER_STORE_PG_PG_MIGRATE_H_
#define RETRYD_SERVER_STORE_PG_PG_MIGRATE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace retryd::pg {

// Rows copied per table, in copy order.
using CopiedCounts = std::vector<std::pair<std::string, int64_t>>;

// `sqlite_path` is a data dir (holding retryd.db) or the database file itself.
// FAILED_PRECONDITION: the target is not empty, or the source does not exist; DATA_LOSS: a
// table's count differs after the copy (nothing is committed then).
absl::StatusOr<CopiedCounts> MigrateSqliteToPostgres(const std::string& sqlite_path,
                                                     const std::string& dsn);

// The command: parses "sqlite:PATH" and "postgres:DSN", runs the copy, prints the counts (or the
// error) and returns the exit code: 0 copied, 1 refused or failed (nothing committed), 2 usage.
int RunMigrateCommand(const std::string& from, const std::string& to);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_MIGRATE_H_
