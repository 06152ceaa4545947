// PgStore: the operator-facing rows: the audit log of operator mutations and the persisted replay
// jobs, written in the writer's batch and read on a reader.
#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_filter.h"
#include "server/store/pg/pg_store.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

namespace {

constexpr absl::string_view kAuditColumns =
    "SELECT id, time, identity, peer, method, filter, dry_run, affected_count, note, "
    "request_id, target, result_code, detail FROM audit_events ";

AuditRecord RowToAudit(const pg::Result& r, int i) {
  AuditRecord a;
  a.id = r.Int(i, 0);
  a.time = FromStoredMicros(r.Int(i, 1));
  a.identity = r.Text(i, 2);
  a.peer = r.Text(i, 3);
  a.method = r.Text(i, 4);
  a.filter = r.Text(i, 5);
  a.dry_run = r.Int(i, 6) != 0;
  a.affected_count = r.Int(i, 7);
  a.note = r.Text(i, 8);
  a.request_id = r.Text(i, 9);
  a.target = r.Text(i, 10);
  a.result_code = r.Text(i, 11);
  a.detail = r.Text(i, 12);
  return a;
}

std::vector<AuditRecord> AllAudit(const pg::Result& r) {
  std::vector<AuditRecord> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(RowToAudit(r, i));
  return out;
}

constexpr absl::string_view kReplayColumns =
    "SELECT id, coalesce(request_id, ''), state, created_at, body, cursor_at, cursor_id, phase, "
    "canary_ids FROM replays ";

ReplayRow RowToReplay(const pg::Result& r, int i) {
  ReplayRow row;
  row.id = r.Int(i, 0);
  row.request_id = r.Text(i, 1);
  row.state = static_cast<int>(r.Int(i, 2));
  row.created_at = FromStoredMicros(r.Int(i, 3));
  row.body = r.Text(i, 4);
  row.cursor_time = FromStoredMicros(r.Int(i, 5));
  row.cursor_id = r.Int(i, 6);
  row.phase = static_cast<int>(r.Int(i, 7));
  row.canary_ids = r.Text(i, 8);
  return row;
}

std::optional<ReplayRow> OneReplay(const pg::Result& r) {
  if (r.rows() == 0) return std::nullopt;
  return RowToReplay(r, 0);
}

std::vector<ReplayRow> AllReplays(const pg::Result& r) {
  std::vector<ReplayRow> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(RowToReplay(r, i));
  return out;
}

}  // namespace

absl::Status PgStore::AppendAudit(AuditRecord* a) {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "INSERT INTO audit_events (time, identity, peer, method, filter, dry_run, affected_count, "
      "note, request_id, target, result_code, detail) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
      pg::Params()
          .Int(ToStoredMicros(a->time))
          .Text(a->identity)
          .Text(a->peer)
          .Text(a->method)
          .Bytes(a->filter)
          .Bool(a->dry_run)
          .Int(a->affected_count)
          .Text(a->note)
          .Text(a->request_id)
          .Text(a->target)
          .Text(a->result_code)
          .Text(a->detail)));
  a->id = r.Int(0, 0);
  return absl::OkStatus();
}

absl::Status PgStore::UpdateAuditCount(int64_t id, int64_t affected_count) {
  return writer_
      ->Exec("UPDATE audit_events SET affected_count = $1 WHERE id = $2",
             pg::Params().Int(affected_count).Int(id))
      .status();
}

absl::StatusOr<std::optional<AuditRecord>> PgStore::FindAudit(absl::string_view method,
                                                             absl::string_view request_id) {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      absl::StrCat(kAuditColumns, "WHERE method = $1 AND request_id = $2 AND NOT dry_run "
                                  "ORDER BY id DESC LIMIT 1"),
      pg::Params().Text(method).Text(request_id)));
  if (r.rows() == 0) return std::optional<AuditRecord>();
  return std::optional<AuditRecord>(RowToAudit(r, 0));
}

