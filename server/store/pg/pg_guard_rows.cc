#include "server/store/pg/pg_guard_rows.h"

#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_db_time.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

absl::StatusOr<GuardRow> LoadGuardRow(Connection& conn, absl::string_view service) {
  ASSIGN_OR_RETURN(Result r, conn.Exec("SELECT version, body, updated_at FROM guard_rows"
                                       " WHERE service = $1",
                                       Params().Text(service)));
  GuardRow row;
  row.service = std::string(service);
  if (r.rows() == 0) return row;
  row.version = r.Int(0, 0);
  row.body = r.Text(0, 1);
  row.updated_at = absl::FromUnixMicros(r.Int(0, 2));
  return row;
}

absl::StatusOr<std::optional<int64_t>> CasGuardRow(Connection& conn, absl::string_view service,
                                                   int64_t expected_version,
                                                   absl::string_view body) {
  // The first write of a service inserts (losing to a concurrent insert: ON CONFLICT DO
  // NOTHING); later ones update where the version is still the expected one.
  static const std::string kInsert = absl::StrCat(
      "INSERT INTO guard_rows (service, version, body, updated_at) VALUES ($1, 1, $2, ",
      kDbNowMicros, ") ON CONFLICT (service) DO NOTHING RETURNING version");
  static const std::string kUpdate = absl::StrCat(
      "UPDATE guard_rows SET version = version + 1, body = $2, updated_at = ", kDbNowMicros,
      " WHERE service = $1 AND version = $3 RETURNING version");
  Params p;
  p.Text(service).Bytes(body);
  if (expected_version != 0) p.Int(expected_version);
  ASSIGN_OR_RETURN(Result r, conn.Exec(expected_version == 0 ? kInsert : kUpdate, p));
  if (r.rows() == 0) return std::nullopt;
  return r.Int(0, 0);
}

}  // namespace retryd::pg
