// The Store interface: durable home of every envelope, shaped by the domain's sets (scheduled,
// leased, dead-lettered, succeeded). SqliteStore is the real one; the interface is the seam for a
// future shared engine (PostgreSQL) and for fault injection, not a way around the real thing.
//
// Threading: the write side (Begin/Commit/op methods) is used by one thread at a time — the
// engine's writer, which batches many requests into one transaction (group commit). The read side
// may be called from any thread concurrently with the writer and sees committed data only.
#ifndef RETRYD_SERVER_STORE_STORE_H_
#define RETRYD_SERVER_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/circuit_breaker.h"
#include "server/core/envelope.h"
#include "server/core/filter.h"
#include "server/core/scheduler.h"

namespace retryd {

// One live (scheduled or leased) envelope, as the schedule needs it at start-up.
struct LiveRow {
  int64_t id = 0;
  std::string service;
  EnvelopeState state = EnvelopeState::kUnspecified;
  absl::Time at;  // next_retry_at when scheduled, lease_expires_at when leased.
};

// Envelope counts of one service by state, plus its oldest dead letter.
struct ServiceCounts {
  std::string service;
  int64_t scheduled = 0;
  int64_t leased = 0;
  int64_t dead = 0;
  absl::Time oldest_dead_lettered_at = absl::InfinitePast();  // InfinitePast: no dead letter.
};

// A page of envelopes of one state in (sort time, id) order, starting after a key.
struct ListQuery {
  EnvelopeState state = EnvelopeState::kDeadLettered;
  EnvelopeFilter filter;
  // Keyset position: rows strictly after (after_time, after_id). InfinitePast: from the start.
  absl::Time after_time = absl::InfinitePast();
  int64_t after_id = 0;
  int limit = 50;
  // Rows stop before their stored details (headers, last error, history) pass this many bytes;
  // the first row is always read. 0: no byte bound.
  int64_t max_bytes = 0;
};

// Where a listing row sits in its order; the key of the next page.
struct ListKey {
  absl::Time time;
  int64_t id = 0;
};

struct ListPage {
  std::vector<Envelope> envelopes;  // Without payloads.
  std::vector<ListKey> keys;        // keys[i] is the position of envelopes[i].
  bool budget_reached = false;      // Stopped at max_bytes: rows after keys.back() may remain.
};

// Dead letters that share a failure fingerprint.
struct FailureGroupRow {
  std::string fingerprint;
  int64_t count = 0;
  absl::Time first_seen;
  absl::Time last_seen;
  Envelope sample;  // The group's most recent dead letter (no payload).
};

// Keyset position in the failure-group order (count descending, then fingerprint).
struct GroupKey {
  int64_t count = 0;
  std::string fingerprint;
};

struct GroupQuery {
  EnvelopeFilter filter;
  std::optional<GroupKey> after;  // nullopt: from the start.
  int limit = 50;
};

// Dead-letter statistics (GetDeadLetterStats).
struct DeadLetterStatsRow {
  struct ReasonCount {
    std::string service;
    DeadLetterReason reason = DeadLetterReason::kNone;
    int64_t count = 0;
  };
  std::vector<ReasonCount> counts;  // By service name, then reason.
  std::vector<std::pair<std::string, int64_t>> top_error_codes;  // Largest first, at most 10.
  absl::Time oldest = absl::InfinitePast();  // InfinitePast: no dead letter.
  int64_t since_count = 0;  // Dead-lettered at or after the `since` asked for.
  int64_t total = 0;
};

// One cell of the dead-letter histogram: `count` dead letters of `service` in bucket `bucket`.
struct HistogramCell {
  std::string service;
  int64_t bucket = 0;  // 0-based: the bucket starting at since + bucket * width.
  int64_t count = 0;
};

// Which audit records ListAudit returns: every non-empty field must match (values within one
// field ORed), newest first, with id < before_id.
struct AuditQuery {
  std::vector<std::string> methods;
  std::vector<std::string> identities;
  std::vector<std::string> targets;
  std::vector<std::string> result_codes;
  absl::Time since = absl::InfinitePast();   // time >= since
  absl::Time until = absl::InfiniteFuture();  // time < until
  int64_t before_id = 0;                      // 0: from the newest.
  int limit = 50;
};

// One operator mutation, as the audit log keeps it.
struct AuditRecord {
  int64_t id = 0;  // Assigned by AppendAudit; increasing.
  absl::Time time = absl::UnixEpoch();
  std::string identity;  // Token name, client certificate SAN/CN, or "anonymous".
  std::string peer;
  std::string method;       // e.g. "PurgeDeadLetters".
  std::string filter;       // Serialized retryd.v1.Filter (opaque to the store); may be empty.
  bool dry_run = false;
  int64_t affected_count = 0;
  std::string note;
  std::string request_id;
  std::string target;       // e.g. "replays/7" or a service name.
  std::string result_code;  // e.g. "OK".
  std::string detail;       // What was set, e.g. "FORCE_OPEN" for a circuit override.
};

// A replay job as the store keeps it. `body` is a serialized retryd.v1.Replay (opaque to the
// store); the cursor and canary fields are the runner's progress, written in the same
// transaction as each batch of re-schedules.
struct ReplayRow {
  int64_t id = 0;          // Assigned by InsertReplay.
  std::string request_id;  // Empty: none.
  int state = 0;           // retryd.v1.ReplayState number.
  absl::Time created_at = absl::UnixEpoch();
  std::string body;
  // Keyset position of the last dead letter handled (InfinitePast: none yet).
  absl::Time cursor_time = absl::InfinitePast();
  int64_t cursor_id = 0;
  int phase = 0;           // The runner's phase (see server/dlq/replay_runner.h).
  std::string canary_ids;  // Comma-separated envelope ids of the canaries.
};

// The write side's envelope calls (find, insert, update) and SaveCircuit are SchedulerStore's
// (server/core/scheduler.h), the part of the store the scheduler's transitions use.
class Store : public SchedulerStore {
 public:
  virtual ~Store() = default;

