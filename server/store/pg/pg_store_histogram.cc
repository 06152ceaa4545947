// PgStore: the dead-letter histogram (dead letters per service and time bucket), counted by
// PostgreSQL on a reader.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_filter.h"
#include "server/store/pg/pg_store.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::vector<HistogramCell>> PgStore::DeadLetterHistogram(
    absl::string_view service, absl::Time since, absl::Time until, absl::Duration width) {
  if (width <= absl::ZeroDuration() || since == absl::InfinitePast() || until <= since) {
    return absl::InvalidArgumentError("DeadLetterHistogram: needs since < until and width > 0");
  }
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  // A dead letter's sort_at is its dead_lettered_at. Across services the range is read from
  // envelopes_dead_histogram (sort_at, service) of dead letters (schema 4), for one service from
  // envelopes_by_state (state, service, sort_at, id): both hold every column the query reads.
  EnvelopeFilter filter;
  filter.service = std::string(service);
  filter.after = since;
  filter.before = until;
  pg::Args args;
  const std::string since_us = args.Int(ToStoredMicros(since));
  const std::string width_us = args.Int(absl::ToInt64Microseconds(width));
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
      absl::StrCat("SELECT e.service, (e.sort_at - ", since_us, ") / ", width_us,
                   " AS bucket, count(*) FROM envelopes e WHERE ",
                   pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
                   " GROUP BY e.service, bucket ORDER BY e.service COLLATE \"C\", bucket"),
      args.params()));
  std::vector<HistogramCell> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    HistogramCell cell;
    cell.service = r.Text(i, 0);
    cell.bucket = r.Int(i, 1);
    cell.count = r.Int(i, 2);
    out.push_back(std::move(cell));
  }
  return out;
}

}  // namespace retryd
