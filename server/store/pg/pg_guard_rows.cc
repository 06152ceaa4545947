#include "server/store/pg/pg_guard_rows.h"

#include <string>

#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd::pg {

absl::StatusOr<GuardRow> LoadGuardRow(Connection& conn, absl::string_view service) {
  ASSIGN_OR_RETURN(Result r,
                   conn.Exec("SELECT version, state, since, next_probe_at, open_duration_us,"
                             " override_mode, override_note, override_peer, override_at, windows"
                             " FROM circuits WHERE service = $1",
                             Params().Text(service)));
  GuardRow row;
  row.record.service = std::string(service);
  if (r.rows() == 0) return row;
  row.version = r.Int(0, 0);
  CircuitRecord& c = row.record;
  c.state = static_cast<CircuitState>(r.Int(0, 1));
  c.since = FromStoredMicros(r.Int(0, 2));
  c.next_probe_at = FromStoredMicros(r.Int(0, 3));
  c.open_duration = absl::Microseconds(r.Int(0, 4));
  c.override_mode = static_cast<CircuitOverride>(r.Int(0, 5));
  c.override_note = r.Text(0, 6);
  c.override_peer = r.Text(0, 7);
  c.override_at = FromStoredMicros(r.Int(0, 8));
  c.windows = r.Text(0, 9);
  return row;
}

absl::StatusOr<std::optional<int64_t>> CasGuardRow(Connection& conn, const CircuitRecord& record,
                                                   int64_t expected_version) {
  // The first write of a service inserts (losing to a concurrent insert: ON CONFLICT DO
  // NOTHING); later ones update where the version is still the expected one.
  static constexpr char kInsert[] =
      "INSERT INTO circuits (service, state, since, next_probe_at, open_duration_us,"
      " override_mode, override_note, override_peer, override_at, windows, version)"
      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)"
      " ON CONFLICT (service) DO NOTHING RETURNING version";
  static constexpr char kUpdate[] =
      "UPDATE circuits SET state = $2, since = $3, next_probe_at = $4, open_duration_us = $5,"
      " override_mode = $6, override_note = $7, override_peer = $8, override_at = $9,"
      " windows = $10, version = version + 1"
      " WHERE service = $1 AND version = $11 RETURNING version";
  Params p;
  p.Text(record.service)
      .Int(static_cast<int64_t>(record.state))
      .Int(ToStoredMicros(record.since))
      .Int(ToStoredMicros(record.next_probe_at))
      .Int(absl::ToInt64Microseconds(record.open_duration))
      .Int(static_cast<int64_t>(record.override_mode))
      .Text(record.override_note)
      .Text(record.override_peer)
      .Int(ToStoredMicros(record.override_at))
      .Bytes(record.windows);
  if (expected_version != 0) p.Int(expected_version);
  ASSIGN_OR_RETURN(Result r, conn.Exec(expected_version == 0 ? kInsert : kUpdate, p));
  if (r.rows() == 0) return std::nullopt;
  return r.Int(0, 0);
}

}  // namespace retryd::pg
