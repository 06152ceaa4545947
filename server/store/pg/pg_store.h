// PgStore: the Store on PostgreSQL (libpq), chosen by `store: {type: postgres}`. Same semantics
// as SqliteStore (sqlite_store.h); schema and migrations in pg_schema.h.
//
// Durability: the writer's session runs with synchronous_commit = on, so COMMIT returns only
// once the commit record is flushed to PostgreSQL's WAL (and, with synchronous replication, to
// the standbys the server requires). Commit() therefore already makes the batch durable, and
// SyncLog() has nothing left to do: the engine answers a batch only after SyncLog() returns,
// which is after Commit() returned, so no answer precedes a durable commit.
//
// Failures: a lost connection or any error of the database itself is a store failure
// (pg_conn.h): once a batch began, the engine stops the process (exit 74) and start-up rebuilds
// from the database. A connection lost between batches is found by Begin(), which opens a new
// one (nothing was written and nothing in memory changed, so this is safe); when that fails too,
// Begin() fails and the engine answers the batch UNAVAILABLE without stopping, and the next batch
// tries again, so retryd resumes by itself once PostgreSQL is back (a restart or a failover). A batch
// whose transaction PostgreSQL aborted is never committed by accident: Commit() checks the
// transaction is still good (COMMIT of an aborted transaction would silently roll back).
//
// Code: pg_store.cc opens the store and keeps the writer's services cache;
// pg_store_transactions.cc the batch and its ops; pg_store_envelopes.cc envelope rows by id and
// key; pg_store_listing.cc selections by filter (listings, counts, failure groups, stats, the
// dead-letter purge); pg_store_histogram.cc the dead-letter histogram; pg_store_housekeeping.cc old successes and circuits rows;
// pg_store_audit_replays.cc the audit log and replay jobs. Shared: pg_rows.h (row layout),
// pg_filter.h (filter SQL), pg_pool.h (the read side's connections).
//
// Threading: the write side runs on one thread at a time on its own connection. The read side
// borrows a connection from a small pool for each call (any thread); each read call is its own
// transaction(s), and sees committed data only.
#ifndef RETRYD_SERVER_STORE_PG_PG_STORE_H_
#define RETRYD_SERVER_STORE_PG_PG_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/store/pg/pg_conn.h"
#include "server/store/pg/pg_pool.h"
#include "server/store/pg/pg_store_owner.h"
#include "server/store/store.h"

namespace retryd {

class PgStore final : public Store {
 public:
  struct Options {
    pg::Pool::Options readers;
    // One active retryd per database (pg_store_owner.h): Open waits until this process owns the
    // database, and every batch is fenced by the owner epoch.
    pg::StoreOwner::Options owner;
  };

  // Connects (`dsn` empty: libpq's PG* environment variables), migrates the schema under the
  // advisory lock (pg_schema.h), waits until this process owns the database (a standby until the
  // owner's session ends; pg_store_owner.h) and opens the read side. UNAVAILABLE when the server refuses
  // the connection (the message names the DSN, password redacted); FAILED_PRECONDITION when the
  // database was written by a newer retryd.
  static absl::StatusOr<std::unique_ptr<PgStore>> Open(const std::string& dsn,
                                                       Options options = {});
  ~PgStore() override;

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

  // The writer's connection (for tests that end its session).
  pg::Connection& writer_for_test() { return *writer_; }
  // The writer's connection, for shared-mode statements inside the batch transaction (writer
  // thread only).
  pg::Connection& writer() { return *writer_; }
  // The owner epoch this process holds.
  int64_t owner_epoch() const { return owner_->epoch(); }
  // Ends the owner's session, as a lost connection would (tests of fencing).
  void ReleaseOwnerForTest() { owner_->Release(); }
  int owner_backend_pid() const { return owner_->backend_pid(); }

 private:
  PgStore(std::string dsn, std::unique_ptr<pg::StoreOwner> owner,
          std::unique_ptr<pg::Connection> writer, std::unique_ptr<pg::Pool> readers)
      : dsn_(std::move(dsn)),
        owner_(std::move(owner)),
        writer_(std::move(writer)),
        readers_(std::move(readers)) {}

  // A writer connection with the session settings of pg_store.h.
  static absl::StatusOr<std::unique_ptr<pg::Connection>> OpenWriter(const std::string& dsn);

  // OK while the batch transaction is open and good; a store failure naming `what` otherwise.
  absl::Status InTransaction(absl::string_view what) const;
  // Records `service` in `services` on its first envelope.
  absl::Status NoteService(absl::string_view service);
  static absl::StatusOr<std::optional<Envelope>> FindOne(pg::Connection& conn,
                                                         absl::string_view where,
                                                         const pg::Params& params,
                                                         bool with_payload);
  absl::Status RunUpdate(const Envelope& e, bool drop_payload);
  static absl::StatusOr<ListPage> ListOn(pg::Connection& conn, const ListQuery& q);

  const std::string dsn_;
  // This process's ownership of the database; every batch begins with its Fence.
  const std::unique_ptr<pg::StoreOwner> owner_;
  // Write side: one thread at a time, so unguarded.
  std::unique_ptr<pg::Connection> writer_;
  absl::flat_hash_set<std::string> known_services_;
  // Services first recorded by the current operation (forgotten again when it is undone).
  std::vector<std::string> op_new_services_;
  // The read side (thread-safe).
  const std::unique_ptr<pg::Pool> readers_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_PG_PG_STORE_H_
