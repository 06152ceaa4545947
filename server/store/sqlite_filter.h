// SQL built at run time from an EnvelopeFilter: the WHERE conditions, the index hint, and the
// positional parameters that carry every caller-supplied value. Used only inside server/store.
#ifndef RETRYD_SERVER_STORE_SQLITE_FILTER_H_
#define RETRYD_SERVER_STORE_SQLITE_FILTER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/core/envelope.h"
#include "server/store/sqlite_db.h"
#include "server/store/store.h"

namespace retryd {

// Positional parameters of a statement built at run time: every value a caller supplies is bound,
// never spliced into the SQL text.
class SqlArgs {
 public:
  // Returns the placeholder ("?N") of a new parameter.
  std::string Int(int64_t v) {
    values_.emplace_back(v);
    return absl::StrCat("?", values_.size());
  }
  std::string Text(std::string v) {
    values_.emplace_back(std::move(v));
    return absl::StrCat("?", values_.size());
  }
  void BindAll(sqlite::Statement& s) const {
    for (size_t i = 0; i < values_.size(); ++i) {
      if (const int64_t* v = std::get_if<int64_t>(&values_[i])) {
        s.BindInt(static_cast<int>(i + 1), *v);
      } else {
        s.BindText(static_cast<int>(i + 1), std::get<std::string>(values_[i]));
      }
    }
  }

 private:
  std::vector<std::variant<int64_t, std::string>> values_;
};

// The values of a list of enumerators, as bound to their integer columns.
template <typename Enum>
std::vector<int64_t> EnumInts(const std::vector<Enum>& values) {
  std::vector<int64_t> out;
  for (Enum v : values) out.push_back(static_cast<int64_t>(v));
  return out;
}

// " AND <column> IN (?a, ?b, ...)" for a non-empty list.
void AppendIn(std::string* sql, absl::string_view column, const std::vector<std::string>& values,
              SqlArgs* args);
void AppendIn(std::string* sql, absl::string_view column, const std::vector<int64_t>& values,
              SqlArgs* args);

// The WHERE conditions (without "WHERE") selecting envelopes of `state` that match `f`. The state
// is written as a literal (it is our own enum, not input) so SQLite can use the partial indexes
// on dead letters; every filter value is a bound parameter.
std::string FilterWhere(EnvelopeState state, const EnvelopeFilter& f, SqlArgs* args);

// An INDEXED BY clause for a selection of envelopes of `state` matching `f`, where the planner,
// which has no statistics, is known to choose badly: without a service (whose index
// (state, service_id, sort_at) serves it well), dead letters are read in time order from the
// partial by_time index instead of sorting the whole table for every page.
std::string IndexHint(EnvelopeState state, const EnvelopeFilter& f);

}  // namespace retryd

#endif  // RETRYD_SERVER_STORE_SQLITE_FILTER_H_
