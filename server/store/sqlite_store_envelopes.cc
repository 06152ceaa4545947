// SqliteStore: envelope rows by id and key: reads and writes in the writer's batch, the live rows
// the schedule is rebuilt from, and Get on a reader.
#include "server/store/sqlite_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/store/sqlite_rows.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::optional<Envelope>> SqliteStore::ReadOne(sqlite::Statement& stmt,
                                                            bool with_payload) {
  absl::StatusOr<bool> row = stmt.Step();
  if (!row.ok()) return row.status();
  if (!*row) {
    stmt.Reset();
    return std::optional<Envelope>();
  }
  absl::StatusOr<Envelope> e = RowToEnvelope(stmt, with_payload);
  stmt.Reset();
  if (!e.ok()) return e.status();
  return std::optional<Envelope>(std::move(*e));
}

absl::StatusOr<std::optional<Envelope>> SqliteStore::FindByKey(absl::string_view service,
                                                              absl::string_view message_id,
                                                              bool with_payload) {
  auto it = service_ids_.find(service);
  if (it == service_ids_.end()) return std::optional<Envelope>();
  ASSIGN_OR_RETURN(std::optional<int64_t> id, keys_->Find(it->second, message_id));
  if (!id.has_value()) return std::optional<Envelope>();
  return FindById(*id, with_payload);
}

absl::StatusOr<std::optional<Envelope>> SqliteStore::FindById(int64_t id, bool with_payload) {
  sqlite::Statement& stmt = with_payload ? find_by_id_payload_ : find_by_id_;
  stmt.BindInt(1, id);
  return ReadOne(stmt, with_payload);
}

absl::Status SqliteStore::Insert(Envelope* e) {
  ASSIGN_OR_RETURN(int64_t service_id, ServiceId(e->service));
  ASSIGN_OR_RETURN(std::optional<int64_t> existing, keys_->Find(service_id, e->message_id));
  if (existing.has_value()) {
    return absl::AlreadyExistsError(absl::StrCat("envelope ", e->service, "/", e->message_id,
                                                 " already exists"));
  }
  const int64_t id = keys_->NextId();
  sqlite::Statement& s = insert_;
  s.BindInt(1, service_id);
  s.BindText(2, e->message_id);
  s.BindInt(3, static_cast<int>(e->state));
  s.BindInt(4, ToStoredMicros(SortTime(*e)));
  s.BindInt(5, e->attempt);
  s.BindInt(6, e->max_attempts);
  s.BindInt(7, ToStoredMicros(e->first_seen_at));
  s.BindInt(8, ToStoredMicros(e->created_at));
  s.BindInt(9, ToStoredMicros(e->updated_at));
  s.BindText(10, e->lease_token);
  s.BindInt(11, static_cast<int>(e->dead_letter_reason));
  s.BindInt(12, static_cast<int>(e->last_decision));
  s.BindInt(13, static_cast<int>(e->last_error_class));
  s.BindText(14, e->last_error.error_code);
  s.BindText(15, e->schema_version);
  const std::string details = EncodeEnvelopeDetails(*e);
  s.BindBlobUncopied(16, details);
  s.BindBlobUncopied(17, e->payload);
  s.BindText(18, StoredFingerprint(*e));
  s.BindInt(19, id);
  RETURN_IF_ERROR(s.Run());
  keys_->Add(service_id, e->message_id, id);
  e->id = id;
  return absl::OkStatus();
}

absl::Status SqliteStore::Update(const Envelope& e) { return RunUpdate(update_, e); }

absl::Status SqliteStore::UpdateDroppingPayload(const Envelope& e) {
  return RunUpdate(update_dropping_payload_, e);
}

absl::Status SqliteStore::RunUpdate(sqlite::Statement& s, const Envelope& e) {
  s.BindInt(1, static_cast<int>(e.state));
  s.BindInt(2, ToStoredMicros(SortTime(e)));
  s.BindInt(3, e.attempt);
  s.BindInt(4, e.max_attempts);
  s.BindInt(5, ToStoredMicros(e.first_seen_at));
  s.BindInt(6, ToStoredMicros(e.updated_at));
  s.BindText(7, e.lease_token);
  s.BindInt(8, static_cast<int>(e.dead_letter_reason));
  s.BindInt(9, static_cast<int>(e.last_decision));
  s.BindInt(10, static_cast<int>(e.last_error_class));
  s.BindText(11, e.last_error.error_code);
  s.BindText(12, e.schema_version);
  s.BindBlob(13, EncodeEnvelopeDetails(e));
  s.BindText(14, StoredFingerprint(e));
  s.BindInt(15, e.id);
  RETURN_IF_ERROR(s.Run());
  if (writer_->Changes() != 1) {
    return absl::NotFoundError(absl::StrCat("envelope row ", e.id, " does not exist"));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::ForEachLive(const std::function<void(const LiveRow&)>& fn) {
  // Reads only the two indexes that hold scheduled and leased rows: no envelope row is touched.
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(absl::StrCat(
      "SELECT id, service_id, state, sort_at FROM envelopes INDEXED BY envelopes_scheduled "
      "WHERE state = ", static_cast<int>(EnvelopeState::kScheduled),
      " UNION ALL "
      "SELECT id, service_id, state, sort_at FROM envelopes INDEXED BY envelopes_by_state "
      "WHERE state = ", static_cast<int>(EnvelopeState::kLeased))));
  LiveRow row;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    row.id = s.ColumnInt(0);
    auto name = service_names_.find(s.ColumnInt(1));
    row.service = name == service_names_.end() ? std::string() : name->second;
    row.state = static_cast<EnvelopeState>(s.ColumnInt(2));
    row.at = FromStoredMicros(s.ColumnInt(3));
    fn(row);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Envelope>> SqliteStore::Get(absl::string_view service,
                                                        absl::string_view message_id) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  ASSIGN_OR_RETURN(sqlite::Statement service_id,
                   reader->Prepare("SELECT id FROM services WHERE name = ?"));
  service_id.BindText(1, service);
  ASSIGN_OR_RETURN(bool known, service_id.Step());
  if (!known) return std::optional<Envelope>();
  // A key written since the last merge is in memory only; the row itself confirms it (the entry
  // may belong to an insert that is not committed yet, or was undone).
  if (std::optional<int64_t> id = keys_->PendingId(service_id.ColumnInt(0), message_id)) {
    ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(SelectSql(
        true, "WHERE e.id = ? AND e.service_id = ? AND e.message_id = ?")));
    s.BindInt(1, *id);
    s.BindInt(2, service_id.ColumnInt(0));
    s.BindText(3, message_id);
    ASSIGN_OR_RETURN(std::optional<Envelope> e, ReadOne(s, /*with_payload=*/true));
    if (e.has_value()) return e;
  }
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(SelectSql(
      true, "WHERE e.id = (SELECT id FROM envelope_keys WHERE service_id = ? AND message_id = ?)")));
  s.BindInt(1, service_id.ColumnInt(0));
  s.BindText(2, message_id);
  return ReadOne(s, /*with_payload=*/true);
}

}  // namespace retryd