  // ---- Write side (one thread at a time) ----

  // Opens the batch transaction.
  [[nodiscard]] virtual absl::Status Begin() = 0;
  // Commits the batch: it is visible at once, and durable once a SyncLog() that started after
  // this call returned (Commit does not wait for the disk, so that the next batch can be applied
  // while the last one is being synced). On error the batch is rolled back.
  [[nodiscard]] virtual absl::Status Commit() = 0;
  // Makes every batch committed so far durable (fsyncs the log). Thread-safe: it runs on its own
  // thread, concurrently with the writer's next batch.
  [[nodiscard]] virtual absl::Status SyncLog() = 0;
  // Abandons the batch.
  virtual void Rollback() = 0;
  // Operation boundaries inside a batch, so one failed request does not undo the others.
  [[nodiscard]] virtual absl::Status BeginOp() = 0;
  // Keeps (keep = true) or undoes the operation's writes.
  [[nodiscard]] virtual absl::Status EndOp(bool keep) = 0;

  // FindByKey, FindById, Insert, Update, UpdateDroppingPayload: SchedulerStore's.
  // Deletes up to `limit` SUCCEEDED envelopes completed before `cutoff`, and their keys, so that
  // a later first failure with such a key starts a new envelope; returns how many. Its cost is
  // the rows deleted plus an index seek per service: succeeded envelopes completed since
  // `cutoff` are not read, however many there are.
  virtual absl::StatusOr<int64_t> DeleteSucceededBefore(absl::Time cutoff, int limit) = 0;
  // When the SUCCEEDED envelope that completed first did (as the batch sees it);
  // InfiniteFuture when there is none. An index seek per service.
  virtual absl::StatusOr<absl::Time> OldestSucceededAt() = 0;

  // SaveCircuit: SchedulerStore's.
  // Every stored circuit (start-up rebuild).
  virtual absl::StatusOr<std::vector<CircuitRecord>> LoadCircuits() = 0;

