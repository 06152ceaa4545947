// PostgreSQL connection strings as retryd shows them: the password is never printed.
#ifndef RETRYD_SERVER_STORE_PG_PG_DSN_H_
#define RETRYD_SERVER_STORE_PG_PG_DSN_H_

#include <string>

#include "absl/strings/string_view.h"

namespace retryd::pg {

// `dsn` with its password replaced by "***", in either libpq form: key=value pairs
// (`password=...`, quoted or not) and URIs (`postgresql://user:secret@host/db`, and a
// `password=` query parameter). Empty stays empty (libpq then uses the PG* variables).
std::string RedactDsn(absl::string_view dsn);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_DSN_H_
