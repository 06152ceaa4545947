// SqliteStore: the guard state rows: one `circuits` row per service whose circuit left its initial
// state (breaker state, operator override, and the guards' windows).
#include "server/store/sqlite_store.h"

#include <utility>

#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::Status SqliteStore::SaveCircuit(const CircuitRecord& r) {
  sqlite::Statement& s = save_circuit_;
  s.BindText(1, r.service);
  s.BindInt(2, static_cast<int>(r.state));
  s.BindInt(3, ToStoredMicros(r.since));
  s.BindInt(4, ToStoredMicros(r.next_probe_at));
  s.BindInt(5, absl::ToInt64Microseconds(r.open_duration));
  s.BindInt(6, static_cast<int>(r.override_mode));
  s.BindText(7, r.override_note);
  s.BindText(8, r.override_peer);
  s.BindInt(9, ToStoredMicros(r.override_at));
  s.BindBlobUncopied(10, r.windows);
  return s.Run();
}

absl::StatusOr<std::vector<CircuitRecord>> SqliteStore::LoadCircuits() {
  ASSIGN_OR_RETURN(sqlite::Statement s, writer_->Prepare(
      "SELECT service, state, since, next_probe_at, open_duration_us, override_mode, "
      "override_note, override_peer, override_at, windows FROM circuits ORDER BY service"));
  std::vector<CircuitRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    CircuitRecord r;
    r.service = s.ColumnText(0);
    r.state = static_cast<CircuitState>(s.ColumnInt(1));
    r.since = FromStoredMicros(s.ColumnInt(2));
    r.next_probe_at = FromStoredMicros(s.ColumnInt(3));
    r.open_duration = absl::Microseconds(s.ColumnInt(4));
    r.override_mode = static_cast<CircuitOverride>(s.ColumnInt(5));
    r.override_note = s.ColumnText(6);
    r.override_peer = s.ColumnText(7);
    r.override_at = FromStoredMicros(s.ColumnInt(8));
    r.windows = s.ColumnBlob(9);
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace retryd
