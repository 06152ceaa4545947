// The WHERE conditions of a selection of envelopes by state and EnvelopeFilter, for PostgreSQL:
// every caller-supplied value is a bound parameter ($N), never spliced into the SQL text.
#ifndef RETRYD_SERVER_STORE_PG_PG_FILTER_H_
#define RETRYD_SERVER_STORE_PG_PG_FILTER_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/core/filter.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

// Parameters of a statement built at run time; each call returns the new parameter's
// placeholder.
class Args {
 public:
  std::string Int(int64_t v) {
    params_.Int(v);
    return absl::StrCat("$", params_.size());
  }
  std::string Text(absl::string_view v) {
    params_.Text(v);
    return absl::StrCat("$", params_.size());
  }
  const Params& params() const { return params_; }

 private:
  Params params_;
};

// " AND <column> IN ($a, $b, ...)" for a non-empty list.
void AppendIn(std::string* sql, absl::string_view column, const std::vector<std::string>& values,
              Args* args);
void AppendIn(std::string* sql, absl::string_view column, const std::vector<int64_t>& values,
              Args* args);

// The conditions (without "WHERE") selecting envelopes `e` of `state` that match `f`. The state
// is a literal (our own enum), so the partial indexes apply.
std::string FilterWhere(EnvelopeState state, const EnvelopeFilter& f, Args* args);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_FILTER_H_
