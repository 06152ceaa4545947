// How an Envelope is stored in a PostgreSQL `envelopes` row (schema in pg_schema.cc): the columns
// a read selects, in the order RowToEnvelope reads them. The state-dependent `sort_at` and the
// fingerprint column are SqliteStore's (sqlite_rows.h: SortTime, SetSortTime,
// StoredFingerprint).
#ifndef RETRYD_SERVER_STORE_PG_PG_ROWS_H_
#define RETRYD_SERVER_STORE_PG_PG_ROWS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/envelope.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// The envelope columns (without the payload) of `envelopes e`. Column 16 is the details' size
// (the listings' byte budget); the payload, when selected, is column 17.
inline constexpr absl::string_view kEnvelopeColumns =
    "e.id, e.service, e.message_id, e.state, e.sort_at, e.attempt, e.max_attempts, "
    "e.first_seen_at, e.created_at, e.updated_at, e.lease_token, e.dead_reason, "
    "e.last_decision, e.last_class, e.schema_version, e.details, octet_length(e.details)::bigint";
inline constexpr int kDetailsSizeColumn = 16;

// "SELECT <columns>[, e.payload] FROM envelopes e " followed by `where`.
std::string SelectEnvelopes(bool with_payload, absl::string_view where);

// The envelope in row `row` of a result of SelectEnvelopes. DATA_LOSS if its details do not parse.
absl::StatusOr<Envelope> RowToEnvelope(const Result& r, int row, bool with_payload);

// Parameters $1..$14 of an envelope write, in this order: state, sort_at, attempt,
// max_attempts, first_seen_at, updated_at, lease_token, dead_reason, last_decision, last_class,
// error_code, schema_version, details, fingerprint.
Params EnvelopeWriteParams(const Envelope& e);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_ROWS_H_
