// SqliteStore: the operator-facing rows: the audit log of operator mutations and the persisted
// replay jobs, written in the writer's batch and read on a reader.
#include "server/store/sqlite_store.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_filter.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

namespace {

constexpr absl::string_view kAuditColumns =
    "SELECT id, time, identity, peer, method, filter, dry_run, affected_count, note, "
    "request_id, target, result_code, detail FROM audit_events ";

AuditRecord RowToAudit(const sqlite::Statement& s) {
  AuditRecord r;
  r.id = s.ColumnInt(0);
  r.time = FromStoredMicros(s.ColumnInt(1));
  r.identity = s.ColumnText(2);
  r.peer = s.ColumnText(3);
  r.method = s.ColumnText(4);
  r.filter = s.ColumnBlob(5);
  r.dry_run = s.ColumnInt(6) != 0;
  r.affected_count = s.ColumnInt(7);
  r.note = s.ColumnText(8);
  r.request_id = s.ColumnText(9);
  r.target = s.ColumnText(10);
  r.result_code = s.ColumnText(11);
  r.detail = s.ColumnText(12);
  return r;
}

constexpr absl::string_view kReplayColumns =
    "SELECT id, coalesce(request_id, ''), state, created_at, body, cursor_at, cursor_id, phase, "
    "canary_ids FROM replays ";

ReplayRow RowToReplay(const sqlite::Statement& s) {
  ReplayRow r;
  r.id = s.ColumnInt(0);
  r.request_id = s.ColumnText(1);
  r.state = static_cast<int>(s.ColumnInt(2));
  r.created_at = FromStoredMicros(s.ColumnInt(3));
  r.body = s.ColumnBlob(4);
  r.cursor_time = FromStoredMicros(s.ColumnInt(5));
  r.cursor_id = s.ColumnInt(6);
  r.phase = static_cast<int>(s.ColumnInt(7));
  r.canary_ids = s.ColumnText(8);
  return r;
}

absl::StatusOr<std::optional<ReplayRow>> OneReplay(sqlite::Statement& s) {
  ASSIGN_OR_RETURN(bool has, s.Step());
  if (!has) return std::optional<ReplayRow>();
  return std::optional<ReplayRow>(RowToReplay(s));
}

absl::StatusOr<std::vector<ReplayRow>> AllReplays(sqlite::Statement& s) {
  std::vector<ReplayRow> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    out.push_back(RowToReplay(s));
  }
  return out;
}

}  // namespace

absl::Status SqliteStore::AppendAudit(AuditRecord* r) {
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(
      "INSERT INTO audit_events (time, identity, peer, method, filter, dry_run, affected_count, "
      "note, request_id, target, result_code, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
  s.BindInt(1, ToStoredMicros(r->time));
  s.BindText(2, r->identity);
  s.BindText(3, r->peer);
  s.BindText(4, r->method);
  s.BindBlob(5, r->filter);
  s.BindInt(6, r->dry_run ? 1 : 0);
  s.BindInt(7, r->affected_count);
  s.BindText(8, r->note);
  s.BindText(9, r->request_id);
  s.BindText(10, r->target);
  s.BindText(11, r->result_code);
  s.BindText(12, r->detail);
  RETURN_IF_ERROR(s.Run());
  r->id = writer_->LastInsertRowId();
  return absl::OkStatus();
}

absl::Status SqliteStore::UpdateAuditCount(int64_t id, int64_t affected_count) {
  ASSIGN_OR_RETURN(sqlite::Statement s,
                   writer_->Prepare("UPDATE audit_events SET affected_count = ? WHERE id = ?"));
  s.BindInt(1, affected_count);
  s.BindInt(2, id);
  return s.Run();
}

absl::StatusOr<std::optional<AuditRecord>> SqliteStore::FindAudit(absl::string_view method,
                                                                 absl::string_view request_id) {
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(absl::StrCat(
      kAuditColumns,
      "WHERE method = ? AND request_id = ? AND dry_run = 0 ORDER BY id DESC LIMIT 1")));
  s.BindText(1, method);
  s.BindText(2, request_id);
  ASSIGN_OR_RETURN(bool has, s.Step());
  if (!has) return std::optional<AuditRecord>();
  return std::optional<AuditRecord>(RowToAudit(s));
}

