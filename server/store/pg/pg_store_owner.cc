// StoreOwner: the owner lock, the epoch, the fence and the watchdog (see pg_store_owner.h).
#include "server/store/pg/pg_store_owner.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/store/store_failure.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

const char* const kStoreOwnerMigration = R"sql(
    CREATE TABLE store_owner (
      id    integer PRIMARY KEY CHECK (id = 1),
      epoch bigint NOT NULL,
      owner text NOT NULL,
      since timestamptz NOT NULL DEFAULT now()
    );
    INSERT INTO store_owner (id, epoch, owner) VALUES (1, 0, '');
    )sql";

absl::StatusOr<std::unique_ptr<StoreOwner>> StoreOwner::Acquire(const std::string& dsn,
                                                                Options options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(dsn));
  RETURN_IF_ERROR(conn->ExecScript("SET application_name = 'retryd-owner'"));
  bool said_standby = false;
  for (;;) {
    ASSIGN_OR_RETURN(Result got, conn->Exec("SELECT pg_try_advisory_lock($1::integer, hashtext(current_schema()))",
                   Params().Int(kOwnerLockClass)));
    if (got.Int(0, 0)) break;
    if (!said_standby) {
      ASSIGN_OR_RETURN(Result owner,
                       conn->Exec("SELECT owner, epoch FROM store_owner WHERE id = 1"));
      LogEvent(LogLevel::kWarn, "store_standby")
          .Str("owner", owner.rows() > 0 ? owner.Text(0, 0) : "")
          .Str("detail",
               "another retryd owns this PostgreSQL database; waiting to take over when it stops");
      said_standby = true;
      if (options.on_standby) options.on_standby();
    }
    if (options.stop_waiting && options.stop_waiting()) {
      return absl::CancelledError("stopped while waiting to own the PostgreSQL database");
    }
    absl::SleepFor(options.check_interval);
  }
  ASSIGN_OR_RETURN(Result bumped,
                   conn->Exec("UPDATE store_owner SET epoch = epoch + 1, owner = $1, since = now() "
                              "WHERE id = 1 RETURNING epoch",
                              Params().Text(options.name)));
  if (bumped.rows() != 1) return absl::InternalError("store_owner row missing");
  const int64_t epoch = bumped.Int(0, 0);
  LogEvent(LogLevel::kInfo, "store_owned").Int("epoch", epoch).Str("owner", options.name);
  std::unique_ptr<StoreOwner> owner(
      new StoreOwner(dsn, std::move(conn), epoch, std::move(options)));
  if (owner->options_.on_lost) owner->watchdog_ = std::thread([o = owner.get()] { o->Watch(); });
  return owner;
}

StoreOwner::~StoreOwner() { Release(); }

void StoreOwner::Release() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (watchdog_.joinable()) watchdog_.join();
  conn_.reset();
}

absl::Status StoreOwner::Fence(Connection& writer) const {
  absl::StatusOr<Result> r =
      writer.Exec("SELECT epoch FROM store_owner WHERE id = 1 FOR SHARE");
  if (!r.ok()) return r.status();
  const int64_t now_epoch = r->rows() == 1 ? r->Int(0, 0) : -1;
  if (now_epoch == epoch_) return absl::OkStatus();
  return MarkFenced(absl::FailedPreconditionError(absl::StrCat(
      "another retryd took over this PostgreSQL database (owner epoch ", now_epoch,
      ", this process had ", epoch_, ")")));
}

absl::Status StoreOwner::Check() {
  absl::StatusOr<Result> r = conn_->Exec("SELECT epoch FROM store_owner WHERE id = 1");
  if (!r.ok()) {
    return MarkFenced(absl::UnavailableError(absl::StrCat(
        "the session holding the PostgreSQL owner lock was lost: ", r.status().message())));
  }
  if (r->rows() != 1 || r->Int(0, 0) != epoch_) {
    return MarkFenced(absl::FailedPreconditionError(
        absl::StrCat("another retryd took over this PostgreSQL database (owner epoch ",
                     r->rows() == 1 ? r->Int(0, 0) : -1, ", this process had ", epoch_, ")")));
  }
  return absl::OkStatus();
}

void StoreOwner::Watch() {
  while (!stop_.WaitForNotificationWithTimeout(options_.check_interval)) {
    absl::Status s = Check();
    if (s.ok()) continue;
    if (conn_->ok()) {  // The session lives but the epoch moved on: another replica owns it.
      options_.on_lost(s);
      return;
    }
    // The lock's session was lost (a PostgreSQL restart or failover, a cut connection). Holding
    // the epoch is what makes writes safe (every batch is fenced by it), so ownership may be
    // taken up again as long as nobody took it over meanwhile.
    LogEvent(LogLevel::kWarn, "store_owner_session_lost").Str("error", std::string(s.message()));
    for (;;) {
      if (stop_.WaitForNotificationWithTimeout(options_.check_interval)) return;
      absl::StatusOr<Regained> regained = Regain();
      if (!regained.ok()) continue;  // PostgreSQL still unreachable: try again.
      if (*regained == Regained::kOwner) break;
      options_.on_lost(MarkFenced(absl::FailedPreconditionError(
          "another retryd took over this PostgreSQL database while its owner's session was lost")));
      return;
    }
    LogEvent(LogLevel::kInfo, "store_owner_session_regained").Int("epoch", epoch_);
  }
}

absl::StatusOr<StoreOwner::Regained> StoreOwner::Regain() {
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn, Connection::Open(dsn_));
  RETURN_IF_ERROR(conn->ExecScript("SET application_name = 'retryd-owner'"));
  ASSIGN_OR_RETURN(Result got, conn->Exec("SELECT pg_try_advisory_lock($1::integer, "
                                          "hashtext(current_schema()))",
                                          Params().Int(kOwnerLockClass)));
  if (!got.Int(0, 0)) return Regained::kTaken;
  ASSIGN_OR_RETURN(Result epoch, conn->Exec("SELECT epoch FROM store_owner WHERE id = 1"));
  if (epoch.rows() != 1 || epoch.Int(0, 0) != epoch_) return Regained::kTaken;
  conn_ = std::move(conn);
  backend_pid_ = PQbackendPID(conn_->raw());
  return Regained::kOwner;
}

}  // namespace retryd::pg
