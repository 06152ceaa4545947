#include "server/store/pg/pg_db_time.h"

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

absl::StatusOr<absl::Time> DbNow(Connection& conn) {
  ASSIGN_OR_RETURN(Result r, conn.Exec(absl::StrCat("SELECT ", kDbNowMicros)));
  return absl::FromUnixMicros(r.Int(0, 0));
}

}  // namespace retryd::pg