absl::Status SqliteStore::InsertReplay(ReplayRow* r) {
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(
      "INSERT INTO replays (request_id, state, created_at, body, cursor_at, cursor_id, phase, "
      "canary_ids) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"));
  if (r->request_id.empty()) {
    s.BindNull(1);
  } else {
    s.BindText(1, r->request_id);
  }
  s.BindInt(2, r->state);
  s.BindInt(3, ToStoredMicros(r->created_at));
  s.BindBlob(4, r->body);
  s.BindInt(5, ToStoredMicros(r->cursor_time));
  s.BindInt(6, r->cursor_id);
  s.BindInt(7, r->phase);
  s.BindText(8, r->canary_ids);
  RETURN_IF_ERROR(s.Run());
  r->id = writer_->LastInsertRowId();
  return absl::OkStatus();
}

absl::Status SqliteStore::UpdateReplay(const ReplayRow& r) {
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(
      "UPDATE replays SET state = ?, body = ?, cursor_at = ?, cursor_id = ?, phase = ?, "
      "canary_ids = ? WHERE id = ?"));
  s.BindInt(1, r.state);
  s.BindBlob(2, r.body);
  s.BindInt(3, ToStoredMicros(r.cursor_time));
  s.BindInt(4, r.cursor_id);
  s.BindInt(5, r.phase);
  s.BindText(6, r.canary_ids);
  s.BindInt(7, r.id);
  RETURN_IF_ERROR(s.Run());
  if (writer_->Changes() != 1) {
    return absl::NotFoundError(absl::StrCat("replay ", r.id, " does not exist"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<ReplayRow>> SqliteStore::FindReplayInTxn(int64_t id) {
  ASSIGN_OR_RETURN(sqlite::Statement s,
                   writer_->Prepare(absl::StrCat(kReplayColumns, "WHERE id = ?")));
  s.BindInt(1, id);
  return OneReplay(s);
}

absl::StatusOr<std::optional<ReplayRow>> SqliteStore::FindReplayByRequestId(
    absl::string_view request_id) {
  ASSIGN_OR_RETURN(sqlite::Statement s,
                   writer_->Prepare(absl::StrCat(kReplayColumns, "WHERE request_id = ?")));
  s.BindText(1, request_id);
  return OneReplay(s);
}

absl::StatusOr<std::vector<AuditRecord>> SqliteStore::ListAudit(const AuditQuery& query) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  // Newest first by the primary key; every filter is a bound parameter evaluated as the rows are
  // read, so paging by id stays stable whatever the filters.
  SqlArgs args;
  std::string sql = absl::StrCat(kAuditColumns, "WHERE id < ",
                                 args.Int(query.before_id > 0 ? query.before_id : INT64_MAX));
  AppendIn(&sql, "method", query.methods, &args);
  AppendIn(&sql, "identity", query.identities, &args);
  AppendIn(&sql, "target", query.targets, &args);
  AppendIn(&sql, "result_code", query.result_codes, &args);
  if (query.since != absl::InfinitePast()) {
    absl::StrAppend(&sql, " AND time >= ", args.Int(ToStoredMicros(query.since)));
  }
  if (query.until != absl::InfiniteFuture()) {
    absl::StrAppend(&sql, " AND time < ", args.Int(ToStoredMicros(query.until)));
  }
  absl::StrAppend(&sql, " ORDER BY id DESC LIMIT ", args.Int(query.limit));
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(sql));
  args.BindAll(s);
  std::vector<AuditRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    out.push_back(RowToAudit(s));
  }
  return out;
}

absl::StatusOr<std::optional<ReplayRow>> SqliteStore::GetReplay(int64_t id) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  ASSIGN_OR_RETURN(sqlite::Statement s,
                   reader->Prepare(absl::StrCat(kReplayColumns, "WHERE id = ?")));
  s.BindInt(1, id);
  return OneReplay(s);
}

absl::StatusOr<std::vector<ReplayRow>> SqliteStore::ListReplays(int64_t before_id, int limit) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
      kReplayColumns, "WHERE id < ? ORDER BY id DESC LIMIT ?")));
  s.BindInt(1, before_id > 0 ? before_id : INT64_MAX);
  s.BindInt(2, limit);
  return AllReplays(s);
}

absl::StatusOr<std::vector<ReplayRow>> SqliteStore::ListReplaysInStates(
    const std::vector<int>& states) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  SqlArgs args;
  std::vector<int64_t> values(states.begin(), states.end());
  std::string sql = absl::StrCat(kReplayColumns, "WHERE 1");
  AppendIn(&sql, "state", values, &args);
  absl::StrAppend(&sql, " ORDER BY id");
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(sql));
  args.BindAll(s);
  return AllReplays(s);
}

}  // namespace retryd
