// SqliteStore: the embedded default Store. One SQLite file in WAL mode; every commit is fsynced
// (by SyncLog, the job synchronous=FULL does inside COMMIT, moved to its own thread) before the
// engine acknowledges it, so an acknowledged batch survives kill -9 and power loss. The schema is
// versioned (PRAGMA user_version) and migrated at open.
//
// Layout: `services(id, name)` interns service names; `envelopes` holds one row per
// (service, message_id) with its state and a `sort_at` time whose meaning follows the state
// (next_retry_at, lease_expires_at, dead_lettered_at or completed_at). The (service, message_id)
// key is unique through KeyIndex, which keeps recent keys in memory and merges them into
// `envelope_keys` in key order (see key_index.h). Scheduled rows are indexed
// by `(service_id, id)`, where a new one is appended (its jittered next_retry_at would put it on
// a page of its own); the other states by `(state, service_id, sort_at)`, which serves lease
// expiry, sweeps and counts; dead letters have partial indexes of their own for the DLQ
// operations. The schedule rebuild reads the first two indexes only.
// `circuits` holds one row per service whose circuit left its initial state: the breaker's state
// and its operator override (with the override's note, peer and time).
//
// Code: sqlite_store.cc opens the store; sqlite_store_transactions.cc holds the batch and its ops,
// sqlite_store_durability.cc the WAL sync and checkpoints, sqlite_store_envelopes.cc envelope rows
// by id and key, sqlite_store_listing.cc selections by filter (listings, counts, failure groups,
// the dead-letter purge), sqlite_store_housekeeping.cc the deletion of old successes,
// sqlite_store_circuits.cc the guard state rows, sqlite_store_audit_replays.cc the audit log and
// replay jobs, sqlite_store_histogram.cc the dead letters counted per time bucket. Shared by
// them: sqlite_schema.h (migrations), sqlite_rows.h (the envelope row layout), sqlite_filter.h
// (filter SQL).
//
// Threading: the write side runs on one thread at a time (see Store). The read side borrows a
// connection from a small pool of read-only ones (see reader_pool.h) for each call, so reads run
// side by side and beside the writer; each read call is its own short transactions (no read keeps
// a snapshot across calls: listings page by keyset), and a read that finds every connection busy
// for ReaderPool::Options::wait answers UNAVAILABLE.
#ifndef RETRYD_SERVER_STORE_SQLITE_STORE_H_
#define RETRYD_SERVER_STORE_SQLITE_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "server/store/key_index.h"
#include "server/store/reader_pool.h"
#include "server/store/sqlite_db.h"
#include "server/store/store.h"

namespace retryd {

class SqliteStore final : public Store {
 public:
  // The schema version this build writes.
  static constexpr int kSchemaVersion = 9;

  struct Options {
    KeyIndex::Options keys;
    // The read side's connections, their wait and time limits.
    ReaderPool::Options readers;
  };

  // Opens (creating if needed) `<data_dir>/retryd.db`, creating `data_dir` too, and migrates the
  // schema. FAILED_PRECONDITION if the file was written by a newer schema.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(const std::string& data_dir,
                                                           Options options = {});

  absl::Status Begin() override;
  absl::Status Commit() override;
  absl::Status SyncLog() override;
  void Rollback() override;
  absl::Status BeginOp() override;
  absl::Status EndOp(bool keep) override;

  absl::StatusOr<std::optional<Envelope>> FindByKey(absl::string_view service,
                                                    absl::string_view message_id,
                                                    bool with_payload) override;
  absl::StatusOr<std::optional<Envelope>> FindById(int64_t id, bool with_payload) override;
  absl::Status Insert(Envelope* e) override;
  absl::Status Update(const Envelope& e) override;
  absl::Status UpdateDroppingPayload(const Envelope& e) override;
  absl::StatusOr<int64_t> DeleteSucceededBefore(absl::Time cutoff, int limit) override;
  absl::StatusOr<absl::Time> OldestSucceededAt() override;
  absl::Status ForEachLive(const std::function<void(const LiveRow&)>& fn) override;
  absl::Status SaveCircuit(const CircuitRecord& record) override;
  absl::StatusOr<std::vector<CircuitRecord>> LoadCircuits() override;
  absl::StatusOr<ListPage> ListInTxn(const ListQuery& query) override;
  absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DeleteDeadLetters(
      const EnvelopeFilter& filter, int64_t limit) override;
  absl::Status AppendAudit(AuditRecord* record) override;
  absl::Status UpdateAuditCount(int64_t id, int64_t affected_count) override;
  absl::StatusOr<std::optional<AuditRecord>> FindAudit(absl::string_view method,
                                                      absl::string_view request_id) override;
  absl::Status InsertReplay(ReplayRow* row) override;
  absl::Status UpdateReplay(const ReplayRow& row) override;
  absl::StatusOr<std::optional<ReplayRow>> FindReplayInTxn(int64_t id) override;
  absl::StatusOr<std::optional<ReplayRow>> FindReplayByRequestId(
      absl::string_view request_id) override;

