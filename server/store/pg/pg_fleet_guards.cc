#include "server/store/pg/pg_fleet_guards.h"

#include <unistd.h>

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/store/pg/pg_guard_rows.h"
#include "server/util/log.h"
#include "server/util/secure_random.h"
#include "server/util/status_macros.h"

namespace retryd::pg {
namespace {

// Save's writes lose only to another replica's first insert of a row; one more round then finds
// the row and locks it.
constexpr int kMaxSaveRounds = 4;
// How long Save tries, without waiting in a lock, for a row that sorts before a row this batch
// locked out of name order (a claim): 50 tries 2 ms apart.
constexpr int kPolls = 50;
constexpr absl::Duration kPollInterval = absl::Milliseconds(2);

}  // namespace

FleetGuardSync::FleetGuardSync(std::function<Connection&()> conn, const PolicySet& policies,
                               std::string replica)
    : conn_(std::move(conn)), policies_(policies), replica_(std::move(replica)) {}

absl::StatusOr<std::string> FleetGuardSync::NewReplicaId() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  ASSIGN_OR_RETURN(std::string nonce, SecureRandomHex(4));
  return absl::StrCat(host, ":", getpid(), ":", nonce);
}

void FleetGuardSync::Take(ServiceGuards& guards, const CircuitRecord& record, int64_t version) {
  versions_[record.service] = version;
  ++stats_.refreshes;
  if (version == 0) return;
  if (absl::Status s = guards.LoadShared(record); !s.ok()) {
    // The record is taken over; windows that cannot be decoded start empty.
    LogEvent(LogLevel::kWarn, "guard_row_windows_damaged")
        .Str("service", record.service)
        .Str("error", s.message());
  }
}

absl::Status FleetGuardSync::Refresh(ServiceGuards& guards, const std::string& service,
                                     absl::Time /*now*/) {
  guards_ = &guards;
  if (versions_.contains(service)) return absl::OkStatus();
  ASSIGN_OR_RETURN(GuardRow row, LoadGuardRow(conn_(), service));
  Take(guards, row.record, row.version);
  return absl::OkStatus();
}

