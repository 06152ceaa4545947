// PgStore: the writer's batch transaction and the savepoint of each op in it, with the services
// cache kept in step with rollbacks. Durability at COMMIT: see pg_store.h.
#include "server/store/pg/pg_store.h"

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {

absl::Status PgStore::InTransaction(absl::string_view what) const {
  switch (PQtransactionStatus(writer_->raw())) {
    case PQTRANS_INTRANS:
      return absl::OkStatus();
    case PQTRANS_INERROR:
      // A statement failed outside an op's savepoint: COMMIT would roll everything back.
      return MarkStoreFailure(absl::InternalError(
          absl::StrCat(what, ": the batch transaction was aborted by an earlier error")));
    default:
      return MarkStoreFailure(absl::UnavailableError(absl::StrCat(
          what, ": no batch transaction is open (", writer_->ok() ? "none begun" : "connection lost",
          ")")));
  }
}

absl::Status PgStore::Begin() {
  op_new_services_.clear();
  absl::Status begun = writer_->Begin();
  if (!begun.ok() && !writer_->ok()) {
    // The connection was lost since the last batch: nothing of this batch is written yet, so a
    // new connection can take over (see pg_store.h).
    ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> fresh, OpenWriter(dsn_));
    writer_ = std::move(fresh);
    LogEvent(LogLevel::kWarn, "store_reconnected").Str("after", std::string(begun.message()));
    begun = writer_->Begin();
  }
  if (!begun.ok() || owner_ == nullptr) return begun;
  // Before anything is written: is this process still the database's owner (pg_store_owner.h)?
  absl::Status fenced = owner_->Fence(*writer_);
  if (!fenced.ok()) writer_->Rollback();
  return fenced;
}

absl::Status PgStore::Commit() {
  absl::Status s = InTransaction("commit");
  // With synchronous_commit = on, COMMIT returns after the commit record is durable.
  if (s.ok()) s = writer_->Commit();
  if (!s.ok()) {
    Rollback();
    return s;
  }
  return s;
}

absl::Status PgStore::SyncLog() {
  // Every batch was durable when its COMMIT returned (pg_store.h).
  return absl::OkStatus();
}

void PgStore::Rollback() {
  writer_->Rollback();
  // Services recorded in the abandoned batch are gone again: reload the cache.
  known_services_.clear();
  op_new_services_.clear();
  if (!writer_->ok()) return;
  absl::StatusOr<pg::Result> services = writer_->Exec("SELECT name FROM services");
  if (!services.ok()) return;
  for (int i = 0; i < services->rows(); ++i) known_services_.insert(services->Text(i, 0));
}

absl::Status PgStore::BeginOp() {
  op_new_services_.clear();
  RETURN_IF_ERROR(InTransaction("begin op"));
  return writer_->Savepoint("op");
}

absl::Status PgStore::EndOp(bool keep) {
  if (keep) {
    RETURN_IF_ERROR(InTransaction("end op"));
    op_new_services_.clear();
    return writer_->ReleaseSavepoint("op");
  }
  // An op that failed on a statement left the transaction aborted; rolling back to the op's
  // savepoint makes it good again.
  RETURN_IF_ERROR(writer_->RollbackToSavepoint("op"));
  for (const std::string& name : op_new_services_) known_services_.erase(name);
  op_new_services_.clear();
  return writer_->ReleaseSavepoint("op");
}

}  // namespace retryd
