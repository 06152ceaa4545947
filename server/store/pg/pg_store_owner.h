// StoreOwner: one active retryd per PostgreSQL database, with fencing.
//
// Until the engine runs the shared paths (docs/shared-replicas.md, "Status"), a retryd on
// PostgreSQL keeps its schedule and lease table in memory, as on SQLite, so two of them writing
// one database would each answer from a truth the other does not see. StoreOwner makes that
// impossible instead of merely unlikely:
//
//   - Ownership is a session-level advisory lock (kOwnerLockKey) held on a connection of its own.
//     A second retryd started on the same database waits as a standby (event store_standby),
//     without listening, until the lock is free: a warm standby that takes over within about a
//     second of the owner's session ending (its process stopped, killed, or cut off).
//   - Taking over bumps store_owner.epoch. Every batch transaction of the owner first reads the
//     epoch with FOR SHARE (Fence): a replica that lost its session, and so its lock, without
//     noticing finds a newer epoch in its next batch and stops (crash-only) before writing; and
//     the taker's epoch bump waits for any batch the old owner has open, so the two never write
//     at once.
//   - A watchdog re-reads the epoch on the lock's connection every `check_interval`: an owner
//     whose epoch moved on stops even when it has no batch to run. When the lock's session
//     itself is lost (a PostgreSQL restart or failover), the watchdog takes the lock up again
//     once PostgreSQL is back if the epoch is still its own, and stops the process otherwise;
//     meanwhile the fence keeps every batch safe.
//
// Thread-safety: Acquire and the watchdog are internally synchronised; Fence runs on the caller's
// connection (the writer's) inside its transaction.
#ifndef RETRYD_SERVER_STORE_PG_PG_STORE_OWNER_H_
#define RETRYD_SERVER_STORE_PG_PG_STORE_OWNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// The owner lock is the advisory lock (kOwnerLockClass, hashtext(current_schema())): one per
// schema, since retryd's tables live in the connection's current schema (several retryd
// deployments, or tests, may share one database in schemas of their own). Two schemas whose names
// hash alike would share one owner: a standby would wait for the other's owner, never write
// beside it.
inline constexpr int32_t kOwnerLockClass = 0x72657479;  // "rety"

// The migration that adds the store_owner row (applied by pg_schema.cc after shared mode's).
extern const char* const kStoreOwnerMigration;

class StoreOwner {
 public:
  struct Options {
    // Written into store_owner.owner (e.g. host:pid), for operators.
    std::string name;
    // How often a standby retries the lock, and how often the owner's watchdog checks it.
    absl::Duration check_interval = absl::Seconds(1);
    // Asked between two lock attempts: true gives up waiting (CANCELLED), e.g. on SIGTERM.
    std::function<bool()> stop_waiting;
    // Called once when the lock is found taken, before waiting (e.g. to answer health checks as
    // a standby). Optional.
    std::function<void()> on_standby;
    // Called once, from the watchdog thread, when ownership is lost; must not return (stops the
    // process). Null: the watchdog is not started.
    std::function<void(absl::Status)> on_lost;
  };

  // Connects, waits until this process holds the owner lock, and bumps the epoch. UNAVAILABLE
  // when the database cannot be reached; CANCELLED when stop_waiting said so.
  static absl::StatusOr<std::unique_ptr<StoreOwner>> Acquire(const std::string& dsn,
                                                             Options options);
  ~StoreOwner();

  int64_t epoch() const { return epoch_; }
  // The PostgreSQL backend pid of the session that holds the lock (for tests and operators).
  int backend_pid() const { return backend_pid_.load(); }

  // Run first in every batch transaction on `writer`: OK while this process still owns the
  // database; a status that IsFenced (store_failure.h) otherwise.
  absl::Status Fence(Connection& writer) const;

  // Ends the session (the lock is released at once), e.g. for tests; the watchdog stops first.
  void Release();

 private:
  StoreOwner(std::string dsn, std::unique_ptr<Connection> conn, int64_t epoch, Options options)
      : dsn_(std::move(dsn)),
        conn_(std::move(conn)),
        epoch_(epoch),
        backend_pid_(PQbackendPID(conn_->raw())),
        options_(std::move(options)) {}
  void Watch();
  // After the lock's session was lost: a new session takes the lock again if it is free and the
  // epoch is still this process's (kOwner), else kTaken; an error when PostgreSQL is unreachable.
  enum class Regained { kOwner, kTaken };
  absl::StatusOr<Regained> Regain();
  // OK while the lock's session is alive and the epoch is still ours.
  absl::Status Check();

  const std::string dsn_;
  std::unique_ptr<Connection> conn_;  // The lock's session (the watchdog's, once started).
  const int64_t epoch_;
  std::atomic<int> backend_pid_;
  const Options options_;
  absl::Notification stop_;
  std::thread watchdog_;
};

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_STORE_OWNER_H_
