#include "server/store/pg/pg_rows.h"

#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/store/sqlite_rows.h"
#include "server/util/time_conversion.h"

namespace retryd::pg {

std::string SelectEnvelopes(bool with_payload, absl::string_view where) {
  return absl::StrCat("SELECT ", kEnvelopeColumns, with_payload ? ", e.payload" : "",
                      " FROM envelopes e ", where);
}

absl::StatusOr<Envelope> RowToEnvelope(const Result& r, int row, bool with_payload) {
  Envelope e;
  e.id = r.Int(row, 0);
  e.service = r.Text(row, 1);
  e.message_id = r.Text(row, 2);
  e.state = static_cast<EnvelopeState>(r.Int(row, 3));
  SetSortTime(&e, FromStoredMicros(r.Int(row, 4)));
  e.attempt = static_cast<int>(r.Int(row, 5));
  e.max_attempts = static_cast<int>(r.Int(row, 6));
  e.first_seen_at = FromStoredMicros(r.Int(row, 7));
  e.created_at = FromStoredMicros(r.Int(row, 8));
  e.updated_at = FromStoredMicros(r.Int(row, 9));
  e.lease_token = r.Text(row, 10);
  e.dead_letter_reason = static_cast<DeadLetterReason>(r.Int(row, 11));
  e.last_decision = static_cast<DecisionKind>(r.Int(row, 12));
  e.last_error_class = static_cast<ErrorClass>(r.Int(row, 13));
  e.schema_version = r.Text(row, 14);
  if (!DecodeEnvelopeDetails(r.Text(row, 15), &e)) {
    return absl::DataLossError(absl::StrCat("envelope row ", e.id, ": details do not parse"));
  }
  if (with_payload) e.payload = r.Text(row, 17);
  return e;
}

Params EnvelopeWriteParams(const Envelope& e) {
  Params p;
  p.Int(static_cast<int>(e.state))
      .Int(ToStoredMicros(SortTime(e)))
      .Int(e.attempt)
      .Int(e.max_attempts)
      .Int(ToStoredMicros(e.first_seen_at))
      .Int(ToStoredMicros(e.updated_at))
      .Text(e.lease_token)
      .Int(static_cast<int>(e.dead_letter_reason))
      .Int(static_cast<int>(e.last_decision))
      .Int(static_cast<int>(e.last_error_class))
      .Text(e.last_error.error_code)
      .Text(e.schema_version)
      .Bytes(EncodeEnvelopeDetails(e))
      .Text(StoredFingerprint(e));
  return p;
}

}  // namespace retryd::pg
