#include "server/store/sqlite_rows.h"

#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/core/fingerprint.h"
#include "server/util/time_conversion.h"

namespace retryd {

namespace {

constexpr absl::string_view kFrom = " FROM envelopes e JOIN services s ON s.id = e.service_id ";

}  // namespace

std::string SelectSql(bool with_payload, absl::string_view where) {
  return absl::StrCat(kSelectColumns, with_payload ? ", e.payload" : "", kFrom, where);
}

absl::Time SortTime(const Envelope& e) {
  switch (e.state) {
    case EnvelopeState::kScheduled:
      return e.next_retry_at;
    case EnvelopeState::kLeased:
      return e.lease_expires_at;
    case EnvelopeState::kDeadLettered:
      return e.dead_lettered_at;
    case EnvelopeState::kSucceeded:
      return e.completed_at;
    default:
      return absl::InfinitePast();
  }
}

void SetSortTime(Envelope* e, absl::Time at) {
  switch (e->state) {
    case EnvelopeState::kScheduled:
      e->next_retry_at = at;
      break;
    case EnvelopeState::kLeased:
      e->lease_expires_at = at;
      break;
    case EnvelopeState::kDeadLettered:
      e->dead_lettered_at = at;
      break;
    case EnvelopeState::kSucceeded:
      e->completed_at = at;
      break;
    default:
      break;
  }
}

absl::StatusOr<Envelope> RowToEnvelope(const sqlite::Statement& s, bool with_payload) {
  Envelope e;
  e.id = s.ColumnInt(0);
  e.service = s.ColumnText(1);
  e.message_id = s.ColumnText(2);
  e.state = static_cast<EnvelopeState>(s.ColumnInt(3));
  SetSortTime(&e, FromStoredMicros(s.ColumnInt(4)));
  e.attempt = static_cast<int>(s.ColumnInt(5));
  e.max_attempts = static_cast<int>(s.ColumnInt(6));
  e.first_seen_at = FromStoredMicros(s.ColumnInt(7));
  e.created_at = FromStoredMicros(s.ColumnInt(8));
  e.updated_at = FromStoredMicros(s.ColumnInt(9));
  e.lease_token = s.ColumnText(10);
  e.dead_letter_reason = static_cast<DeadLetterReason>(s.ColumnInt(11));
  e.last_decision = static_cast<DecisionKind>(s.ColumnInt(12));
  e.last_error_class = static_cast<ErrorClass>(s.ColumnInt(13));
  e.schema_version = s.ColumnText(14);
  if (!DecodeEnvelopeDetails(s.ColumnBlob(15), &e)) {
    return absl::DataLossError(absl::StrCat("envelope row ", e.id, ": details do not parse"));
  }
  if (with_payload) e.payload = s.ColumnBlob(16);
  return e;
}

std::string StoredFingerprint(const Envelope& e) {
  return e.state == EnvelopeState::kDeadLettered ? FailureFingerprint(e) : std::string();
}

}  // namespace retryd
