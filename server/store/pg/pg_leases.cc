#include "server/store/pg/pg_leases.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "server/store/pg/pg_db_time.h"
#include "server/store/pg/pg_lease_token.h"
#include "server/util/status_macros.h"

namespace retryd::pg {

namespace {

constexpr int kScheduled = 1;
constexpr int kLeased = 2;

absl::Status LeaseExpired() {
  return absl::FailedPreconditionError(
      "lease_token: the lease expired (LEASE_EXPIRED); the envelope was decided again and will "
      "be leased anew");
}

absl::Status LeaseNotFound() {
  return absl::FailedPreconditionError(
      "lease_token: unknown lease (LEASE_NOT_FOUND): it was never issued, or was already "
      "completed");
}

// `sql` with NOW standing for the database time in micros.
std::string WithDbNow(absl::string_view sql) {
  return absl::StrReplaceAll(sql, {{"NOW", kDbNowMicros}});
}

// The condition on $1 (id), $2 (generation), $3 (secret) that a live lease held by the token
// meets.
constexpr char kHeldByToken[] =
    "id = $1 AND lease_generation = $2 AND state = 2 AND sort_at > NOW"
    " AND lease_secret_hash = sha256(convert_to($3, 'UTF8'))";

Params TokenParams(const LeaseTokenParts& t) {
  Params p;
  p.Int(t.id).Int(t.generation).Text(t.secret);
  return p;
}

}  // namespace

absl::StatusOr<std::vector<ClaimedLease>> ClaimDue(Connection& conn, absl::string_view service,
                                                   int max, absl::Duration visibility) {
  std::vector<ClaimedLease> out;
  if (max <= 0) return out;
  std::vector<std::string> secrets;
  secrets.reserve(max);
  for (int i = 0; i < max; ++i) {
    ASSIGN_OR_RETURN(std::string s, NewLeaseSecret());
    secrets.push_back(std::move(s));
  }
  // The window function numbers the locked rows in a CTE of its own (FOR UPDATE does not allow
  // one in the same SELECT), giving each row its own secret.
  static const std::string kSql = WithDbNow(
      "WITH due AS ("
      "  SELECT id, sort_at FROM envelopes"
      "   WHERE service = $1 AND state = 1 AND sort_at <= NOW"
      "   ORDER BY sort_at, id LIMIT $2 FOR UPDATE SKIP LOCKED),"
      " s AS (SELECT id, sort_at,"
      "         ($3::text[])[row_number() OVER (ORDER BY sort_at, id)] AS secret FROM due)"
      " UPDATE envelopes e SET state = 2, lease_generation = e.lease_generation + 1,"
      "   sort_at = NOW + $4::bigint, updated_at = NOW,"
      "   lease_secret_hash = sha256(convert_to(s.secret, 'UTF8'))"
      " FROM s WHERE e.id = s.id"
      " RETURNING e.id, e.lease_generation, s.secret, s.sort_at, e.sort_at");
  static_assert(kScheduled == 1 && kLeased == 2, "states as spelled in the SQL");
  Params p;
  p.Text(service).Int(max).Text(absl::StrCat("{", absl::StrJoin(secrets, ","), "}"))
      .Int(absl::ToInt64Microseconds(visibility));
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, p));
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    ClaimedLease c;
    c.id = r.Int(i, 0);
    c.generation = r.Int(i, 1);
    c.token = FormatLeaseToken(c.id, c.generation, r.Bytes(i, 2));
    c.due_at = absl::FromUnixMicros(r.Int(i, 3));
    c.expires_at = absl::FromUnixMicros(r.Int(i, 4));
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const ClaimedLease& a, const ClaimedLease& b) {
    return std::make_pair(a.due_at, a.id) < std::make_pair(b.due_at, b.id);
  });
  return out;
}

