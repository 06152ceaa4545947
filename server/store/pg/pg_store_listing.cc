// PgStore: selections of envelopes by state and EnvelopeFilter: listings (on a reader, or on the
// writer inside a batch), counts per service, dead-letter counts, failure groups and stats, and
// the deletion of the dead letters a filter selects. Text is ordered bytewise (COLLATE "C"), as
// SQLite orders it, whatever the database's collation.
#include "absl/strings/str_cat.h"
#include "server/store/pg/pg_filter.h"
#include "server/store/pg/pg_rows.h"
#include "server/store/pg/pg_store.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::vector<ServiceCounts>> PgStore::CountByService() {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
      "SELECT s.name, coalesce(c.scheduled, 0), coalesce(c.leased, 0), coalesce(c.dead, 0), "
      "c.oldest_dead FROM services s LEFT JOIN ("
      " SELECT service, count(*) FILTER (WHERE state = 1) AS scheduled,"
      " count(*) FILTER (WHERE state = 2) AS leased, count(*) FILTER (WHERE state = 3) AS dead,"
      " min(sort_at) FILTER (WHERE state = 3) AS oldest_dead"
      " FROM envelopes WHERE state IN (1, 2, 3) GROUP BY service) c ON c.service = s.name "
      "ORDER BY s.name COLLATE \"C\""));
  std::vector<ServiceCounts> out;
  for (int i = 0; i < r.rows(); ++i) {
    ServiceCounts c;
    c.service = r.Text(i, 0);
    c.scheduled = r.Int(i, 1);
    c.leased = r.Int(i, 2);
    c.dead = r.Int(i, 3);
    if (!r.IsNull(i, 4)) c.oldest_dead_lettered_at = FromStoredMicros(r.Int(i, 4));
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<ListPage> PgStore::List(const ListQuery& q) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  return ListOn(*reader, q);
}

absl::StatusOr<ListPage> PgStore::ListInTxn(const ListQuery& query) {
  return ListOn(*writer_, query);
}

absl::StatusOr<ListPage> PgStore::ListOn(pg::Connection& conn, const ListQuery& q) {
  pg::Args args;
  std::string where = absl::StrCat("WHERE ", pg::FilterWhere(q.state, q.filter, &args));
  if (q.after_time != absl::InfinitePast()) {
    absl::StrAppend(&where, " AND (e.sort_at, e.id) > (", args.Int(ToStoredMicros(q.after_time)),
                    "::bigint, ", args.Int(q.after_id), "::bigint)");
  }
  absl::StrAppend(&where, " ORDER BY e.sort_at, e.id LIMIT ", args.Int(q.limit));
  ASSIGN_OR_RETURN(pg::Result r, conn.Exec(pg::SelectEnvelopes(false, where), args.params()));
  ListPage page;
  int64_t bytes = 0;
  for (int i = 0; i < r.rows(); ++i) {
    if (q.max_bytes > 0) {
      bytes += r.Int(i, pg::kDetailsSizeColumn);
      if (!page.envelopes.empty() && bytes > q.max_bytes) {
        page.budget_reached = true;
        break;
      }
    }
    ASSIGN_OR_RETURN(Envelope e, pg::RowToEnvelope(r, i, /*with_payload=*/false));
    page.keys.push_back(ListKey{FromStoredMicros(r.Int(i, 4)), e.id});
    page.envelopes.push_back(std::move(e));
  }
  return page;
}

absl::StatusOr<int64_t> PgStore::CountDeadLetters(const EnvelopeFilter& filter) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  pg::Args args;
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
      absl::StrCat("SELECT count(*) FROM envelopes e WHERE ",
                   pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args)),
      args.params()));
  return r.Int(0, 0);
}

