#include "server/store/pg/pg_migrate.h"

#include <filesystem>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_dsn.h"
#include "server/store/pg/pg_schema.h"
#include "server/store/sqlite_db.h"
#include "server/store/sqlite_store.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

namespace {

// A column's type as the copy binds it.
enum class Col { kInt, kText, kBytes, kBool };

// One table: the SELECT on SQLite and the INSERT's columns on PostgreSQL, in the same order.
struct TableCopy {
  std::string name;
  std::string select;  // On SQLite.
  std::vector<std::pair<std::string, Col>> columns;
};

std::vector<TableCopy> Tables() {
  return {
      {"services", "SELECT name FROM services ORDER BY id", {{"name", Col::kText}}},
      {"envelopes",
       "SELECT e.id, s.name, e.message_id, e.state, e.sort_at, e.attempt, e.max_attempts, "
       "e.first_seen_at, e.created_at, e.updated_at, e.lease_token, e.dead_reason, "
       "e.last_decision, e.last_class, e.error_code, e.schema_version, e.fingerprint, e.details, "
       "e.payload FROM envelopes e JOIN services s ON s.id = e.service_id ORDER BY e.id",
       {{"id", Col::kInt},           {"service", Col::kText},      {"message_id", Col::kText},
        {"state", Col::kInt},        {"sort_at", Col::kInt},       {"attempt", Col::kInt},
        {"max_attempts", Col::kInt}, {"first_seen_at", Col::kInt}, {"created_at", Col::kInt},
        {"updated_at", Col::kInt},   {"lease_token", Col::kText},  {"dead_reason", Col::kInt},
        {"last_decision", Col::kInt}, {"last_class", Col::kInt},   {"error_code", Col::kText},
        {"schema_version", Col::kText}, {"fingerprint", Col::kText}, {"details", Col::kBytes},
        {"payload", Col::kBytes}}},
      {"circuits",
       "SELECT service, state, since, next_probe_at, open_duration_us, override_mode, "
       "override_note, override_peer, override_at, windows FROM circuits ORDER BY service",
       {{"service", Col::kText}, {"state", Col::kInt}, {"since", Col::kInt},
        {"next_probe_at", Col::kInt}, {"open_duration_us", Col::kInt},
        {"override_mode", Col::kInt}, {"override_note", Col::kText},
        {"override_peer", Col::kText}, {"override_at", Col::kInt}, {"windows", Col::kBytes}}},
      {"audit_events",
       "SELECT id, time, identity, peer, method, filter, dry_run, affected_count, note, "
       "request_id, target, result_code, detail FROM audit_events ORDER BY id",
       {{"id", Col::kInt}, {"time", Col::kInt}, {"identity", Col::kText}, {"peer", Col::kText},
        {"method", Col::kText}, {"filter", Col::kBytes}, {"dry_run", Col::kBool},
        {"affected_count", Col::kInt}, {"note", Col::kText}, {"request_id", Col::kText},
        {"target", Col::kText}, {"result_code", Col::kText}, {"detail", Col::kText}}},
      {"replays",
       "SELECT id, request_id, state, created_at, body, cursor_at, cursor_id, phase, canary_ids "
       "FROM replays ORDER BY id",
       {{"id", Col::kInt}, {"request_id", Col::kText}, {"state", Col::kInt},
        {"created_at", Col::kInt}, {"body", Col::kBytes}, {"cursor_at", Col::kInt},
        {"cursor_id", Col::kInt}, {"phase", Col::kInt}, {"canary_ids", Col::kText}}},
  };
}

// Copies one table's rows; returns how many.
absl::StatusOr<int64_t> CopyTable(sqlite::Database& from, Connection& to, const TableCopy& t) {
  std::string names;
  std::string placeholders;
  for (size_t i = 0; i < t.columns.size(); ++i) {
    absl::StrAppend(&names, i ? ", " : "", t.columns[i].first);
    absl::StrAppend(&placeholders, i ? ", " : "", "$", i + 1);
  }
  const std::string insert =
      absl::StrCat("INSERT INTO ", t.name, " (", names, ") VALUES (", placeholders, ")");
  ASSIGN_OR_RETURN(sqlite::Statement select, from.Prepare(t.select));
  int64_t rows = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool has, select.Step());
    if (!has) break;
    Params p;
    for (size_t i = 0; i < t.columns.size(); ++i) {
      const int c = static_cast<int>(i);
      if (select.ColumnIsNull(c)) {
        p.Null();
        continue;
      }
      switch (t.columns[i].second) {
        case Col::kInt:
          p.Int(select.ColumnInt(c));
          break;
        case Col::kText:
          p.Text(select.ColumnText(c));
          break;
        case Col::kBytes:
          p.Bytes(select.ColumnBlob(c));
          break;
        case Col::kBool:
          p.Bool(select.ColumnInt(c) != 0);
          break;
      }
    }
    RETURN_IF_ERROR(to.Exec(insert, p).status());
    ++rows;
  }
  return rows;
}