absl::StatusOr<LockedLease> LockLease(Connection& conn, absl::string_view token,
                                      const ServiceCheck& may_see) {
  const std::optional<LeaseTokenParts> t = ParseLeaseToken(token);
  if (!t.has_value()) return LeaseNotFound();
  static const std::string kSql = WithDbNow(
      "SELECT service, state, lease_generation, sort_at,"
      "       lease_secret_hash = sha256(convert_to($2, 'UTF8')), NOW"
      "  FROM envelopes WHERE id = $1 FOR UPDATE");
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, Params().Int(t->id).Text(t->secret)));
  if (r.rows() == 0) return LeaseNotFound();
  const int64_t generation = r.Int(0, 2);
  const bool secret_matches = t->generation == generation && r.Int(0, 4);
  if (!secret_matches && may_see && !may_see(r.Text(0, 0))) return LeaseNotFound();
  // A token from before the row's latest claim: its lease was taken back or completed.
  if (t->generation < generation) return LeaseExpired();
  if (!secret_matches) return LeaseNotFound();
  if (r.Int(0, 1) != kLeased) return LeaseNotFound();
  LockedLease out;
  out.id = t->id;
  out.generation = generation;
  out.service = r.Text(0, 0);
  out.expires_at = absl::FromUnixMicros(r.Int(0, 3));
  // Expired by the database's clock, not yet swept.
  if (r.Int(0, 3) <= r.Int(0, 5)) return LeaseExpired();
  return out;
}

absl::StatusOr<absl::Time> ExtendLease(Connection& conn, absl::string_view token,
                                       absl::Duration visibility, const ServiceCheck& may_see) {
  const std::optional<LeaseTokenParts> t = ParseLeaseToken(token);
  if (!t.has_value()) return LeaseNotFound();
  static const std::string kSql = WithDbNow(absl::StrCat(
      "UPDATE envelopes SET sort_at = NOW + $4::bigint WHERE ", kHeldByToken,
      " RETURNING sort_at"));
  Params p = TokenParams(*t);
  p.Int(absl::ToInt64Microseconds(visibility));
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, p));
  if (r.rows() == 1) return absl::FromUnixMicros(r.Int(0, 0));
  // Not held: LockLease says why.
  RETURN_IF_ERROR(LockLease(conn, token, may_see).status());
  return LeaseNotFound();
}

absl::Status FinishLease(Connection& conn, absl::string_view token, int state,
                         absl::Time sort_at, const ServiceCheck& may_see) {
  const std::optional<LeaseTokenParts> t = ParseLeaseToken(token);
  if (!t.has_value()) return LeaseNotFound();
  static const std::string kSql = WithDbNow(absl::StrCat(
      "UPDATE envelopes SET state = $4, sort_at = $5, lease_secret_hash = ''::bytea WHERE ",
      kHeldByToken));
  Params p = TokenParams(*t);
  p.Int(state).Int(absl::ToUnixMicros(sort_at));
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, p));
  if (r.affected() == 1) return absl::OkStatus();
  RETURN_IF_ERROR(LockLease(conn, token, may_see).status());
  return LeaseNotFound();
}

absl::Status ForgetLeaseSecret(Connection& conn, int64_t id) {
  return conn.Exec("UPDATE envelopes SET lease_secret_hash = ''::bytea WHERE id = $1",
                   Params().Int(id))
      .status();
}

absl::StatusOr<bool> TryLockEnvelopeKey(Connection& conn, absl::string_view service,
                                        absl::string_view message_id) {
  // A transaction-level advisory lock on a 64-bit hash of the key (the service's length first,
  // so that no two keys spell the same text). Two keys sharing a hash only make one of them
  // wait for a retry.
  ASSIGN_OR_RETURN(Result r,
                   conn.Exec("SELECT pg_try_advisory_xact_lock(hashtextextended("
                             "length($1)::text || ':' || $1 || $2, 0))",
                             Params().Text(service).Text(message_id)));
  return r.rows() == 1 && r.Int(0, 0) != 0;
}

absl::StatusOr<std::vector<ExpiredLease>> ClaimExpired(Connection& conn, int max) {
  static const std::string kSql = WithDbNow(
      "WITH expired AS ("
      "  SELECT id FROM envelopes WHERE state = 2 AND sort_at <= NOW"
      "   ORDER BY sort_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)"
      " UPDATE envelopes e SET lease_generation = e.lease_generation + 1,"
      "   lease_secret_hash = ''::bytea"
      " FROM expired WHERE e.id = expired.id"
      " RETURNING e.id, e.service, e.attempt");
  ASSIGN_OR_RETURN(Result r, conn.Exec(kSql, Params().Int(max)));
  std::vector<ExpiredLease> out;
  out.reserve(r.rows());
  for (int i = 0; i < r.rows(); ++i) {
    out.push_back(ExpiredLease{r.Int(i, 0), r.Text(i, 1), static_cast<int>(r.Int(i, 2))});
  }
  return out;
}

}  // namespace retryd::pg
