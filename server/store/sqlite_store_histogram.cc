// SqliteStore: the dead-letter histogram (dead letters per service and time bucket), counted by
// SQLite on a reader.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_filter.h"
#include "server/store/sqlite_store.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::vector<HistogramCell>> SqliteStore::DeadLetterHistogram(
    absl::string_view service, absl::Time since, absl::Time until, absl::Duration width) {
  if (width <= absl::ZeroDuration() || since == absl::InfinitePast() || until <= since) {
    return absl::InvalidArgumentError("DeadLetterHistogram: needs since < until and width > 0");
  }
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  // A dead letter's sort_at is its dead_lettered_at. The range is read from an index that holds
  // (sort_at, service_id, state) of dead letters: envelopes_dead_histogram across services (the
  // hint), envelopes_by_state (state, service_id, sort_at) for one service; both cover the query,
  // so no envelope row is read.
  EnvelopeFilter filter;
  filter.service = std::string(service);
  filter.after = since;
  filter.before = until;
  SqlArgs args;
  const std::string since_us = args.Int(ToStoredMicros(since));
  const std::string width_us = args.Int(absl::ToInt64Microseconds(width));
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
      "SELECT s.name, c.bucket, c.n FROM (SELECT e.service_id, (e.sort_at - ", since_us, ") / ",
      width_us, " AS bucket, count(*) AS n FROM envelopes e",
      service.empty() ? " INDEXED BY envelopes_dead_histogram " : "", " WHERE ",
      FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
      " GROUP BY e.service_id, bucket) c JOIN services s ON s.id = c.service_id "
      "ORDER BY s.name, c.bucket")));
  args.BindAll(s);
  std::vector<HistogramCell> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    HistogramCell cell;
    cell.service = s.ColumnText(0);
    cell.bucket = s.ColumnInt(1);
    cell.count = s.ColumnInt(2);
    out.push_back(std::move(cell));
  }
  return out;
}

}  // namespace retryd
