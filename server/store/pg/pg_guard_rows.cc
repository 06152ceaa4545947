#include "server/store/pg/pg_guard_rows.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd::pg {

namespace {

constexpr char kColumns[] =
    "SELECT version, state, since, next_probe_at, open_duration_us, override_mode,"
    " override_note, override_peer, override_at, windows, service FROM circuits";

GuardRow RowAt(const Result& r, int i) {
  GuardRow row;
  row.version = r.Int(i, 0);
  CircuitRecord& c = row.record;
  c.service = r.Text(i, 10);
  c.state = static_cast<CircuitState>(r.Int(i, 1));
  c.since = FromStoredMicros(r.Int(i, 2));
  c.next_probe_at = FromStoredMicros(r.Int(i, 3));
  c.open_duration = absl::Microseconds(r.Int(i, 4));
  c.override_mode = static_cast<CircuitOverride>(r.Int(i, 5));
  c.override_note = r.Text(i, 6);
  c.override_peer = r.Text(i, 7);
  c.override_at = FromStoredMicros(r.Int(i, 8));
  c.windows = r.Text(i, 9);
  return row;
}

absl::StatusOr<GuardRow> LoadOne(Connection& conn, absl::string_view service,
                                 absl::string_view suffix) {
  ASSIGN_OR_RETURN(Result r, conn.Exec(absl::StrCat(kColumns, " WHERE service = $1", suffix),
                                       Params().Text(service)));
  if (r.rows() == 0) {
    GuardRow row;
    row.record.service = std::string(service);
    return row;
  }
  return RowAt(r, 0);
}

}  // namespace

absl::StatusOr<GuardRow> LoadGuardRow(Connection& conn, absl::string_view service) {
  return LoadOne(conn, service, "");
}

absl::StatusOr<GuardRow> LockGuardRow(Connection& conn, absl::string_view service) {
  return LoadOne(conn, service, " FOR UPDATE");
}

absl::StatusOr<std::optional<int64_t>> TryLockGuardRow(Connection& conn,
                                                      absl::string_view service) {
  ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT version FROM circuits WHERE service = $1"
                                       " FOR UPDATE SKIP LOCKED",
                                       Params().Text(service)));
  if (r.rows() == 0) return std::nullopt;
  return r.Int(0, 0);
}

absl::StatusOr<std::vector<GuardRow>> LoadGuardRows(Connection& conn) {
  ASSIGN_OR_RETURN(Result r, conn.Exec(absl::StrCat(kColumns, " ORDER BY service")));
  std::vector<GuardRow> rows;
  rows.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) rows.push_back(RowAt(r, i));
  return rows;
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
