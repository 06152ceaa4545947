// SqliteStore: selections of envelopes by state and EnvelopeFilter: listings (on a reader, or on
// the writer inside a batch), counts per service, dead-letter counts, failure groups and stats,
// and the deletion of the dead letters a filter selects.
#include "server/store/sqlite_store.h"

#include "absl/strings/str_cat.h"
#include "server/store/sqlite_filter.h"
#include "server/store/sqlite_rows.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {

absl::StatusOr<std::vector<ServiceCounts>> SqliteStore::CountByService() {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(
      "SELECT s.name, "
      " (SELECT count(*) FROM envelopes WHERE state = 1 AND service_id = s.id), "
      " (SELECT count(*) FROM envelopes WHERE state = 2 AND service_id = s.id), "
      " (SELECT count(*) FROM envelopes WHERE state = 3 AND service_id = s.id), "
      " (SELECT min(sort_at) FROM envelopes WHERE state = 3 AND service_id = s.id) "
      "FROM services s ORDER BY s.name"));
  std::vector<ServiceCounts> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    ServiceCounts c;
    c.service = s.ColumnText(0);
    c.scheduled = s.ColumnInt(1);
    c.leased = s.ColumnInt(2);
    c.dead = s.ColumnInt(3);
    if (!s.ColumnIsNull(4)) c.oldest_dead_lettered_at = FromStoredMicros(s.ColumnInt(4));
    out.push_back(std::move(c));
  }
  return out;
}

absl::StatusOr<ListPage> SqliteStore::List(const ListQuery& q) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  return ListOn(reader.db(), q);
}

absl::StatusOr<ListPage> SqliteStore::ListOn(sqlite::Database& db, const ListQuery& q) {
  SqlArgs args;
  std::string where = absl::StrCat("WHERE ", FilterWhere(q.state, q.filter, &args));
  if (q.after_time != absl::InfinitePast()) {
    // The range on sort_at lets SQLite seek in the index; the row value skips the rows of the
    // same time already shown.
    const std::string t = args.Int(ToStoredMicros(q.after_time));
    absl::StrAppend(&where, " AND e.sort_at >= ", t, " AND (e.sort_at, e.id) > (", t, ", ",
                    args.Int(q.after_id), ")");
  }
  absl::StrAppend(&where, " ORDER BY e.sort_at, e.id LIMIT ", args.Int(q.limit));
  const std::string from = absl::StrCat(
      " FROM envelopes e", IndexHint(q.state, q.filter), " JOIN services s ON s.id = e.service_id ");
  ASSIGN_OR_RETURN(sqlite::Statement s, db.Prepare(absl::StrCat(kSelectColumns, from, where)));
  args.BindAll(s);
  ListPage page;
  int64_t bytes = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    if (q.max_bytes > 0) {
      bytes += s.ColumnBytes(15);
      if (!page.envelopes.empty() && bytes > q.max_bytes) {
        page.budget_reached = true;
        break;
      }
    }
    ASSIGN_OR_RETURN(Envelope e, RowToEnvelope(s, /*with_payload=*/false));
    page.keys.push_back(ListKey{FromStoredMicros(s.ColumnInt(4)), e.id});
    page.envelopes.push_back(std::move(e));
  }
  return page;
}

absl::StatusOr<int64_t> SqliteStore::CountDeadLetters(const EnvelopeFilter& filter) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  SqlArgs args;
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
      "SELECT count(*) FROM envelopes e", IndexHint(EnvelopeState::kDeadLettered, filter),
      " WHERE ", FilterWhere(EnvelopeState::kDeadLettered, filter, &args))));
  args.BindAll(s);
  ASSIGN_OR_RETURN(bool has, s.Step());
  return has ? s.ColumnInt(0) : 0;
}

absl::StatusOr<std::vector<FailureGroupRow>> SqliteStore::ListFailureGroups(
    const GroupQuery& q) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  SqlArgs args;
  std::string sql = absl::StrCat(
      "SELECT e.fingerprint, count(*) AS n, min(e.sort_at), max(e.sort_at), max(e.id) "
      "FROM envelopes e INDEXED BY envelopes_dead_by_fingerprint WHERE ",
      FilterWhere(EnvelopeState::kDeadLettered, q.filter, &args), " GROUP BY e.fingerprint");
  if (q.after.has_value()) {
    const std::string n = args.Int(q.after->count);
    absl::StrAppend(&sql, " HAVING n < ", n, " OR (n = ", n, " AND e.fingerprint > ",
                    args.Text(q.after->fingerprint), ")");
  }
  absl::StrAppend(&sql, " ORDER BY n DESC, e.fingerprint LIMIT ", args.Int(q.limit));
  ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(sql));
  args.BindAll(s);
  std::vector<FailureGroupRow> groups;
  std::vector<int64_t> sample_ids;
  while (true) {
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (!has) break;
    FailureGroupRow g;
    g.fingerprint = s.ColumnText(0);
    g.count = s.ColumnInt(1);
    g.first_seen = FromStoredMicros(s.ColumnInt(2));
    g.last_seen = FromStoredMicros(s.ColumnInt(3));
    sample_ids.push_back(s.ColumnInt(4));
    groups.push_back(std::move(g));
  }
  ASSIGN_OR_RETURN(sqlite::Statement sample, reader->Prepare(SelectSql(false, "WHERE e.id = ?")));
  for (size_t i = 0; i < groups.size(); ++i) {
    sample.BindInt(1, sample_ids[i]);
    ASSIGN_OR_RETURN(std::optional<Envelope> e, ReadOne(sample, false));
    if (e.has_value()) groups[i].sample = std::move(*e);
  }
  return groups;
}