  // List() on the write side, inside the batch (sees the batch's own writes).
  virtual absl::StatusOr<ListPage> ListInTxn(const ListQuery& query) = 0;
  // Deletes the dead letters matching `filter`, oldest first, at most `limit` (0: all); returns
  // how many were deleted per service.
  virtual absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> DeleteDeadLetters(
      const EnvelopeFilter& filter, int64_t limit) = 0;
  // Appends to the audit log; sets record->id.
  [[nodiscard]] virtual absl::Status AppendAudit(AuditRecord* record) = 0;
  // Sets the affected_count of a stored audit record (a mutation applied in several
  // transactions updates its record in each).
  [[nodiscard]] virtual absl::Status UpdateAuditCount(int64_t id, int64_t affected_count) = 0;
  // The latest audit record of `method` with `request_id` that was not a dry run (for
  // idempotent retries), if any.
  virtual absl::StatusOr<std::optional<AuditRecord>> FindAudit(absl::string_view method,
                                                              absl::string_view request_id) = 0;
  // Stores a new replay; sets row->id. ALREADY_EXISTS if its request_id is taken.
  [[nodiscard]] virtual absl::Status InsertReplay(ReplayRow* row) = 0;
  // Rewrites a stored replay (all but id, request_id and created_at).
  [[nodiscard]] virtual absl::Status UpdateReplay(const ReplayRow& row) = 0;
  virtual absl::StatusOr<std::optional<ReplayRow>> FindReplayInTxn(int64_t id) = 0;
  virtual absl::StatusOr<std::optional<ReplayRow>> FindReplayByRequestId(
      absl::string_view request_id) = 0;

  // Calls `fn` for every scheduled and leased envelope (start-up rebuild).
  [[nodiscard]] virtual absl::Status ForEachLive(const std::function<void(const LiveRow&)>& fn) = 0;

  // Copies committed data from the log into the main file, as far as readers allow, without
  // blocking the writer. The log starts over from its beginning only when a writer's transaction
  // begins right after a checkpoint that copied everything, so a caller that wants the log kept
  // short pauses the writer between transactions and checkpoints once more. Any thread but the
  // writer's. (A store without a log answers zeros.)
  struct LogPages {
    int64_t total = 0;   // Pages in the log.
    int64_t copied = 0;  // Of those, in the main file now.
  };
  virtual absl::StatusOr<LogPages> CheckpointWal() { return LogPages(); }

  // ---- Read side (any thread; committed data) ----

  virtual absl::StatusOr<std::optional<Envelope>> Get(absl::string_view service,
                                                      absl::string_view message_id) = 0;
  // Every known service with its counts, ordered by name.
  virtual absl::StatusOr<std::vector<ServiceCounts>> CountByService() = 0;
  // A page of envelopes matching query.filter (every filter field is evaluated in SQL, with
  // bound parameters).
  virtual absl::StatusOr<ListPage> List(const ListQuery& query) = 0;
  // Dead letters matching `filter`.
  virtual absl::StatusOr<int64_t> CountDeadLetters(const EnvelopeFilter& filter) = 0;
  // Dead letters matching query.filter grouped by fingerprint, largest group first.
  virtual absl::StatusOr<std::vector<FailureGroupRow>> ListFailureGroups(
      const GroupQuery& query) = 0;
  // Counts of the dead letters of `service` (empty: all); since_count counts those
  // dead-lettered at or after `since`.
  virtual absl::StatusOr<DeadLetterStatsRow> DeadLetterStats(absl::string_view service,
                                                             absl::Time since) = 0;
  // Dead-letter histogram (GetDeadLetterHistogram): the dead letters now in the queue of
  // `service` (empty: every service) with since <= dead_lettered_at < until, counted per service
  // and per bucket of `width` (> 0) starting at `since`. Cells with a zero count are left out;
  // ordered by service name, then bucket. Computed in the database (GROUP BY service, bucket)
  // from an index on the dead letters' dead_lettered_at: its cost is the dead letters in the
  // range, read from the index, not their rows.
  virtual absl::StatusOr<std::vector<HistogramCell>> DeadLetterHistogram(
      absl::string_view service, absl::Time since, absl::Time until, absl::Duration width) = 0;
  // Audit records matching `query` (every field evaluated in the database), newest first.
  virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditQuery& query) = 0;
  virtual absl::StatusOr<std::optional<ReplayRow>> GetReplay(int64_t id) = 0;
  // Replays newest first, with id < before_id (0: from the newest).
  virtual absl::StatusOr<std::vector<ReplayRow>> ListReplays(int64_t before_id, int limit) = 0;
  // Replays in one of `states`, oldest first.
  virtual absl::StatusOr<std::vector<ReplayRow>> ListReplaysInStates(
      const std::vector<int>& states) = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_STORE_H_
