#include "server/store/sqlite_filter.h"

#include "absl/strings/str_cat.h"
#include "server/util/time_conversion.h"

namespace retryd {

void AppendIn(std::string* sql, absl::string_view column, const std::vector<std::string>& values,
              SqlArgs* args) {
  if (values.empty()) return;
  absl::StrAppend(sql, " AND ", column, " IN (");
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(sql, i == 0 ? "" : ", ", args->Text(values[i]));
  }
  absl::StrAppend(sql, ")");
}
void AppendIn(std::string* sql, absl::string_view column, const std::vector<int64_t>& values,
              SqlArgs* args) {
  if (values.empty()) return;
  absl::StrAppend(sql, " AND ", column, " IN (");
  for (size_t i = 0; i < values.size(); ++i) {
    absl::StrAppend(sql, i == 0 ? "" : ", ", args->Int(values[i]));
  }
  absl::StrAppend(sql, ")");
}

namespace {

// The message-id filter. Besides the condition itself, the rows are named by id: the merged keys
// from envelope_keys (one primary-key lookup per service and message id), the newer ones from
// the rows above the watermark; with IndexHint's NOT INDEXED the envelopes are then read by
// rowid only, instead of every row of the state and service being read to compare its id.
void AppendMessageIds(std::string* sql, const EnvelopeFilter& f, SqlArgs* args) {
  if (f.message_ids.empty()) return;
  std::string ids;
  for (size_t i = 0; i < f.message_ids.size(); ++i) {
    absl::StrAppend(&ids, i == 0 ? "" : ", ", args->Text(f.message_ids[i]));
  }
  const std::string services =
      f.service.empty() ? "SELECT id FROM services"
                        : absl::StrCat("SELECT id FROM services WHERE name = ",
                                       args->Text(f.service));
  absl::StrAppend(sql, " AND e.message_id IN (", ids, ") AND e.id IN (",
                  "SELECT k.id FROM envelope_keys k WHERE k.service_id IN (", services,
                  ") AND k.message_id IN (", ids, ") UNION ALL ",
                  "SELECT r.id FROM envelopes r WHERE r.id > (SELECT merged_through FROM key_merge)",
                  " AND r.message_id IN (", ids, "))");
}

}  // namespace

std::string FilterWhere(EnvelopeState state, const EnvelopeFilter& f, SqlArgs* args) {
  std::string sql = absl::StrCat("e.state = ", static_cast<int>(state));
  if (!f.service.empty()) {
    absl::StrAppend(&sql, " AND e.service_id = (SELECT id FROM services WHERE name = ",
                    args->Text(f.service), ")");
  }
  AppendIn(&sql, "e.error_code", f.error_codes, args);
  AppendIn(&sql, "e.last_class", EnumInts(f.error_classes), args);
  AppendIn(&sql, "e.dead_reason", EnumInts(f.reasons), args);
  AppendIn(&sql, "e.schema_version", f.schema_versions, args);
  AppendMessageIds(&sql, f, args);
  AppendIn(&sql, "e.fingerprint", f.fingerprints, args);
  if (f.after != absl::InfinitePast()) {
    absl::StrAppend(&sql, " AND e.sort_at >= ", args->Int(ToStoredMicros(f.after)));
  }
  if (f.before != absl::InfiniteFuture()) {
    absl::StrAppend(&sql, " AND e.sort_at < ", args->Int(ToStoredMicros(f.before)));
  }
  return sql;
}

std::string IndexHint(EnvelopeState state, const EnvelopeFilter& f) {
  if (!f.message_ids.empty()) return " NOT INDEXED ";  // Read by rowid: see AppendMessageIds.
  if (state != EnvelopeState::kDeadLettered || !f.service.empty() || !f.fingerprints.empty()) {
    return "";
  }
  return " INDEXED BY envelopes_dead_by_time ";
}

}  // namespace retryd
