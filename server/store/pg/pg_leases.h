// Shared-mode leases: claims of due work and fenced lease checks, in the database, inside the
// caller's transaction. N replicas on one database lease, complete, extend and expire the same
// envelopes without ever leasing one to two workers at once:
//
//  - ClaimDue takes due scheduled rows of a service with FOR UPDATE SKIP LOCKED on the partial
//    index envelopes_due (state = scheduled): claimers on several replicas take disjoint rows
//    instead of queueing on the same ones, and future retries (sort_at > now) are never read.
//  - Every claim (ClaimDue, ClaimExpired) bumps the row's lease_generation; a token names the
//    generation it was issued under (pg_lease_token.h), so a token issued before the latest claim
//    is refused by LockLease, and every outcome or extension is written only after LockLease
//    (row lock + generation + secret check) in the same transaction, or by a single conditional
//    UPDATE (ExtendLease).
//  - "Due" and "expired" are judged by the database's transaction time (pg_db_time.h), never
//    by a replica's clock.
//
// Times are stored as unix microseconds (bigint), as PgStore stores them.
#ifndef RETRYD_SERVER_STORE_PG_PG_LEASES_H_
#define RETRYD_SERVER_STORE_PG_PG_LEASES_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/store/pg/pg_conn.h"

namespace retryd::pg {

struct ClaimedLease {
  int64_t id = 0;
  int64_t generation = 0;
  std::string token;
  absl::Time due_at;       // The next_retry_at it was claimed at (for dispatch lateness).
  absl::Time expires_at;   // Database time of the claim + visibility.
};

// Claims up to `max` envelopes of `service` due at the transaction's database time, oldest
// next_retry_at first, skipping rows other transactions hold: each becomes leased until
// db now + `visibility` under a new generation and secret.
absl::StatusOr<std::vector<ClaimedLease>> ClaimDue(Connection& conn, absl::string_view service,
                                                   int max, absl::Duration visibility);

// A lease a token names, locked (FOR UPDATE) until the caller's transaction ends.
struct LockedLease {
  int64_t id = 0;
  int64_t generation = 0;
  std::string service;
  absl::Time expires_at;
};

// Whether the caller may see a service (auth: a WORKER token limited to services); null: all.
using ServiceCheck = std::function<bool(const std::string& service)>;

// Locks the row `token` names and checks that it is leased under exactly this generation and
// secret and that its lease has not expired at database time. FAILED_PRECONDITION otherwise:
// LEASE_EXPIRED for a token the row has moved on from (a later generation, or a lease past its
// expiry not yet swept), LEASE_NOT_FOUND for anything else (malformed, unknown id, wrong secret,
// completed). A token whose secret does not match tells nothing about a service `may_see`
// refuses: LEASE_NOT_FOUND, as for an id that does not exist.
absl::StatusOr<LockedLease> LockLease(Connection& conn, absl::string_view token,
                                      const ServiceCheck& may_see = nullptr);

// Moves a live lease's expiry to db now + `visibility`, by one UPDATE conditional on the token's
// generation and secret and on the lease not having expired; answers the new expiry. The errors
// of LockLease otherwise.
absl::StatusOr<absl::Time> ExtendLease(Connection& conn, absl::string_view token,
                                       absl::Duration visibility,
                                       const ServiceCheck& may_see = nullptr);

// Ends a lease `token` holds, by one UPDATE conditional on it like ExtendLease: the row takes
// `state` and `sort_at` and forgets the secret. The errors of LockLease otherwise.
absl::Status FinishLease(Connection& conn, absl::string_view token, int state,
                         absl::Time sort_at, const ServiceCheck& may_see = nullptr);

// Forgets the secret of the lease on row `id` (locked by LockLease in the caller's transaction),
// once the caller wrote the row's outcome: the lease has ended, and nothing of it stays stored.
absl::Status ForgetLeaseSecret(Connection& conn, int64_t id);

// Takes, for the caller's transaction, the right to insert the envelope (`service`,
// `message_id`), without waiting: false when another transaction holds it (another replica is
// inserting the same envelope and has not committed yet). Inserts of one key then never wait on
// each other's unique-index entry, so two replicas' batches that insert the same envelopes in
// different orders cannot deadlock. A transaction asking again for a key it holds gets true.
absl::StatusOr<bool> TryLockEnvelopeKey(Connection& conn, absl::string_view service,
                                        absl::string_view message_id);

// An expired lease the sweep took back.
struct ExpiredLease {
  int64_t id = 0;
  std::string service;
  int attempt = 0;
};

// Takes up to `max` leases expired at the transaction's database time, oldest first, skipping
// rows other transactions hold (so sweeps on several replicas share the work): their generation
// is bumped at once, so the old tokens are refused from now on. The rows stay leased (expired)
// until the caller re-decides them in the same transaction.
absl::StatusOr<std::vector<ExpiredLease>> ClaimExpired(Connection& conn, int max);

}  // namespace retryd::pg

#endif  // RETRYD_SERVER_STORE_PG_PG_LEASES_H_
