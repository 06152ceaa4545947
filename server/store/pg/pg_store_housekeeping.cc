// PgStore: housekeeping of succeeded envelopes (the oldest one's completion time, the deletion of
// those completed before a cutoff) and the guard state rows (one `circuits` row per service).
#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_store.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<int64_t> PgStore::DeleteSucceededBefore(absl::Time cutoff, int limit) {
  // envelopes_succeeded (sort_at) WHERE state = 4 serves both statements.
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "DELETE FROM envelopes WHERE id IN (SELECT id FROM envelopes WHERE state = 4 "
      "AND sort_at < $1 LIMIT $2)",
      pg::Params().Int(ToStoredMicros(cutoff)).Int(limit)));
  return r.affected();
}

absl::StatusOr<absl::Time> PgStore::OldestSucceededAt() {
  ASSIGN_OR_RETURN(pg::Result r,
                   writer_->Exec("SELECT min(sort_at) FROM envelopes WHERE state = 4"));
  if (r.rows() == 0 || r.IsNull(0, 0)) return absl::InfiniteFuture();
  return FromStoredMicros(r.Int(0, 0));
}

absl::Status PgStore::SaveCircuit(const CircuitRecord& c) {
  return writer_
      ->Exec(
          "INSERT INTO circuits (service, state, since, next_probe_at, open_duration_us, "
          "override_mode, override_note, override_peer, override_at, windows) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (service) DO UPDATE SET "
          "state = EXCLUDED.state, since = EXCLUDED.since, next_probe_at = EXCLUDED.next_probe_at, "
          "open_duration_us = EXCLUDED.open_duration_us, override_mode = EXCLUDED.override_mode, "
          "override_note = EXCLUDED.override_note, override_peer = EXCLUDED.override_peer, "
          "override_at = EXCLUDED.override_at, windows = EXCLUDED.windows, "
          "version = circuits.version + 1",  // Replicas' compare-and-set sees the change.
          pg::Params()
              .Text(c.service)
              .Int(static_cast<int>(c.state))
              .Int(ToStoredMicros(c.since))
              .Int(ToStoredMicros(c.next_probe_at))
              .Int(absl::ToInt64Microseconds(c.open_duration))
              .Int(static_cast<int>(c.override_mode))
              .Text(c.override_note)
              .Text(c.override_peer)
              .Int(ToStoredMicros(c.override_at))
              .Bytes(c.windows))
      .status();
}

absl::StatusOr<std::vector<CircuitRecord>> PgStore::LoadCircuits() {
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      "SELECT service, state, since, next_probe_at, open_duration_us, override_mode, "
      "override_note, override_peer, override_at, windows FROM circuits "
      "ORDER BY service COLLATE \"C\""));
  std::vector<CircuitRecord> out;
  for (int i = 0; i < r.rows(); ++i) {
    CircuitRecord c;
    c.service = r.Text(i, 0);
    c.state = static_cast<CircuitState>(r.Int(i, 1));
    c.since = FromStoredMicros(r.Int(i, 2));
    c.next_probe_at = FromStoredMicros(r.Int(i, 3));
    c.open_duration = absl::Microseconds(r.Int(i, 4));
    c.override_mode = static_cast<CircuitOverride>(r.Int(i, 5));
    c.override_note = r.Text(i, 6);
    c.override_peer = r.Text(i, 7);
    c.override_at = FromStoredMicros(r.Int(i, 8));
    c.windows = r.Text(i, 9);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace retryd