absl::Status PgStore::InsertReplay(ReplayRow* row) {
  pg::Params p;
  if (row->request_id.empty()) {
    p.Null();
  } else {
    p.Text(row->request_id);
  }
  p.Int(row->state)
      .Int(ToStoredMicros(row->created_at))
      .Bytes(row->body)
      .Int(ToStoredMicros(row->cursor_time))
      .Int(row->cursor_id)
      .Int(row->phase)
      .Text(row->canary_ids);
  // ON CONFLICT DO NOTHING keeps the batch usable when the request id is taken.
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "INSERT INTO replays (request_id, state, created_at, body, cursor_at, cursor_id, phase, "
      "canary_ids) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
      "ON CONFLICT (request_id) DO NOTHING RETURNING id",
      p));
  if (r.rows() == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("a replay with request id ", row->request_id, " already exists"));
  }
  row->id = r.Int(0, 0);
  return absl::OkStatus();
}

absl::Status PgStore::UpdateReplay(const ReplayRow& row) {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "UPDATE replays SET state = $1, body = $2, cursor_at = $3, cursor_id = $4, phase = $5, "
      "canary_ids = $6 WHERE id = $7",
      pg::Params()
          .Int(row.state)
          .Bytes(row.body)
          .Int(ToStoredMicros(row.cursor_time))
          .Int(row.cursor_id)
          .Int(row.phase)
          .Text(row.canary_ids)
          .Int(row.id)));
  if (r.affected() != 1) {
    return absl::NotFoundError(absl::StrCat("replay ", row.id, " does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ReplayRow>> PgStore::FindReplayInTxn(int64_t id) {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(absl::StrCat(kReplayColumns, "WHERE id = $1"),
                                               pg::Params().Int(id)));
  return OneReplay(r);
}

absl::StatusOr<std::optional<ReplayRow>> PgStore::FindReplayByRequestId(
    absl::string_view request_id) {
  ASSIGN_OR_RETURN(pg::Result r,
                   writer_->Exec(absl::StrCat(kReplayColumns, "WHERE request_id = $1"),
                                 pg::Params().Text(request_id)));
  return OneReplay(r);
}

absl::StatusOr<std::vector<AuditRecord>> PgStore::ListAudit(const AuditQuery& query) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  // Newest first by the primary key; every filter is a bound parameter evaluated as the rows are
  // read, so paging by id stays stable whatever the filters.
  pg::Args args;
  std::string sql = absl::StrCat(kAuditColumns, "WHERE id < ",
                                 args.Int(query.before_id > 0 ? query.before_id : INT64_MAX));
  pg::AppendIn(&sql, "method", query.methods, &args);
  pg::AppendIn(&sql, "identity", query.identities, &args);
  pg::AppendIn(&sql, "target", query.targets, &args);
  pg::AppendIn(&sql, "result_code", query.result_codes, &args);
  if (query.since != absl::InfinitePast()) {
    absl::StrAppend(&sql, " AND time >= ", args.Int(ToStoredMicros(query.since)));
  }
  if (query.until != absl::InfiniteFuture()) {
    absl::StrAppend(&sql, " AND time < ", args.Int(ToStoredMicros(query.until)));
  }
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ", args.Int(query.limit));
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(sql, args.params()));
  return AllAudit(r);
}

absl::StatusOr<std::optional<ReplayRow>> PgStore::GetReplay(int64_t id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(absl::StrCat(kReplayColumns, "WHERE id = $1"),
                                              pg::Params().Int(id)));
  return OneReplay(r);
}

absl::StatusOr<std::vector<ReplayRow>> PgStore::ListReplays(int64_t before_id, int limit) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
      absl::StrCat(kReplayColumns, "WHERE id < $1 ORDER BY id DESC LIMIT $2"),
      pg::Params().Int(before_id > 0 ? before_id : INT64_MAX).Int(limit)));
  return AllReplays(r);
}

absl::StatusOr<std::vector<ReplayRow>> PgStore::ListReplaysInStates(
    const std::vector<int>& states) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  pg::Args args;
  std::vector<int64_t> values(states.begin(), states.end());
  std::string sql = absl::StrCat(kReplayColumns, "WHERE true");
  pg::AppendIn(&sql, "state", values, &args);
  absl::StrAppend(&sql, " ORDER BY id");
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(sql, args.params()));
  return AllReplays(r);
}

}  // namespace retryd
