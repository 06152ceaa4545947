// How an Envelope is stored in an `envelopes` row (the schema is in sqlite_schema.cc): the
// columns a read selects, in the order RowToEnvelope reads them; the state-dependent time kept in
// `sort_at`; the fingerprint column. Used only inside server/store.
#ifndef RETRYD_SERVER_STORE_SQLITE_ROWS_H_
#define RETRYD_SERVER_STORE_SQLITE_ROWS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/store/sqlite_db.h"

namespace retryd {

// The envelope columns RowToEnvelope reads (without the payload), from `envelopes e` joined to
// `services s`; a statement adds its own FROM.
inline constexpr absl::string_view kSelectColumns =
    "SELECT e.id, s.name, e.message_id, e.state, e.sort_at, e.attempt, e.max_attempts, "
    "e.first_seen_at, e.created_at, e.updated_at, e.lease_token, e.dead_reason, "
    "e.last_decision, e.last_class, e.schema_version, e.details";

// A SELECT of the envelope columns (and the payload, as column 16, when `with_payload`) from
// envelopes joined to services, followed by `where`.
std::string SelectSql(bool with_payload, absl::string_view where);

// The state-dependent time kept in `sort_at`: next_retry_at, lease_expires_at, dead_lettered_at
// or completed_at.
absl::Time SortTime(const Envelope& e);
// The inverse, on reading a row: sets the time of e->state to `at`.
void SetSortTime(Envelope* e, absl::Time at);

// The envelope in the current row of a statement that selects kSelectColumns (and the payload
// when `with_payload`). DATA_LOSS if its details do not parse.
absl::StatusOr<Envelope> RowToEnvelope(const sqlite::Statement& s, bool with_payload);

// The fingerprint column of a row: dead letters only.
std::string StoredFingerprint(const Envelope& e);

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_SQLITE_ROWS_H_