  absl::StatusOr<std::optional<Envelope>> Get(absl::string_view service,
                                              absl::string_view message_id) override;
  absl::StatusOr<std::vector<ServiceCounts>> CountByService() override;
  absl::StatusOr<ListPage> List(const ListQuery& query) override;
  absl::StatusOr<int64_t> CountDeadLetters(const EnvelopeFilter& filter) override;
  absl::StatusOr<std::vector<FailureGroupRow>> ListFailureGroups(const GroupQuery& query) override;
  absl::StatusOr<DeadLetterStatsRow> DeadLetterStats(absl::string_view service,
                                                     absl::Time since) override;
  absl::StatusOr<std::vector<HistogramCell>> DeadLetterHistogram(absl::string_view service,
                                                                 absl::Time since,
                                                                 absl::Time until,
                                                                 absl::Duration width) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditQuery& query) override;
  absl::StatusOr<std::optional<ReplayRow>> GetReplay(int64_t id) override;
  absl::StatusOr<std::vector<ReplayRow>> ListReplays(int64_t before_id, int limit) override;
  absl::StatusOr<std::vector<ReplayRow>> ListReplaysInStates(
      const std::vector<int>& states) override;

  // Copies committed WAL frames into the database file (PASSIVE: never blocks the writer or
  // readers; syncs the WAL before and the database file after). Thread-safe; the engine calls
  // it from a background thread.
  absl::StatusOr<LogPages> CheckpointWal() override;

  const std::string& path() const { return path_; }
  // The SQL of DeleteSucceededBefore and OldestSucceededAt, for tests of their query plans.
  static std::string DeleteSucceededSqlForTest();
  static std::string OldestSucceededSqlForTest();
  // The key index (for tests).
  const KeyIndex& keys() const { return *keys_; }
  // Borrows one of the read side's connections, as a read would (for tests: hold it to keep a
  // read transaction open, or to keep the connection from other reads).
  absl::StatusOr<ReaderPool::Reader> AcquireReaderForTest() { return readers_->Acquire(); }

  ~SqliteStore() override;

 private:
  SqliteStore(std::string path, std::unique_ptr<sqlite::Database> writer,
              std::unique_ptr<ReaderPool> readers, std::unique_ptr<KeyIndex> keys)
      : path_(std::move(path)),
        writer_(std::move(writer)),
        keys_(std::move(keys)),
        readers_(std::move(readers)) {}

  absl::Status PrepareWriterStatements();
  // OK while the writer's batch transaction is open; a store failure naming `what` otherwise.
  absl::Status InTransaction(absl::string_view what) const;
  // Writes the next slice of a key merge into the open batch (see KeyIndex::BeforeCommit).
  absl::Status MergeSlice();
  // Opens SyncLog's connection and its log file, and makes the log's directory entry durable.
  absl::Status OpenWalForSync(const std::string& data_dir);
  // The id of `service` in `services`, inserted on first use.
  absl::StatusOr<int64_t> ServiceId(absl::string_view service);
  absl::StatusOr<std::optional<Envelope>> ReadOne(sqlite::Statement& stmt, bool with_payload);
  // List on either connection (the reader, or the writer inside a batch).
  absl::StatusOr<ListPage> ListOn(sqlite::Database& db, const ListQuery& q);

  const std::string path_;
  // Write side: used by one thread at a time, so unguarded.
  std::unique_ptr<sqlite::Database> writer_;
  // Writes on the writer connection; PendingId is also used by the read side.
  std::unique_ptr<KeyIndex> keys_;
  absl::flat_hash_map<std::string, int64_t> service_ids_;
  absl::flat_hash_map<int64_t, std::string> service_names_;
  // Services first inserted by the current operation; EndOp(false) drops them from the cache, as
  // their rows (and rowids, which SQLite may hand out again) are gone.
  std::vector<std::string> op_new_services_;
  sqlite::Statement find_by_id_, find_by_id_payload_;
  // Binds `e` to an update statement prepared from kUpdateSet, and runs it.
  absl::Status RunUpdate(sqlite::Statement& s, const Envelope& e);

  sqlite::Statement insert_, update_, update_dropping_payload_, insert_service_, save_circuit_;
  sqlite::Statement begin_, commit_, savepoint_, release_, rollback_to_;
  sqlite::Statement delete_succeeded_, oldest_succeeded_;

  // SyncLog's own connection (read-only, used by the syncer thread alone) and the log file as
  // SQLite's VFS has it open for that connection: SyncLog syncs it through the VFS (xSync), which
  // makes every write to the log durable, whichever connection made it, and lets a test VFS see
  // every sync. SQLite keeps the log file while any connection is open, so this stays the file
  // the writer appends to.
  absl::Mutex sync_mu_;
  std::unique_ptr<sqlite::Database> syncer_ ABSL_GUARDED_BY(sync_mu_);
  sqlite3_file* log_file_ ABSL_GUARDED_BY(sync_mu_) = nullptr;

  absl::Mutex checkpoint_mu_;
  std::unique_ptr<sqlite::Database> checkpointer_ ABSL_GUARDED_BY(checkpoint_mu_);

  // The read side (thread-safe).
  const std::unique_ptr<ReaderPool> readers_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_SQLITE_STORE_H_