absl::StatusOr<int64_t> Count(sqlite::Database& db, const std::string& table) {
  ASSIGN_OR_RETURN(sqlite::Statement s, db.Prepare(absl::StrCat("SELECT count(*) FROM ", table)));
  ASSIGN_OR_RETURN(bool has, s.Step());
  return has ? s.ColumnInt(0) : 0;
}

absl::StatusOr<int64_t> Count(Connection& conn, const std::string& table) {
  ASSIGN_OR_RETURN(Result r, conn.Exec(absl::StrCat("SELECT count(*) FROM ", table)));
  return r.Int(0, 0);
}

// The copy, inside the caller's transaction.
absl::StatusOr<CopiedCounts> CopyAll(sqlite::Database& from, Connection& to) {
  const std::vector<TableCopy> tables = Tables();
  // Refuse a database that holds anything: running twice must not duplicate or mix stores.
  std::string held;
  for (const TableCopy& t : tables) {
    ASSIGN_OR_RETURN(int64_t n, Count(to, t.name));
    if (n > 0) absl::StrAppend(&held, held.empty() ? "" : ", ", n, " ", t.name);
  }
  if (!held.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the target database is not empty (", held,
        "): retryd migrate copies into an empty database only, so it was not run twice and "
        "nothing was changed"));
  }
  CopiedCounts counts;
  for (const TableCopy& t : tables) {
    ASSIGN_OR_RETURN(int64_t copied, CopyTable(from, to, t));
    ASSIGN_OR_RETURN(int64_t source, Count(from, t.name));
    ASSIGN_OR_RETURN(int64_t target, Count(to, t.name));
    if (copied != source || target != source) {
      return absl::DataLossError(absl::StrCat("table ", t.name, ": ", source,
                                              " rows in SQLite, ", target,
                                              " in PostgreSQL after the copy; nothing committed"));
    }
    counts.emplace_back(t.name, target);
  }
  // New rows continue after the copied ids.
  for (const char* table : {"envelopes", "audit_events", "replays"}) {
    RETURN_IF_ERROR(to.Exec(absl::StrCat("SELECT setval(pg_get_serial_sequence('", table,
                                         "', 'id'), coalesce((SELECT max(id) FROM ", table,
                                         "), 0) + 1, false)"))
                        .status());
  }
  return counts;
}

}  // namespace

absl::StatusOr<CopiedCounts> MigrateSqliteToPostgres(const std::string& sqlite_path,
                                                     const std::string& dsn) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const bool is_dir = fs::is_directory(sqlite_path, ec);
  const std::string dir = is_dir ? sqlite_path : fs::path(sqlite_path).parent_path().string();
  const std::string file = is_dir ? (fs::path(sqlite_path) / "retryd.db").string() : sqlite_path;
  if (!fs::exists(file, ec) || (!is_dir && fs::path(file).filename() != "retryd.db")) {
    return absl::FailedPreconditionError(
        absl::StrCat("no retryd SQLite store at ", sqlite_path,
                     " (give its data dir, or the path of its retryd.db)"));
  }
  {
    // Brings the file to this build's schema, as retryd's start-up would.
    ASSIGN_OR_RETURN(std::unique_ptr<SqliteStore> upgraded, SqliteStore::Open(dir));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> from,
                   sqlite::Database::Open(file, /*read_only=*/true));
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> to, Connection::Open(dsn));
  RETURN_IF_ERROR(Migrate(*to));
  // One read transaction on SQLite (a consistent source) and one transaction on PostgreSQL.
  RETURN_IF_ERROR(from->Exec("BEGIN"));
  RETURN_IF_ERROR(to->Begin());
  absl::StatusOr<CopiedCounts> counts = CopyAll(*from, *to);
  if (counts.ok()) {
    absl::Status committed = to->Commit();
    if (!committed.ok()) counts = committed;
  }
  if (!counts.ok()) to->Rollback();
  from->Exec("COMMIT").IgnoreError();
  return counts;
}

int RunMigrateCommand(const std::string& from, const std::string& to) {
  if (!absl::StartsWith(from, "sqlite:") || !absl::StartsWith(to, "postgres:")) {
    std::cerr << "retryd migrate: use --from sqlite:PATH --to postgres:DSN\n";
    return 2;
  }
  const std::string path = from.substr(std::string("sqlite:").size());
  const std::string dsn = to.substr(std::string("postgres:").size());
  absl::StatusOr<CopiedCounts> counts = MigrateSqliteToPostgres(path, dsn);
  if (!counts.ok()) {
    std::cerr << "retryd migrate: " << counts.status().message() << "\n";
    return 1;
  }
  std::cout << "retryd migrate: copied " << path << " to " << RedactDsn(dsn) << ":";
  for (const auto& [table, n] : *counts) std::cout << " " << table << "=" << n;
  std::cout << " (counts verified before commit)\n";
  return 0;
}

}  // namespace retryd::pg
