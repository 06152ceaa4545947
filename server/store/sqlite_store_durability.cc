// SqliteStore: durability of committed batches: SyncLog's connection and its sync of the WAL, and
// the checkpoints that copy the WAL into the database file.
#include "server/store/sqlite_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"
#include "server/util/status_macros.h"

namespace retryd {

namespace {

// The file SQLite's VFS has open for `db`: its log (SQLITE_FCNTL_JOURNAL_POINTER; in WAL mode,
// the WAL) or its main database file (SQLITE_FCNTL_FILE_POINTER).
absl::StatusOr<sqlite3_file*> VfsFile(sqlite::Database& db, int op, absl::string_view what) {
  sqlite3_file* file = nullptr;
  const int rc = sqlite3_file_control(db.raw(), "main", op, &file);
  if (rc != SQLITE_OK) return sqlite::ErrorStatus(db.raw(), rc, what);
  if (file == nullptr || file->pMethods == nullptr) {
    return MarkStoreFailure(absl::InternalError(absl::StrCat(what, ": the file is not open")));
  }
  return file;
}

// Syncs a file through its VFS; a failure is a store failure naming `what`.
absl::Status SyncVfsFile(sqlite3_file* file, absl::string_view what) {
  const int rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) {
    return MarkStoreFailure(absl::InternalError(
        absl::StrCat("sync of ", what, " failed: ", sqlite3_errstr(rc), " (sqlite code ", rc, ")")));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status SqliteStore::OpenWalForSync(const std::string& data_dir) {
  absl::MutexLock lock(&sync_mu_);
  ASSIGN_OR_RETURN(syncer_, sqlite::Database::Open(path_, /*read_only=*/true));
  // A connection opens the log with its first read transaction, and keeps it open.
  RETURN_IF_ERROR(syncer_->Exec("SELECT count(*) FROM sqlite_master"));
  ASSIGN_OR_RETURN(log_file_, VfsFile(*syncer_, SQLITE_FCNTL_JOURNAL_POINTER, path_ + "-wal"));
  // The log's directory entry must be durable too (the file may be new).
  const int dir = open(data_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", data_dir, ": ", std::strerror(errno)));
  }
  const int rc = fsync(dir);
  const int err = errno;
  close(dir);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("fsync ", data_dir, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::SyncLog() {
  absl::MutexLock lock(&sync_mu_);
  return SyncVfsFile(log_file_, path_ + "-wal");
}

absl::StatusOr<Store::LogPages> SqliteStore::CheckpointWal() {
  absl::MutexLock lock(&checkpoint_mu_);
  if (checkpointer_ == nullptr) {
    ASSIGN_OR_RETURN(checkpointer_, sqlite::Database::Open(path_, /*read_only=*/false));
    // FULL: the checkpoint syncs the WAL before copying it, and the database file after.
    RETURN_IF_ERROR(checkpointer_->Exec("PRAGMA synchronous=FULL"));
  }
  int log_frames = 0;
  int copied_frames = 0;
  const int rc = sqlite3_wal_checkpoint_v2(checkpointer_->raw(), "main",
                                           SQLITE_CHECKPOINT_PASSIVE, &log_frames, &copied_frames);
  if (rc == SQLITE_BUSY) return LogPages();  // Another checkpoint holds the log: nothing done.
  if (rc != SQLITE_OK) return sqlite::ErrorStatus(checkpointer_->raw(), rc, "wal checkpoint");
  // SQLite syncs the database file only after a pass during which the writer committed nothing,
  // which a pass racing the writer rarely is; the pages it copied would pile up in the page
  // cache, and the next such pass (the one the writer waits for) would flush them all. Flush
  // them now (a no-op when SQLite just did).
  if (copied_frames > 0) {
    ASSIGN_OR_RETURN(sqlite3_file * db_file,
                     VfsFile(*checkpointer_, SQLITE_FCNTL_FILE_POINTER, path_));
    RETURN_IF_ERROR(SyncVfsFile(db_file, path_));
  }
  return LogPages{log_frames, copied_frames};
}

}  // namespace retryd