absl::Status FleetGuardSync::RefreshAll(ServiceGuards& guards, absl::Time /*now*/) {
  guards_ = &guards;
  ASSIGN_OR_RETURN(std::vector<GuardRow> rows, LoadGuardRows(conn_()));
  for (const GuardRow& row : rows) {
    if (!versions_.contains(row.record.service)) Take(guards, row.record, row.version);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> FleetGuardSync::Claim(ServiceGuards& guards, const std::string& service,
                                           absl::Time now) {
  RETURN_IF_ERROR(Refresh(guards, service, now));
  ASSIGN_OR_RETURN(bool won, ClaimLocked(guards, service, now));
  if (won) {
    ++stats_.claims_won;
  } else {
    // Whatever the guards say now, this replica takes no trial of the service in this batch:
    // the caller, deciding again, finds an allowance of 0 (or the state the row moved on to).
    guards.BarTrials(service);
  }
  return won;
}

absl::StatusOr<bool> FleetGuardSync::ClaimLocked(ServiceGuards& guards,
                                                 const std::string& service, absl::Time now) {
  // Never wait here: the batch may already hold rows a waiting replica holds others of
  // (Save waits, in name order, and only there).
  ASSIGN_OR_RETURN(std::optional<int64_t> locked, TryLockGuardRow(conn_(), service));
  if (locked.has_value()) locked_.insert(service);
  if (!locked.has_value()) {
    // Another transaction holds the row (or there is none yet: a circuit that opened in a batch
    // not yet committed). The transition is written at Save; a later batch claims it.
    ++stats_.claims_busy;
    return false;
  }
  // Locked: the row stays as it is until this batch ends.
  ASSIGN_OR_RETURN(GuardRow row, LoadGuardRow(conn_(), service));
  if (row.version != versions_[service]) Take(guards, row.record, row.version);
  if (!guards.MayClaimTrials(service, now)) {  // Not HALF_OPEN, or another replica holds it.
    ++stats_.claims_lost;
    return false;
  }
  // The claim alone goes to the row now (the transition and the holder); the batch's other
  // changes go with Save, made again on the row as it then is.
  ServiceGuards scratch(&policies_, now);
  (void)scratch.RestoreCircuit(row.record);  // Damaged windows start empty (logged by Take).
  GuardEvent advance;
  advance.kind = GuardEvent::Kind::kAdvance;
  advance.at = now;
  GuardEvent hold;
  hold.kind = GuardEvent::Kind::kTrialHolder;
  hold.at = now;
  hold.text = replica_;
  scratch.Replay(service, now, {advance, hold});
  if (scratch.TrialHolder(service) != replica_) {
    ++stats_.claims_lost;  // Made in memory by what the row does not hold yet (e.g. an override).
    return false;
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> written,
                   CasGuardRow(conn_(), scratch.Record(service), row.version));
  if (!written.has_value()) {
    return absl::InternalError(absl::StrCat("guard row of ", service, " moved while locked"));
  }
  versions_[service] = *written;
  guards.SetTrialHolder(service, now, replica_);
  return true;
}

absl::StatusOr<bool> FleetGuardSync::LockWithoutWaiting(const std::string& service) {
  for (int i = 0; i < kPolls; ++i) {
    if (i > 0) absl::SleepFor(kPollInterval);
    ASSIGN_OR_RETURN(std::optional<int64_t> locked, TryLockGuardRow(conn_(), service));
    if (locked.has_value()) return true;
    // No committed row: another replica's first insert may be pending, and an insert would wait
    // for it. Left to the next batch.
    ASSIGN_OR_RETURN(GuardRow row, LoadGuardRow(conn_(), service));
    if (row.version == 0) return false;
  }
  return false;
}

absl::Status FleetGuardSync::Save(ServiceGuards& guards, absl::Time now) {
  guards_ = &guards;
  // Name order: two replicas lock the rows they share in the same order, so neither waits for
  // a row the other holds while holding one it waits for. Rows this batch locked earlier (its
  // claims) break the order: a row sorting before one of them is not waited for (another
  // replica may hold it and wait for the claimed one); when it stays locked, its changes stay
  // in the journal and go with this replica's next batch.
  const std::string highest_locked = locked_.empty() ? std::string() : *locked_.rbegin();
  for (const std::string& service : guards.Journaled()) {
    if (!locked_.empty() && service < highest_locked && locked_.count(service) == 0) {
      ASSIGN_OR_RETURN(bool locked, LockWithoutWaiting(service));
      if (!locked) {
        ++stats_.carried;
        LogEvent(LogLevel::kInfo, "guard_row_carried_over")
            .Str("service", service)
            .Str("claimed", highest_locked);
        continue;
      }
    }
    bool saved = false;
    for (int round = 1; round <= kMaxSaveRounds && !saved; ++round) {
      ASSIGN_OR_RETURN(GuardRow row, LockGuardRow(conn_(), service));
      ServiceGuards scratch(&policies_, now);
      if (row.version != 0) (void)scratch.RestoreCircuit(row.record);
      scratch.Replay(service, now, guards.Journal(service));
      CircuitRecord record = scratch.Record(service);
      ASSIGN_OR_RETURN(std::optional<int64_t> written, CasGuardRow(conn_(), record, row.version));
      if (!written.has_value()) continue;  // Another replica inserted the row first.
      auto known = versions_.find(service);
      if (known == versions_.end() || known->second != row.version) {
        ++stats_.save_races;
        LogEvent(LogLevel::kDebug, "guard_row_merged")
            .Str("service", service)
            .Int("rounds", round)
            .Int("version", *written);
      }
      versions_[service] = *written;
      ++stats_.saves;
      if (absl::Status s = guards.LoadSaved(record); !s.ok()) return s;
      saved = true;
    }
    if (!saved) {
      return absl::InternalError(absl::StrCat("guard row of ", service, " not written after ",
                                              kMaxSaveRounds, " rounds"));
    }
  }
  return absl::OkStatus();
}

void FleetGuardSync::EndBatch() {
  if (guards_ != nullptr) guards_->EndBatch();
  guards_ = nullptr;
  versions_.clear();
  locked_.clear();
}

}  // namespace retryd::pg