absl::StatusOr<DeadLetterStatsRow> SqliteStore::DeadLetterStats(absl::string_view service,
                                                                absl::Time since) {
  ASSIGN_OR_RETURN(ReaderPool::Reader reader, readers_->Acquire());
  EnvelopeFilter filter;
  filter.service = std::string(service);
  DeadLetterStatsRow out;
  {
    SqlArgs args;
    ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
        "SELECT s.name, c.dead_reason, c.n FROM (SELECT e.service_id, e.dead_reason, "
        "count(*) AS n FROM envelopes e INDEXED BY envelopes_dead_by_code WHERE ",
        FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
        " GROUP BY e.service_id, e.dead_reason) c JOIN services s ON s.id = c.service_id "
        "ORDER BY s.name, c.dead_reason")));
    args.BindAll(s);
    while (true) {
      ASSIGN_OR_RETURN(bool has, s.Step());
      if (!has) break;
      DeadLetterStatsRow::ReasonCount c;
      c.service = s.ColumnText(0);
      c.reason = static_cast<DeadLetterReason>(s.ColumnInt(1));
      c.count = s.ColumnInt(2);
      out.total += c.count;
      out.counts.push_back(std::move(c));
    }
  }
  {
    SqlArgs args;
    ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
        "SELECT e.error_code, count(*) AS n FROM envelopes e INDEXED BY envelopes_dead_by_code "
        "WHERE ",
        FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
        " GROUP BY e.error_code ORDER BY n DESC, e.error_code LIMIT 10")));
    args.BindAll(s);
    while (true) {
      ASSIGN_OR_RETURN(bool has, s.Step());
      if (!has) break;
      out.top_error_codes.emplace_back(s.ColumnText(0), s.ColumnInt(1));
    }
  }
  {
    SqlArgs args;
    const std::string where = FilterWhere(EnvelopeState::kDeadLettered, filter, &args);
    ASSIGN_OR_RETURN(sqlite::Statement s, reader->Prepare(absl::StrCat(
        "SELECT (SELECT min(e.sort_at) FROM envelopes e", IndexHint(EnvelopeState::kDeadLettered, filter),
        " WHERE ", where, "), (SELECT count(*) FROM envelopes e",
        IndexHint(EnvelopeState::kDeadLettered, filter), " WHERE ", where, " AND e.sort_at >= ",
        args.Int(ToStoredMicros(since)), ")")));
    args.BindAll(s);
    ASSIGN_OR_RETURN(bool has, s.Step());
    if (has && !s.ColumnIsNull(0)) out.oldest = FromStoredMicros(s.ColumnInt(0));
    if (has) out.since_count = s.ColumnInt(1);
  }
  return out;
}

absl::StatusOr<ListPage> SqliteStore::ListInTxn(const ListQuery& query) {
  return ListOn(*writer_, query);
}

absl::StatusOr<std::vector<std::pair<std::string, int64_t>>> SqliteStore::DeleteDeadLetters(
    const EnvelopeFilter& filter, int64_t limit) {
  SqlArgs args;
  std::string chosen = absl::StrCat(
      "SELECT e.id, e.service_id FROM envelopes e", IndexHint(EnvelopeState::kDeadLettered, filter),
      " WHERE ", FilterWhere(EnvelopeState::kDeadLettered, filter, &args),
      " ORDER BY e.sort_at, e.id");
  if (limit > 0) absl::StrAppend(&chosen, " LIMIT ", args.Int(limit));
  // Count first (per service, for the engine's counts), then delete the same rows: both run in
  // the writer's transaction, so nothing changes in between.
  ASSIGN_OR_RETURN(sqlite::Statement count, writer_->Prepare(absl::StrCat(
      "SELECT s.name, count(*) FROM (", chosen,
      ") c JOIN services s ON s.id = c.service_id GROUP BY s.name ORDER BY s.name")));
  args.BindAll(count);
  std::vector<std::pair<std::string, int64_t>> out;
  while (true) {
    ASSIGN_OR_RETURN(bool has, count.Step());
    if (!has) break;
    out.emplace_back(count.ColumnText(0), count.ColumnInt(1));
  }
  count.Reset();
  if (out.empty()) return out;
  ASSIGN_OR_RETURN(sqlite::Statement del, writer_->Prepare(absl::StrCat(
      "DELETE FROM envelopes WHERE id IN (SELECT id FROM (", chosen, "))")));
  args.BindAll(del);
  RETURN_IF_ERROR(del.Run());
  return out;
}

}  // namespace retryd
