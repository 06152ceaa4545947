#include "server/store/pg/pg_filter.h"

#include "server/util/time_conversion.h"

namespace retryd::pg {

void AppendIn(std::string* sql, absl::string_view column, const std::vector<std::string>& values,
              Args* args) {
  if (values.empty()) return;
  absl::StrAppend(sql, " AND ", column, " IN (");
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(sql, i == 0 ? "" : ", ", args->Text(values[i]));
  }
  absl::StrAppend(sql, ")");
}

void AppendIn(std::string* sql, absl::string_view column, const std::vector<int64_t>& values,
              Args* args) {
  if (values.empty()) return;
  absl::StrAppend(sql, " AND ", column, " IN (");
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(sql, i == 0 ? "" : ", ", args->Int(values[i]));
  }
  absl::StrAppend(sql, ")");
}

namespace {

template <typename Enum>
std::vector<int64_t> EnumInts(const std::vector<Enum>& values) {
  std::vector<int64_t> out;
  for (Enum v : values) out.push_back(static_cast<int64_t>(v));
  return out;
}

}  // namespace

std::string FilterWhere(EnvelopeState state, const EnvelopeFilter& f, Args* args) {
  std::string sql = absl::StrCat("e.state = ", static_cast<int>(state));
  if (!f.service.empty()) absl::StrAppend(&sql, " AND e.service = ", args->Text(f.service));
  AppendIn(&sql, "e.error_code", f.error_codes, args);
  AppendIn(&sql, "e.last_class", EnumInts(f.error_classes), args);
  AppendIn(&sql, "e.dead_reason", EnumInts(f.reasons), args);
  AppendIn(&sql, "e.schema_version", f.schema_versions, args);
  AppendIn(&sql, "e.message_id", f.message_ids, args);
  AppendIn(&sql, "e.fingerprint", f.fingerprints, args);
  if (f.after != absl::InfinitePast()) {
    absl::StrAppend(&sql, " AND e.sort_at >= ", args->Int(ToStoredMicros(f.after)));
  }
  if (f.before != absl::InfiniteFuture()) {
    absl::StrAppend(&sql, " AND e.sort_at < ", args->Int(ToStoredMicros(f.before)));
  }
  return sql;
}

}  // namespace retryd::pg
