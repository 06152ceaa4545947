// SqliteStore: opening the database (connection settings, schema migration, the key index, the
// read side, the writer's prepared statements) and the writer's cache of the services table.
#include "server/store/sqlite_store.h"

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_rows.h"
#include "server/store/sqlite_schema.h"
#include "server/util/status_macros.h"

namespace retryd {

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& data_dir,
                                                                Options options) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", data_dir, ": ", ec.message()));
  }
  const std::string path = (std::filesystem::path(data_dir) / "retryd.db").string();
  ASSIGN_OR_RETURN(std::unique_ptr<sqlite::Database> writer,
                   sqlite::Database::Open(path, /*read_only=*/false));
  // WAL, and durability through SyncLog: synchronous=NORMAL makes COMMIT write the log without
  // waiting for the disk, and SyncLog's fdatasync of the log, before the engine answers, does
  // what FULL would have done inside COMMIT, on another thread. Checkpoints still sync the log
  // before copying it and the database file after (NORMAL does, only OFF would not).
  RETURN_IF_ERROR(writer->Exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(writer->Exec("PRAGMA synchronous=NORMAL"));
  RETURN_IF_ERROR(writer->Exec("PRAGMA foreign_keys=ON"));
  // The larger page cache keeps the key index hot under random message ids.
  RETURN_IF_ERROR(writer->Exec("PRAGMA cache_size=-16384"));
  // Checkpoints copy the WAL into the database file. The writer never checkpoints (it would
  // stall every request queued behind it for two fsyncs and the copying); CheckpointWal() does it
  // from another thread, and the engine keeps the WAL short by pausing the writer between two
  // batches for a last checkpoint pass now and then (see Store::CheckpointWal).
  RETURN_IF_ERROR(writer->Exec("PRAGMA wal_autocheckpoint=0"));
  // After a restart the WAL file is truncated back to this size (above the engine's restart
  // point, so that the file is reused rather than shrunk and grown again).
  RETURN_IF_ERROR(writer->Exec("PRAGMA journal_size_limit=67108864"));
  RETURN_IF_ERROR(writer->Exec("PRAGMA temp_store=MEMORY"));
  RETURN_IF_ERROR(Migrate(*writer));
  ASSIGN_OR_RETURN(std::unique_ptr<KeyIndex> keys, KeyIndex::Load(writer.get(), options.keys));
  ASSIGN_OR_RETURN(std::unique_ptr<ReaderPool> readers, ReaderPool::Open(path, options.readers));
  std::unique_ptr<SqliteStore> store(
      new SqliteStore(path, std::move(writer), std::move(readers), std::move(keys)));
  RETURN_IF_ERROR(store->PrepareWriterStatements());
  RETURN_IF_ERROR(store->OpenWalForSync(data_dir));
  // The migrations committed without a sync.
  RETURN_IF_ERROR(store->SyncLog());
  return store;
}

SqliteStore::~SqliteStore() = default;

absl::Status SqliteStore::PrepareWriterStatements() {
  ASSIGN_OR_RETURN(find_by_id_, writer_->Prepare(SelectSql(false, "WHERE e.id = ?")));
  ASSIGN_OR_RETURN(find_by_id_payload_, writer_->Prepare(SelectSql(true, "WHERE e.id = ?")));
  ASSIGN_OR_RETURN(insert_, writer_->Prepare(
      "INSERT INTO envelopes (service_id, message_id, state, sort_at, attempt, max_attempts, "
      "first_seen_at, created_at, updated_at, lease_token, dead_reason, last_decision, "
      "last_class, error_code, schema_version, details, payload, fingerprint, id) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  constexpr absl::string_view kUpdateSet =
      "UPDATE envelopes SET state = ?, sort_at = ?, attempt = ?, max_attempts = ?, "
      "first_seen_at = ?, updated_at = ?, lease_token = ?, dead_reason = ?, last_decision = ?, "
      "last_class = ?, error_code = ?, schema_version = ?, details = ?, fingerprint = ?";
  ASSIGN_OR_RETURN(update_, writer_->Prepare(absl::StrCat(kUpdateSet, " WHERE id = ?")));
  ASSIGN_OR_RETURN(update_dropping_payload_,
                   writer_->Prepare(absl::StrCat(kUpdateSet, ", payload = x'' WHERE id = ?")));
  ASSIGN_OR_RETURN(insert_service_, writer_->Prepare("INSERT INTO services (name) VALUES (?)"));
  ASSIGN_OR_RETURN(save_circuit_, writer_->Prepare(
      "INSERT OR REPLACE INTO circuits (service, state, since, next_probe_at, open_duration_us, "
      "override_mode, override_note, override_peer, override_at, windows) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  ASSIGN_OR_RETURN(begin_, writer_->Prepare("BEGIN IMMEDIATE"));
  ASSIGN_OR_RETURN(commit_, writer_->Prepare("COMMIT"));
  ASSIGN_OR_RETURN(savepoint_, writer_->Prepare("SAVEPOINT op"));
  ASSIGN_OR_RETURN(release_, writer_->Prepare("RELEASE op"));
  ASSIGN_OR_RETURN(rollback_to_, writer_->Prepare("ROLLBACK TO op"));
  ASSIGN_OR_RETURN(delete_succeeded_, writer_->Prepare(DeleteSucceededSqlForTest()));
  ASSIGN_OR_RETURN(oldest_succeeded_, writer_->Prepare(OldestSucceededSqlForTest()));
  ASSIGN_OR_RETURN(sqlite::Statement services, writer_->Prepare("SELECT id, name FROM services"));
  while (true) {
    ASSIGN_OR_RETURN(bool row, services.Step());
    if (!row) break;
    service_ids_[services.ColumnText(1)] = services.ColumnInt(0);
    service_names_[services.ColumnInt(0)] = services.ColumnText(1);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteStore::ServiceId(absl::string_view service) {
  auto it = service_ids_.find(service);
  if (it != service_ids_.end()) return it->second;
  insert_service_.BindText(1, service);
  RETURN_IF_ERROR(insert_service_.Run());
  const int64_t id = writer_->LastInsertRowId();
  service_ids_.emplace(std::string(service), id);
  service_names_.emplace(id, std::string(service));
  op_new_services_.emplace_back(service);
  return id;
}

}  // namespace retryd
