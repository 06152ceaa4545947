// SqliteStore: the writer's batch transaction and the savepoint of each op in it, with the key
// merge slice written before a commit and the service cache kept in step with rollbacks.
#include "server/store/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {

absl::Status SqliteStore::Begin() { return begin_.Run(); }

absl::Status SqliteStore::Commit() {
  absl::Status s = InTransaction("commit");
  if (s.ok() && keys_->SliceDue()) s = MergeSlice();
  if (s.ok()) s = commit_.Run();
  if (!s.ok()) {
    Rollback();
    return s;
  }
  keys_->Committed();
  return s;
}

absl::Status SqliteStore::MergeSlice() {
  // Its own savepoint keeps a failed slice from failing the batch: the keys stay in memory and
  // the slice is tried again with the next commit.
  RETURN_IF_ERROR(savepoint_.Run());
  absl::Status merged = keys_->BeforeCommit();
  if (merged.ok()) return release_.Run();
  keys_->RolledBack();
  LogEvent(LogLevel::kWarn, "key_merge_failed").Str("error", merged.ToString());
  RETURN_IF_ERROR(rollback_to_.Run());
  return release_.Run();
}

void SqliteStore::Rollback() {
  keys_->RolledBack();
  if (sqlite3_get_autocommit(writer_->raw()) == 0) {
    writer_->Exec("ROLLBACK").IgnoreError();  // Nothing more to do if even this fails.
  }
  // Services inserted in the abandoned batch are gone again; reload the cache lazily.
  service_ids_.clear();
  service_names_.clear();
  PrepareWriterStatements().IgnoreError();
}

absl::Status SqliteStore::InTransaction(absl::string_view what) const {
  // SQLite rolls the whole transaction back by itself after some errors (SQLITE_FULL, IOERR,
  // NOMEM, ...). A SAVEPOINT after that would open an autocommit transaction of its own, and the
  // batch's next ops would commit one by one: refuse instead.
  if (sqlite3_get_autocommit(writer_->raw()) != 0) {
    return MarkStoreFailure(absl::InternalError(absl::StrCat(
        what, ": the batch transaction is gone (SQLite rolled it back after an error)")));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::BeginOp() {
  op_new_services_.clear();
  RETURN_IF_ERROR(InTransaction("begin op"));
  return savepoint_.Run();
}

absl::Status SqliteStore::EndOp(bool keep) {
  RETURN_IF_ERROR(InTransaction("end op"));
  if (keep) {
    op_new_services_.clear();
    return release_.Run();
  }
  RETURN_IF_ERROR(rollback_to_.Run());
  for (const std::string& name : op_new_services_) {
    auto it = service_ids_.find(name);
    if (it == service_ids_.end()) continue;
    service_names_.erase(it->second);
    service_ids_.erase(it);
  }
  op_new_services_.clear();
  return release_.Run();
}

}  // namespace retryd
