#include "server/store/pg/shared_scheduler.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/core/failure_decision.h"
#include "server/store/pg/pg_db_time.h"
#include "server/store/store.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"

namespace retryd {
namespace {

absl::Status LeaseMismatch() {
  return absl::FailedPreconditionError(absl::StrCat(
      "lease_token: the lease is for another envelope (LEASE_MISMATCH): envelope.service "
      "and envelope.message_id must name the leased envelope"));
}

absl::Status OtherServiceLease() {
  return absl::FailedPreconditionError(
      "lease_token: the lease belongs to another service (LEASE_MISMATCH)");
}

// The state a lease given back by the byte cap returns to (pg_leases.h spells states as ints).
constexpr int kScheduledState = static_cast<int>(EnvelopeState::kScheduled);

// A first failure of an envelope another replica is recording at this moment: nothing was
// changed here; a retry is answered as a duplicate once the other replica committed.
absl::Status RecordedElsewhere(const Envelope& e) {
  return absl::UnavailableError(absl::StrCat(
      "envelope: ", e.service, "/", e.message_id,
      " is being recorded by another replica at this moment; nothing was changed, retry"));
}

}  // namespace

SharedScheduler::SharedScheduler(const SchedulerContext& ctx, PgStore* store,
                                 GuardSync* guard_sync, SharedSchedulerOptions options)
    : ctx_(ctx),
      store_(store),
      guard_sync_(guard_sync),
      options_(std::move(options)),
      guards_(ctx.policies, ctx.started_at) {
  // Fleet-wide guards replay this replica's changes on the shared rows: they need the journal.
  if (guard_sync_ != nullptr) guards_.EnableJournal(options_.replica);
}

SharedScheduler::~SharedScheduler() {
  // The listener's thread calls into this object: it stops before anything else goes.
  listener_.reset();
}

// ---- Start-up ----

absl::Status SharedScheduler::Restore(Store& store, absl::Time now) {
  ASSIGN_OR_RETURN(std::vector<CircuitRecord> circuits, store.LoadCircuits());
  for (const CircuitRecord& c : circuits) {
    const absl::Status restored = guards_.RestoreCircuit(c);
    if (!restored.ok()) {
      LogEvent(LogLevel::kError, "guard_state_unreadable")
          .Str("service", c.service)
          .Str("error", restored.ToString());
    }
  }
  ASSIGN_OR_RETURN(std::vector<ServiceCounts> counts, store.CountByService());
  for (const ServiceCounts& c : counts) {
    counts_[c.service] = ServiceStats{c.scheduled, c.leased, c.dead};
    changed_counts_.insert(c.service);
  }
  next_counts_refresh_ = absl::Now() + options_.counts_refresh;
  next_sweep_ = now;  // Leases may have expired while no replica ran.
  if (options_.dsn.empty() || listener_ != nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(notifier_, pg::DueNotifier::Start(options_.dsn, options_.notify_interval));
  ASSIGN_OR_RETURN(listener_, pg::DueListener::Start(options_.dsn, [this](const std::string& s) {
                     OnDueSignal(s);
                   }));
  return absl::OkStatus();
}

// ---- The batch ----

absl::StatusOr<absl::Time> SharedScheduler::BeginBatch(absl::Time local_now) {
  batch_local_now_ = local_now;
  swept_ = false;
  expired_.clear();
  ASSIGN_OR_RETURN(batch_now_, pg::DbNow(conn()));
  return batch_now_;
}

absl::Status SharedScheduler::SaveGuards(absl::Time now) {
  if (guard_sync_ != nullptr) return guard_sync_->Save(guards_, now);
  // This replica's own guards: one row each, as LocalScheduler stores them.
  for (const std::string& service : guards_.TakeChanged()) {
    RETURN_IF_ERROR(store_->SaveCircuit(guards_.Record(service)));
  }
  return absl::OkStatus();
}

void SharedScheduler::EndBatch() {
  if (guard_sync_ != nullptr) guard_sync_->EndBatch();
  // After the commit: other replicas' parked polls may now claim what this batch made due.
  if (notifier_ != nullptr) {
    for (const std::string& service : made_due_) notifier_->Signal(service);
  }
  made_due_.clear();
  expired_.clear();
}

// ---- Guards ----

absl::Status SharedScheduler::RefreshGuards(const std::string& service, absl::Time now) {
  if (guard_sync_ == nullptr) return absl::OkStatus();
  return guard_sync_->Refresh(guards_, service, now);
}

absl::Status SharedScheduler::RefreshAllGuards(absl::Time now) {
  if (guard_sync_ == nullptr) return absl::OkStatus();
  return guard_sync_->RefreshAll(guards_, now);
}

absl::StatusOr<bool> SharedScheduler::ClaimTransition(const std::string& service,
                                                      absl::Time now) {
  if (guard_sync_ == nullptr) return true;
  return guard_sync_->Claim(guards_, service, now);
}

absl::Status SharedScheduler::AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) {
  std::vector<std::string> advanced;
  guards_.AdvanceAll(now, &advanced);
  for (const std::string& service : advanced) {
    // A transition another replica made first is its own to report.
    ASSIGN_OR_RETURN(const bool won, ClaimTransition(service, now));
    if (won) changed->push_back(service);
  }
  return absl::OkStatus();
}

// ---- Transitions ----

absl::StatusOr<FailureOutcome> SharedScheduler::FirstFailure(Envelope e, Failure failure,
                                                             absl::Time now) {
  // Decide as if new and insert; the insert itself tells a duplicate.
  if (e.first_seen_at == absl::InfinitePast()) e.first_seen_at = now;
  e.created_at = now;
  // Another replica inserting the same envelope right now (a client's retry that reached it)
  // is not waited for: waiting on its uncommitted row could deadlock two batches.
  ASSIGN_OR_RETURN(const bool mine, pg::TryLockEnvelopeKey(conn(), e.service, e.message_id));
  if (!mine) return RecordedElsewhere(e);
  ASSIGN_OR_RETURN(const Decision decision, Decide(e, std::max(e.attempt, 1), failure, now));
  const absl::Status inserted = ctx_.store->Insert(&e);
  if (absl::IsAlreadyExists(inserted)) {
    return AnswerDuplicate(*ctx_.store, guards_, e, std::move(failure), inserted);
  }
  if (!inserted.ok()) return inserted;  // The op's guard changes are undone with it.
  guards_.RecordFirstFailure(e.service, now);
  if (guards_.OnFailure(e.service, now, decision.error_class, /*envelope_id=*/0)) {
    ctx_.circuit_changed(e.service);
  }
  Place(e, now);
  return FailureOutcome{std::move(e), std::move(failure), decision, false};
}

absl::StatusOr<FailureOutcome> SharedScheduler::LeasedFailure(const std::string& token,
                                                              const std::string& service,
                                                              const std::string& message_id,
                                                              Failure failure, absl::Time now) {
  ASSIGN_OR_RETURN(const pg::LockedLease lease,
                   pg::LockLease(conn(), token, [&service](const std::string& s) {
                     return s == service;
                   }));
  ASSIGN_OR_RETURN(Envelope e, LoadLocked(lease.id));
  if (e.service != service || (!message_id.empty() && e.message_id != message_id)) {
    return LeaseMismatch();
  }
  ASSIGN_OR_RETURN(const Decision decision, Decide(e, e.attempt + 1, failure, now));
  RETURN_IF_ERROR(ctx_.store->Update(e));
  RETURN_IF_ERROR(pg::ForgetLeaseSecret(conn(), e.id));
  OnLeasedOutcome(e.service, e.id, /*success=*/false, decision.error_class, now);
  Counts(e.service).leased--;
  Place(e, now);
  return FailureOutcome{std::move(e), std::move(failure), decision, false};
}

absl::StatusOr<LeaseGrant> SharedScheduler::Lease(const std::string& service, int max_messages,
                                                  absl::Duration visibility, absl::Time now) {
  RETURN_IF_ERROR(RefreshGuards(service, now));
  // The circuit caps the count: nothing while OPEN, the trials left while HALF_OPEN; a
  // transition to HALF_OPEN counts only when this replica made it fleet-wide.
  bool circuit_changed = false;
  int64_t allowance = guards_.LeaseAllowance(service, now, &circuit_changed);
  if (circuit_changed) {
    ctx_.circuit_changed(service);
    ASSIGN_OR_RETURN(const bool won, ClaimTransition(service, now));
    if (!won) allowance = 0;
  }
  const int max_items = static_cast<int>(std::min<int64_t>(max_messages, allowance));
  ASSIGN_OR_RETURN(std::vector<pg::ClaimedLease> claims,
                   pg::ClaimDue(conn(), service, max_items, visibility));
  LeaseGrant grant;
  int64_t bytes = 0;
  bool capped = false;
  for (size_t i = 0; i < claims.size(); ++i) {
    const pg::ClaimedLease& claim = claims[i];
    absl::StatusOr<std::optional<Envelope>> found = ctx_.store->FindById(claim.id, true);
    if (!found.ok()) return found.status();
    if (!found->has_value()) {
      return absl::InternalError(absl::StrCat("claimed envelope row ", claim.id, " vanished"));
    }
    Envelope& e = **found;
    const int64_t size = LeasedWireSize(e);
    if (!grant.items.empty() && bytes + size > ctx_.max_lease_response_bytes) {
      RETURN_IF_ERROR(GiveBack(claims, i));
      capped = true;
      break;
    }
    bytes += size;
    e.lease_token = claim.token;
    e.lease_expires_at = claim.expires_at;
    e.updated_at = now;
    grant.lateness.push_back(now - claim.due_at);
    grant.items.push_back(LeasedItem{std::move(e), claim.token, claim.expires_at});
  }
  const bool filled = capped || static_cast<int>(claims.size()) >= max_items;
  ASSIGN_OR_RETURN(const bool drained, Drained(service, filled, allowance, now));
  std::vector<int64_t> ids;
  for (const LeasedItem& item : grant.items) ids.push_back(item.envelope.id);
  if (guards_.OnLeased(service, now, ids, drained)) ctx_.circuit_changed(service);
  if (!grant.items.empty()) {
    ServiceStats& counts = Counts(service);
    counts.scheduled -= static_cast<int64_t>(grant.items.size());
    counts.leased += static_cast<int64_t>(grant.items.size());
  }
  return grant;
}

absl::StatusOr<Envelope> SharedScheduler::Succeed(const std::string& service,
                                                  const std::string& token, absl::Time now) {
  ASSIGN_OR_RETURN(const pg::LockedLease lease,
                   pg::LockLease(conn(), token, [&service](const std::string& s) {
                     return s == service;
                   }));
  ASSIGN_OR_RETURN(Envelope e, LoadLocked(lease.id));
  if (e.service != service) return OtherServiceLease();
  RETURN_IF_ERROR(RefreshGuards(service, now));
  e.state = EnvelopeState::kSucceeded;
  e.completed_at = now;
  e.updated_at = now;
  e.lease_token.clear();
  RETURN_IF_ERROR(ctx_.store->UpdateDroppingPayload(e));
  RETURN_IF_ERROR(pg::ForgetLeaseSecret(conn(), e.id));
  OnLeasedOutcome(e.service, e.id, /*success=*/true, ErrorClass::kUnspecified, now);
  Counts(e.service).leased--;
  return e;
}

absl::StatusOr<absl::Time> SharedScheduler::Extend(const std::string& token,
                                                   absl::Duration visibility,
                                                   const ServiceCheck& may_act_for,
                                                   absl::Time /*now*/) {
  // The new expiry is the database's now + visibility (pg::ExtendLease), the batch's time.
  // Locked first, so that a token of a service the caller may not act for is refused before
  // anything is written.
  ASSIGN_OR_RETURN(const pg::LockedLease lease, pg::LockLease(conn(), token, may_act_for));
  if (may_act_for && !may_act_for(lease.service)) {
    return absl::PermissionDeniedError(
        "lease_token: the lease belongs to a service this token may not act for "
        "(SERVICE_NOT_ALLOWED)");
  }
  return pg::ExtendLease(conn(), token, visibility, may_act_for);
}

// ---- Lease expiry ----

absl::StatusOr<std::optional<int64_t>> SharedScheduler::NextExpired(absl::Time /*now*/, int max) {
  // The sweep's timing is this replica's clock (as WorkDue's, which runs batches for it); what
  // has expired is the database's to say.
  if (!swept_ && batch_local_now_ >= next_sweep_) {
    swept_ = true;
    ASSIGN_OR_RETURN(std::vector<pg::ExpiredLease> expired, pg::ClaimExpired(conn(), max));
    for (const pg::ExpiredLease& e : expired) expired_.push_back(e.id);
    // A full sweep may have left more: the next batch sweeps again at once.
    const bool full = static_cast<int>(expired.size()) >= max;
    next_sweep_ = batch_local_now_ + (full ? absl::ZeroDuration() : options_.sweep_interval);
  }
  if (expired_.empty()) return std::nullopt;
  const int64_t id = expired_.front();
  expired_.pop_front();
  return id;
}

absl::StatusOr<std::optional<FailureOutcome>> SharedScheduler::ExpireLease(int64_t id,
                                                                           absl::Time now) {
  ASSIGN_OR_RETURN(std::optional<Envelope> found, ctx_.store->FindById(id, false));
  if (!found.has_value() || found->state != EnvelopeState::kLeased) return std::nullopt;
  Envelope& e = *found;
  Failure failure;
  failure.error_code = "LEASE_EXPIRED";
  failure.error_class = ErrorClass::kTransient;
  failure.message = "the lease expired before the worker reported an outcome";
  // The sweep already moved the row's generation on: a late report is told the lease expired.
  ASSIGN_OR_RETURN(const Decision d, Decide(e, e.attempt + 1, failure, now));
  RETURN_IF_ERROR(ctx_.store->Update(e));
  OnLeasedOutcome(e.service, e.id, false, ErrorClass::kTransient, now);
  Counts(e.service).leased--;
  Place(e, now);
  return std::optional<FailureOutcome>(FailureOutcome{std::move(e), std::move(failure), d, false});
}

// ---- Long-poll waiters ----

void SharedScheduler::Park(std::unique_ptr<LeaseWaiter> waiter) {
  Parked& parked = parked_[waiter->service()];
  if (parked.waiters.empty()) {
    // It just found nothing due: look again after the shortest backoff.
    parked.backoff = options_.poll_min;
    parked.poll_at = batch_local_now_ + options_.poll_min;
  }
  parked.waiters.push_back(std::move(waiter));
}

void SharedScheduler::ServeWaiters(absl::Time now, const ServeFunction& serve) {
  TakeSignals();
  for (const std::string& service : made_due_) {
    auto it = parked_.find(service);
    if (it == parked_.end()) continue;
    it->second.poll_at = absl::InfinitePast();
    it->second.backoff = options_.poll_min;
  }
  for (auto& [name, parked] : parked_) {
    if (parked.waiters.empty() || parked.poll_at > batch_local_now_) continue;
    ServeService(name, parked, now, serve);
  }
}

void SharedScheduler::ServeService(const std::string& name, Parked& parked, absl::Time now,
                                   const ServeFunction& serve) {
  // A failed statement here leaves the batch transaction aborted, which its commit reports
  // (crash-only); until then the waiters are served as if work were due.
  absl::StatusOr<absl::Time> next_due = pg::NextDueAt(conn(), name);
  if (!next_due.ok()) next_due = now;
  const bool guards_ok = RefreshGuards(name, now).ok();
  if (*next_due <= now && guards_ok && guards_.MayLease(name, now)) {
    while (!parked.waiters.empty()) {
      std::unique_ptr<LeaseWaiter> waiter = std::move(parked.waiters.front());
      parked.waiters.pop_front();
      waiter = serve(std::move(waiter));
      if (waiter != nullptr) {
        // Nothing was left to claim (another replica's claim holds the rest): wait on.
        parked.waiters.push_front(std::move(waiter));
        break;
      }
    }
    if (parked.waiters.empty()) return;
    next_due = absl::InfiniteFuture();
  }
  SchedulePoll(parked, *next_due, now);
}

void SharedScheduler::SchedulePoll(Parked& parked, absl::Time next_due, absl::Time now) {
  absl::Duration delay = parked.backoff;
  if (next_due > now) delay = std::min(delay, next_due - now);
  parked.poll_at = batch_local_now_ + delay;
  parked.backoff = std::min(parked.backoff * 2, options_.poll_max);
}

std::vector<std::unique_ptr<LeaseWaiter>> SharedScheduler::TakeEndedWaiters(absl::Time now,
                                                                            bool all) {
  std::vector<std::unique_ptr<LeaseWaiter>> ended;
  for (auto svc_it = parked_.begin(); svc_it != parked_.end();) {
    auto& waiters = svc_it->second.waiters;
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (all || (*it)->wait_until() <= now || (*it)->caller_gone()) {
        ended.push_back(std::move(*it));
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
    if (waiters.empty()) {
      parked_.erase(svc_it++);
    } else {
      ++svc_it;
    }
  }
  return ended;
}

void SharedScheduler::TakeSignals() {
  absl::flat_hash_set<std::string> signalled;
  bool all = false;
  {
    absl::MutexLock lock(&signal_mu_);
    signalled.swap(signalled_);
    all = signalled_all_;
    signalled_all_ = false;
  }
  for (auto& [name, parked] : parked_) {
    if (!all && !signalled.contains(name)) continue;
    parked.poll_at = absl::InfinitePast();
    parked.backoff = options_.poll_min;
  }
}

void SharedScheduler::OnDueSignal(const std::string& service) {
  {
    absl::MutexLock lock(&signal_mu_);
    if (service.empty()) {
      signalled_all_ = true;
    } else {
      signalled_.insert(service);
    }
  }
  if (ctx_.wake_writer) ctx_.wake_writer();
}

// ---- Work nobody asked for ----

bool SharedScheduler::WorkDue(absl::Time now) const {
  if (now >= next_sweep_) return true;
  bool waiting = false;
  for (const auto& [name, parked] : parked_) {
    if (parked.waiters.empty()) continue;
    waiting = true;
    if (parked.poll_at <= now) return true;
  }
  if (waiting) {
    absl::MutexLock lock(&signal_mu_);
    if (signalled_all_) return true;
    for (const std::string& service : signalled_) {
      if (parked_.contains(service)) return true;
    }
  }
  return guards_.NextTransition() <= now;
}

absl::Time SharedScheduler::NextWake(absl::Time /*now*/) const {
  absl::Time wake = std::min(next_sweep_, guards_.NextTransition());
  for (const auto& [name, parked] : parked_) {
    if (parked.waiters.empty()) continue;
    wake = std::min(wake, parked.poll_at);
    for (const auto& w : parked.waiters) wake = std::min(wake, w->wait_until());
  }
  return wake;
}

// ---- Changes made elsewhere ----

void SharedScheduler::Requeued(const Envelope& e) {
  Counts(e.service).dead--;
  Place(e, batch_now_);
}

void SharedScheduler::DeadLettersRemoved(const std::string& service, int64_t n) {
  Counts(service).dead -= n;
}

// ---- Counts ----

std::vector<std::pair<std::string, ServiceStats>> SharedScheduler::TakeChangedStats() {
  MaybeRefreshCounts();
  std::vector<std::pair<std::string, ServiceStats>> out;
  out.reserve(changed_counts_.size());
  for (const std::string& name : changed_counts_) {
    // Another replica's changes since the last read may make this replica's deltas run below
    // zero for a moment (it leased what another scheduled): never shown.
    const ServiceStats& c = counts_[name];
    out.emplace_back(name, ServiceStats{std::max<int64_t>(c.scheduled, 0),
                                        std::max<int64_t>(c.leased, 0),
                                        std::max<int64_t>(c.dead, 0)});
  }
  changed_counts_.clear();
  return out;
}

void SharedScheduler::MaybeRefreshCounts() {
  const absl::Time now = absl::Now();
  if (now < next_counts_refresh_) return;
  next_counts_refresh_ = now + options_.counts_refresh;
  // Committed data only: this replica's batches so far (this runs after their commit) and the
  // other replicas' as they committed them.
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  if (!counts.ok()) {
    LogEvent(LogLevel::kWarn, "counts_refresh_failed").Str("error", counts.status().ToString());
    return;
  }
  for (const ServiceCounts& c : *counts) {
    const ServiceStats read{c.scheduled, c.leased, c.dead};
    ServiceStats& mine = counts_[c.service];
    if (mine.scheduled == read.scheduled && mine.leased == read.leased && mine.dead == read.dead) {
      continue;
    }
    mine = read;
    changed_counts_.insert(c.service);
  }
}

ServiceStats& SharedScheduler::Counts(const std::string& service) {
  changed_counts_.insert(service);
  return counts_[service];
}

void SharedScheduler::Place(const Envelope& e, absl::Time now) {
  ServiceStats& counts = Counts(e.service);
  if (e.state == EnvelopeState::kDeadLettered) {
    counts.dead++;
  } else if (e.state == EnvelopeState::kScheduled) {
    counts.scheduled++;
    NoteDue(e.service, e.next_retry_at, now);
  }
}

void SharedScheduler::NoteDue(const std::string& service, absl::Time due, absl::Time now) {
  // Due within a poll's cap: worth a notification (and an immediate look here); later ones are
  // found by the parked polls' reads of the next due time.
  if (due <= now + options_.poll_max) {
    made_due_.insert(service);
    return;
  }
  auto it = parked_.find(service);
  if (it == parked_.end()) return;
  it->second.poll_at = std::min(it->second.poll_at, batch_local_now_ + (due - now));
}

// ---- Helpers ----

absl::StatusOr<Envelope> SharedScheduler::LoadLocked(int64_t id) {
  ASSIGN_OR_RETURN(std::optional<Envelope> e, ctx_.store->FindById(id, false));
  if (!e.has_value()) {
    return absl::InternalError(absl::StrCat("locked envelope row ", id, " vanished"));
  }
  return *std::move(e);
}

absl::StatusOr<Decision> SharedScheduler::Decide(Envelope& e, int attempt,
                                                 const Failure& failure, absl::Time now) {
  RETURN_IF_ERROR(RefreshGuards(e.service, now));
  return DecideAndApplyFailure(*ctx_.policies, *ctx_.rng, guards_, e, attempt, failure, now);
}

absl::Status SharedScheduler::GiveBack(const std::vector<pg::ClaimedLease>& claims,
                                       size_t from) {
  for (size_t i = from; i < claims.size(); ++i) {
    RETURN_IF_ERROR(
        pg::FinishLease(conn(), claims[i].token, kScheduledState, claims[i].due_at));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SharedScheduler::Drained(const std::string& service, bool claim_filled,
                                              int64_t allowance, absl::Time now) {
  // A claim that got fewer than it asked for took everything due. Only HALF_OPEN's trials care
  // (allowance finite), so a full claim of a closed circuit does not pay for the look.
  if (!claim_filled) return true;
  if (allowance == std::numeric_limits<int64_t>::max()) return false;
  ASSIGN_OR_RETURN(const absl::Time next_due, pg::NextDueAt(conn(), service));
  return next_due > now;
}

void SharedScheduler::OnLeasedOutcome(const std::string& service, int64_t envelope_id,
                                      bool success, ErrorClass error_class, absl::Time now) {
  const bool changed = success ? guards_.OnSuccess(service, now, envelope_id)
                               : guards_.OnFailure(service, now, error_class, envelope_id);
  if (changed) ctx_.circuit_changed(service);
}

}  // namespace retryd
