// PgStore: envelope rows by id and key: reads and writes in the writer's batch, the live rows the
// schedule is rebuilt from, and Get on a reader.
#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/store/pg/pg_rows.h"
#include "server/store/pg/pg_store.h"
#include "server/store/sqlite_rows.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::optional<Envelope>> PgStore::FindOne(pg::Connection& conn,
                                                        absl::string_view where,
                                                        const pg::Params& params,
                                                        bool with_payload) {
  ASSIGN_OR_RETURN(pg::Result r, conn.Exec(pg::SelectEnvelopes(with_payload, where), params));
  if (r.rows() == 0) return std::optional<Envelope>();
  ASSIGN_OR_RETURN(Envelope e, pg::RowToEnvelope(r, 0, with_payload));
  return std::optional<Envelope>(std::move(e));
}

absl::StatusOr<std::optional<Envelope>> PgStore::FindByKey(absl::string_view service,
                                                          absl::string_view message_id,
                                                          bool with_payload) {
  return FindOne(*writer_, "WHERE e.service = $1 AND e.message_id = $2",
                 pg::Params().Text(service).Text(message_id), with_payload);
}

absl::StatusOr<std::optional<Envelope>> PgStore::FindById(int64_t id, bool with_payload) {
  return FindOne(*writer_, "WHERE e.id = $1", pg::Params().Int(id), with_payload);
}

absl::Status PgStore::Insert(Envelope* e) {
  RETURN_IF_ERROR(NoteService(e->service));
  pg::Params p = pg::EnvelopeWriteParams(*e);
  p.Text(e->service).Text(e->message_id).Int(ToStoredMicros(e->created_at)).Bytes(e->payload);
  // ON CONFLICT DO NOTHING: a taken key is an answer (ALREADY_EXISTS) and leaves the
  // transaction usable, where a unique violation would abort it.
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "INSERT INTO envelopes (state, sort_at, attempt, max_attempts, first_seen_at, updated_at, "
      "lease_token, dead_reason, last_decision, last_class, error_code, schema_version, details, "
      "fingerprint, service, message_id, created_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, "
      "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) "
      "ON CONFLICT ON CONSTRAINT envelopes_key DO NOTHING RETURNING id",
      p));
  if (r.rows() == 0) {
    return absl::AlreadyExistsError(absl::StrCat("envelope ", e->service, "/", e->message_id,
                                                 " already exists"));
  }
  e->id = r.Int(0, 0);
  return absl::OkStatus();
}

absl::Status PgStore::Update(const Envelope& e) { return RunUpdate(e, false); }

absl::Status PgStore::UpdateDroppingPayload(const Envelope& e) { return RunUpdate(e, true); }

absl::Status PgStore::RunUpdate(const Envelope& e, bool drop_payload) {
  pg::Params p = pg::EnvelopeWriteParams(e);
  p.Int(e.id);
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      absl::StrCat("UPDATE envelopes SET state = $1, sort_at = $2, attempt = $3, "
                   "max_attempts = $4, first_seen_at = $5, updated_at = $6, lease_token = $7, "
                   "dead_reason = $8, last_decision = $9, last_class = $10, error_code = $11, "
                   "schema_version = $12, details = $13, fingerprint = $14",
                   drop_payload ? ", payload = ''::bytea" : "", " WHERE id = $15"),
      p));
  if (r.affected() != 1) {
    return absl::NotFoundError(absl::StrCat("envelope row ", e.id, " does not exist"));
  }
  return absl::OkStatus();
}

absl::Status PgStore::ForEachLive(const std::function<void(const LiveRow&)>& fn) {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(absl::StrCat(
      "SELECT id, service, state, sort_at FROM envelopes WHERE state IN (",
      static_cast<int>(EnvelopeState::kScheduled), ", ", static_cast<int>(EnvelopeState::kLeased),
      ")")));
  LiveRow row;
  for (int i = 0; i < r.rows(); ++i) {
    row.id = r.Int(i, 0);
    row.service = r.Text(i, 1);
    row.state = static_cast<EnvelopeState>(r.Int(i, 2));
    row.at = FromStoredMicros(r.Int(i, 3));
    fn(row);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Envelope>> PgStore::Get(absl::string_view service,
                                                    absl::string_view message_id) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  return FindOne(*reader, "WHERE e.service = $1 AND e.message_id = $2",
                 pg::Params().Text(service).Text(message_id), /*with_payload=*/true);
}

}  // namespace retryd
