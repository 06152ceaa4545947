// Database time: in shared mode every time that decides who may hold a lease (a claim's due
// check, a lease's expiry, the expiry sweep, a job's heartbeat) is the database's, so that the
// clocks of the replicas never matter: a replica whose clock runs ahead cannot hand out a retry
// early or take a live lease back, one whose clock lags cannot keep an expired one.
#ifndef RETRYD_SERVER_STORE_PG_PG_DB_TIME_H_
#define RETRYD_SERVER_STORE_PG_PG_DB_TIME_H_

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// The SQL expression of the database time in unix microseconds (bigint): the start of the
// current transaction, so one batch sees one time from its BEGIN on.
inline constexpr char kDbNowMicros[] = "(extract(epoch FROM transaction_timestamp()) * 1000000)::bigint";

// The database time of `conn`'s current transaction (of the statement, outside one).
absl::StatusOr<absl::Time> DbNow(Connection& conn);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_DB_TIME_H_