absl::StatusOr<std::vector<FailureGroupRow>> PgStore::ListFailureGroups(const GroupQuery& q) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  pg::Args args;
  std::string sql = absl::StrCat(
      "SELECT e.fingerprint, count(*) AS n, min(e.sort_at), max(e.sort_at), max(e.id) "
      "FROM envelopes e WHERE ",
      pg::FilterWhere(EnvelopeState::kDeadLettered, q.filter, &args), " GROUP BY e.fingerprint");
  if (q.after.has_value()) {
    const std::string n = args.Int(q.after->count);
    absl::StrAppend(&sql, " HAVING count(*) < ", n, " OR (count(*) = ", n,
                    " AND e.fingerprint COLLATE \"C\" > ", args.Text(q.after->fingerprint), ")");
  }
  absl::StrAppend(&sql, " ORDER BY n DESC, e.fingerprint COLLATE \"C\" LIMIT ", args.Int(q.limit));
  ASSIGN_OR_RETURN(pg::Result r, reader->Exec(sql, args.params()));
  std::vector<FailureGroupRow> groups;
  for (int i = 0; i < r.rows(); ++i) {
    FailureGroupRow g;
    g.fingerprint = r.Text(i, 0);
    g.count = r.Int(i, 1);
    g.first_seen = FromStoredMicros(r.Int(i, 2));
    g.last_seen = FromStoredMicros(r.Int(i, 3));
    ASSIGN_OR_RETURN(std::optional<Envelope> sample,
                     FindOne(*reader, "WHERE e.id = $1", pg::Params().Int(r.Int(i, 4)), false));
    if (sample.has_value()) g.sample = std::move(*sample);
    groups.push_back(std::move(g));
  }
  return groups;
}

absl::StatusOr<DeadLetterStatsRow> PgStore::DeadLetterStats(absl::string_view service,
                                                           absl::Time since) {
  ASSIGN_OR_RETURN(pg::Pool::Lease reader, readers_->Acquire());
  EnvelopeFilter filter;
  filter.service = std::string(service);
  DeadLetterStatsRow out;
  {
    pg::Args args;
    ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
        absl::StrCat("SELECT e.service, e.dead_reason, count(*) FROM envelopes e WHERE ",
                     pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
                     " GROUP BY e.service, e.dead_reason "
                     "ORDER BY e.service COLLATE \"C\", e.dead_reason"),
        args.params()));
    for (int i = 0; i < r.rows(); ++i) {
      DeadLetterStatsRow::ReasonCount c;
      c.service = r.Text(i, 0);
      c.reason = static_cast<DeadLetterReason>(r.Int(i, 1));
      c.count = r.Int(i, 2);
      out.total += c.count;
      out.counts.push_back(std::move(c));
    }
  }
  {
    pg::Args args;
    ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
        absl::StrCat("SELECT e.error_code, count(*) AS n FROM envelopes e WHERE ",
                     pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
                     " GROUP BY e.error_code ORDER BY n DESC, e.error_code COLLATE \"C\" LIMIT 10"),
        args.params()));
    for (int i = 0; i < r.rows(); ++i) out.top_error_codes.emplace_back(r.Text(i, 0), r.Int(i, 1));
  }
  {
    pg::Args args;
    const std::string where = pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args);
    ASSIGN_OR_RETURN(pg::Result r, reader->Exec(
        absl::StrCat("SELECT min(e.sort_at), count(*) FILTER (WHERE e.sort_at >= ",
                     args.Int(ToStoredMicros(since)), ") FROM envelopes e WHERE ", where),
        args.params()));
    if (r.rows() > 0 && !r.IsNull(0, 0)) out.oldest = FromStoredMicros(r.Int(0, 0));
    if (r.rows() > 0) out.since_count = r.Int(0, 1);
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> PgStore::DeleteDeadLetters(
    const EnvelopeFilter& filter, int64_t limit) {
  pg::Args args;
  std::string chosen = absl::StrCat(
      "SELECT e.id FROM envelopes e WHERE ",
      pg::FilterWhere(EnvelopeState::kDeadLettered, filter, &args), " ORDER BY e.sort_at, e.id");
  if (limit > 0) absl::StrAppend(&chosen, " LIMIT ", args.Int(limit));
  // One statement: the rows chosen are the rows deleted and counted.
  ASSIGN_OR_RETURN(pg::Result r, writer_->Exec(
      absl::StrCat("WITH deleted AS (DELETE FROM envelopes WHERE id IN (", chosen,
                   ") RETURNING service) SELECT service, count(*) FROM deleted "
                   "GROUP BY service ORDER BY service COLLATE \"C\""),
      args.params()));
  std::vector<std::pair<std::string, int64_t>> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.Text(i, 0), r.Int(i, 1));
  return out;
}

}  // namespace retryd
