#include "server/core/local_scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/core/decider.h"
#include "server/core/failure_decision.h"
#include "server/store/store.h"
#include "server/util/log.h"
#include "server/util/secure_random.h"
#include "server/util/status_macros.h"

namespace retryd {
namespace {

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

}  // namespace

LocalScheduler::LocalScheduler(const SchedulerContext& context)
    : store_(context.store),
      policies_(context.policies),
      rng_(context.rng),
      max_lease_response_bytes_(context.max_lease_response_bytes),
      circuit_changed_(context.circuit_changed),
      guards_(context.policies, context.started_at) {}

// ---- Start-up ----

absl::Status LocalScheduler::Restore(Store& store, absl::Time now) {
  Reset();
  // The guards are stored (circuits with their windows, budgets' windows); the budgets' bookings
  // are the schedule itself.
  ASSIGN_OR_RETURN(std::vector<CircuitRecord> circuits, store.LoadCircuits());
  for (const CircuitRecord& c : circuits) {
    const absl::Status restored = guards_.RestoreCircuit(c);
    if (!restored.ok()) {
      LogEvent(LogLevel::kError, "guard_state_unreadable")
          .Str("service", c.service)
          .Str("error", restored.ToString());
    }
  }
  RETURN_IF_ERROR(store.ForEachLive([&](const LiveRow& row) {
    if (row.state == EnvelopeState::kScheduled) {
      RestoreScheduled(row.service, row.id, row.at, now);
    } else {
      RestoreLeased(row.service, row.id, row.at);
    }
  }));
  FinishRestore();
  ASSIGN_OR_RETURN(std::vector<ServiceCounts> counts, store.CountByService());
  for (const ServiceCounts& c : counts) RestoreDead(c.service, c.dead);
  return absl::OkStatus();
}

// ---- The batch ----

absl::StatusOr<absl::Time> LocalScheduler::BeginBatch(absl::Time local_now) { return local_now; }

absl::Status LocalScheduler::SaveGuards(absl::Time /*now*/) {
  for (const std::string& service : guards_.TakeChanged()) {
    RETURN_IF_ERROR(store_->SaveCircuit(guards_.Record(service)));
  }
  return absl::OkStatus();
}

void LocalScheduler::EndBatch() { expired_in_batch_ = 0; }

// ---- Guards ----

absl::Status LocalScheduler::RefreshGuards(const std::string& /*service*/, absl::Time /*now*/) {
  return absl::OkStatus();
}

absl::Status LocalScheduler::RefreshAllGuards(absl::Time /*now*/) { return absl::OkStatus(); }

absl::Status LocalScheduler::AdvanceCircuits(absl::Time now, std::vector<std::string>* changed) {
  guards_.AdvanceAll(now, changed);
  return absl::OkStatus();
}

// ---- Transitions ----

absl::StatusOr<FailureOutcome> LocalScheduler::FirstFailure(Envelope e, Failure failure,
                                                            absl::Time now) {
  // Decide as if new and insert; the insert itself tells a duplicate (the common case pays
  // one index descent, not a lookup and an insert).
  if (e.first_seen_at == absl::InfinitePast()) e.first_seen_at = now;
  e.created_at = now;
  const Decision decision = DecideFailure(e, std::max(e.attempt, 1), failure, now);
  const absl::Status inserted = store_->Insert(&e);
  if (absl::IsAlreadyExists(inserted)) {
    return AnswerDuplicate(*store_, guards_, e, std::move(failure), inserted);
  }
  if (!inserted.ok()) return inserted;  // The op's guard changes are undone with it.
  OnFirstFailure(e, decision, now);
  Schedule(e);
  return FailureOutcome{std::move(e), std::move(failure), decision, false};
}

absl::StatusOr<FailureOutcome> LocalScheduler::LeasedFailure(const std::string& token,
                                                             const std::string& service,
                                                             const std::string& message_id,
                                                             Failure failure, absl::Time now) {
  ASSIGN_OR_RETURN(Envelope e, LoadLeased(token, [&service](const std::string& s) {
                     return s == service;
                   }));
  if (e.service != service || (!message_id.empty() && e.message_id != message_id)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lease_token: the lease is for another envelope (LEASE_MISMATCH): envelope.service "
        "and envelope.message_id must name the leased envelope"));
  }
  e.lease_token.clear();  // Completed: the token is no longer usable.
  const Decision decision = DecideFailure(e, e.attempt + 1, failure, now);
  RETURN_IF_ERROR(store_->Update(e));
  OnLeasedOutcome(e.service, e.id, /*success=*/false, decision.error_class, now);
  RemoveLease(e.id, e.service);
  Schedule(e);
  return FailureOutcome{std::move(e), std::move(failure), decision, false};
}

absl::StatusOr<LeaseGrant> LocalScheduler::Lease(const std::string& service, int max_messages,
                                                 absl::Duration visibility, absl::Time now) {
  ServiceState* known = FindKnownService(service);
  // Nobody reported this service: nothing is due, and the lease makes no service exist.
  if (known == nullptr) return LeaseGrant{};
  ServiceState& svc = *known;
  const int64_t now_us = absl::ToUnixMicros(now);
  // The circuit caps the count: nothing while OPEN, the trials left while HALF_OPEN.
  bool circuit_changed = false;
  const int64_t allowance = guards_.LeaseAllowance(service, now, &circuit_changed);
  if (circuit_changed) circuit_changed_(service);
  const int64_t max_items = std::min<int64_t>(max_messages, allowance);
  LeaseGrant grant;
  std::vector<HeapEntry> popped;
  int64_t bytes = 0;
  absl::Status status;
  while (static_cast<int64_t>(grant.items.size()) < max_items && !svc.schedule.empty() &&
         svc.schedule.top().first <= now_us) {
    const HeapEntry entry = svc.schedule.top();
    absl::StatusOr<std::optional<Envelope>> found = store_->FindById(entry.second, true);
    if (!found.ok()) {
      status = found.status();
      break;
    }
    // An entry whose row moved on is stale: drop it.
    if (!found->has_value() || (*found)->state != EnvelopeState::kScheduled ||
        absl::ToUnixMicros((*found)->next_retry_at) != entry.first) {
      svc.schedule.pop();
      continue;
    }
    Envelope& e = **found;
    const int64_t size = LeasedWireSize(e);
    if (!grant.items.empty() && bytes + size > max_lease_response_bytes_) break;
    svc.schedule.pop();
    popped.push_back(entry);
    const absl::Time due = e.next_retry_at;
    e.state = EnvelopeState::kLeased;
    absl::StatusOr<std::string> token = NewLeaseToken(e);
    if (!token.ok()) {
      status = token.status();
      break;
    }
    e.lease_token = *std::move(token);
    e.lease_expires_at = now + visibility;
    e.updated_at = now;
    status = store_->Update(e);
    if (!status.ok()) break;
    bytes += size;
    grant.lateness.push_back(now - due);
    grant.items.push_back(LeasedItem{std::move(e), "", absl::InfinitePast()});
    grant.items.back().lease_token = grant.items.back().envelope.lease_token;
    grant.items.back().lease_expires_at = grant.items.back().envelope.lease_expires_at;
  }
  if (!status.ok()) {
    for (const HeapEntry& entry : popped) svc.schedule.push(entry);
    return status;
  }
  // In HALF_OPEN, a lease that found no more due envelopes ends the wait for further trials.
  const bool drained = svc.schedule.empty() || svc.schedule.top().first > now_us;
  std::vector<int64_t> ids;
  for (const LeasedItem& item : grant.items) ids.push_back(item.envelope.id);
  if (guards_.OnLeased(service, now, ids, drained)) circuit_changed_(service);
  for (const LeasedItem& item : grant.items) AddLease(item.envelope);
  return grant;
}

absl::StatusOr<Envelope> LocalScheduler::Succeed(const std::string& service,
                                                 const std::string& token, absl::Time now) {
  ASSIGN_OR_RETURN(Envelope e, LoadLeased(token, [&service](const std::string& s) {
                     return s == service;
                   }));
  if (e.service != service) {
    return absl::FailedPreconditionError(
        "lease_token: the lease belongs to another service (LEASE_MISMATCH)");
  }
  e.state = EnvelopeState::kSucceeded;
  e.completed_at = now;
  e.updated_at = now;
  e.lease_token.clear();
  RETURN_IF_ERROR(store_->UpdateDroppingPayload(e));
  OnLeasedOutcome(e.service, e.id, /*success=*/true, ErrorClass::kUnspecified, now);
  RemoveLease(e.id, e.service);
  return e;
}

absl::StatusOr<absl::Time> LocalScheduler::Extend(const std::string& token,
                                                  absl::Duration visibility,
                                                  const ServiceCheck& may_act_for,
                                                  absl::Time now) {
  ASSIGN_OR_RETURN(Envelope e, LoadLeased(token, may_act_for));
  if (may_act_for && !may_act_for(e.service)) {
    return absl::PermissionDeniedError(
        "lease_token: the lease belongs to a service this token may not act for "
        "(SERVICE_NOT_ALLOWED)");
  }
  e.lease_expires_at = now + visibility;
  e.updated_at = now;
  RETURN_IF_ERROR(store_->Update(e));
  AddLease(e);
  return e.lease_expires_at;
}

// ---- Lease expiry ----

absl::StatusOr<std::optional<int64_t>> LocalScheduler::NextExpired(absl::Time now, int max) {
  if (expired_in_batch_ >= max) return std::nullopt;  // The rest waits for the next batch.
  const int64_t now_us = absl::ToUnixMicros(now);
  while (!lease_expiry_.empty() && lease_expiry_.top().first <= now_us) {
    const HeapEntry entry = lease_expiry_.top();
    lease_expiry_.pop();
    auto it = leases_.find(entry.second);
    if (it == leases_.end() || it->second.expires_us != entry.first) continue;  // Stale.
    ++expired_in_batch_;
    return entry.second;
  }
  return std::nullopt;
}

absl::StatusOr<std::optional<FailureOutcome>> LocalScheduler::ExpireLease(int64_t id,
                                                                          absl::Time now) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return std::nullopt;
  const std::string service = it->second.service;
  ASSIGN_OR_RETURN(std::optional<Envelope> found, store_->FindById(id, false));
  std::optional<FailureOutcome> out;
  if (found.has_value() && found->state == EnvelopeState::kLeased) {
    Envelope& e = *found;
    Failure failure;
    failure.error_code = "LEASE_EXPIRED";
    failure.error_class = ErrorClass::kTransient;
    failure.message = "the lease expired before the worker reported an outcome";
    // The token is kept, so a late report is told the lease expired.
    const Decision d = DecideFailure(e, e.attempt + 1, failure, now);
    RETURN_IF_ERROR(store_->Update(e));
    OnLeasedOutcome(e.service, e.id, false, ErrorClass::kTransient, now);
    out = FailureOutcome{std::move(e), std::move(failure), d, false};
  }
  RemoveLease(id, service);
  if (out.has_value()) Schedule(out->envelope);
  return out;
}

// ---- Long-poll waiters ----

void LocalScheduler::Park(std::unique_ptr<LeaseWaiter> waiter) {
  const std::string service = waiter->service();
  // Parked; the service is not made known.
  services_[service].waiters.push_back(std::move(waiter));
}

void LocalScheduler::ServeWaiters(absl::Time now, const ServeFunction& serve) {
  for (auto& [name, svc] : services_) {
    while (!svc.waiters.empty() && HasDueWork(name, svc, now)) {
      std::unique_ptr<LeaseWaiter> waiter = std::move(svc.waiters.front());
      svc.waiters.pop_front();
      waiter = serve(std::move(waiter));
      if (waiter != nullptr) {
        // Only stale entries were due; wait on.
        svc.waiters.push_front(std::move(waiter));
        break;
      }
    }
  }
}

std::vector<std::unique_ptr<LeaseWaiter>> LocalScheduler::TakeEndedWaiters(absl::Time now,
                                                                          bool all) {
  std::vector<std::unique_ptr<LeaseWaiter>> ended;
  for (auto svc_it = services_.begin(); svc_it != services_.end();) {
    ServiceState& svc = svc_it->second;
    for (auto it = svc.waiters.begin(); it != svc.waiters.end();) {
      if (all || (*it)->wait_until() <= now || (*it)->caller_gone()) {
        ended.push_back(std::move(*it));
        it = svc.waiters.erase(it);
      } else {
        ++it;
      }
    }
    // An entry that only held long-polls of a service nobody reported goes with them.
    if (!svc.known && svc.waiters.empty()) {
      services_.erase(svc_it++);
    } else {
      ++svc_it;
    }
  }
  return ended;
}

// ---- Work nobody asked for ----

bool LocalScheduler::HasDueWork(const std::string& name, const ServiceState& svc,
                                absl::Time now) const {
  return !svc.schedule.empty() && svc.schedule.top().first <= absl::ToUnixMicros(now) &&
         guards_.MayLease(name, now);
}

bool LocalScheduler::WorkDue(absl::Time now) const {
  if (!lease_expiry_.empty() && lease_expiry_.top().first <= absl::ToUnixMicros(now)) return true;
  for (const auto& [name, svc] : services_) {
    if (!svc.waiters.empty() && HasDueWork(name, svc, now)) return true;
  }
  return guards_.NextTransition() <= now;
}

absl::Time LocalScheduler::NextWake(absl::Time now) const {
  int64_t wake = absl::ToUnixMicros(guards_.NextTransition());
  if (!lease_expiry_.empty()) wake = std::min(wake, lease_expiry_.top().first);
  for (const auto& [name, svc] : services_) {
    if (svc.waiters.empty()) continue;
    if (!svc.schedule.empty() && guards_.MayLease(name, now)) {
      wake = std::min(wake, svc.schedule.top().first);
    }
    for (const auto& w : svc.waiters) wake = std::min(wake, absl::ToUnixMicros(w->wait_until()));
  }
  if (wake == absl::ToUnixMicros(absl::InfiniteFuture())) return absl::InfiniteFuture();
  return absl::FromUnixMicros(wake);
}

// ---- Changes made elsewhere ----

void LocalScheduler::Requeued(const Envelope& e) {
  Service(e.service).dead--;
  Schedule(e);
}

void LocalScheduler::DeadLettersRemoved(const std::string& service, int64_t n) {
  Service(service).dead -= n;
}

// ---- Rebuild, step by step ----

void LocalScheduler::Reset() {
  for (auto& [name, svc] : services_) {
    svc.schedule = MinHeap();
    svc.leased = 0;
    svc.dead = 0;
  }
  leases_.clear();
  lease_expiry_ = MinHeap();
  restoring_.clear();
  restoring_expiries_.clear();
  guards_.Reset();
}

void LocalScheduler::RestoreScheduled(const std::string& service, int64_t id,
                                      absl::Time next_retry_at, absl::Time now) {
  guards_.RestoreScheduled(service, now, next_retry_at);
  restoring_[service].emplace_back(absl::ToUnixMicros(next_retry_at), id);
}

void LocalScheduler::RestoreLeased(const std::string& service, int64_t id,
                                   absl::Time lease_expires_at) {
  const int64_t at = absl::ToUnixMicros(lease_expires_at);
  leases_[id] = LeaseInfo{at, service};
  Service(service).leased++;
  restoring_expiries_.emplace_back(at, id);
}

void LocalScheduler::RestoreDead(const std::string& service, int64_t dead) {
  Service(service).dead = dead;
}

void LocalScheduler::FinishRestore() {
  for (auto& [name, entries] : restoring_) {
    Service(name).schedule = MinHeap(std::greater<HeapEntry>(), std::move(entries));
  }
  restoring_.clear();
  lease_expiry_ = MinHeap(std::greater<HeapEntry>(), std::move(restoring_expiries_));
  restoring_expiries_.clear();
  for (auto& [name, svc] : services_) changed_stats_[name] = true;
}

// ---- Counts ----

std::vector<std::pair<std::string, ServiceStats>> LocalScheduler::TakeChangedStats() {
  std::vector<std::pair<std::string, ServiceStats>> out;
  out.reserve(changed_stats_.size());
  for (const auto& [name, unused] : changed_stats_) {
    const ServiceState& svc = services_[name];
    out.emplace_back(name,
                     ServiceStats{static_cast<int64_t>(svc.schedule.size()), svc.leased, svc.dead});
  }
  changed_stats_.clear();
  return out;
}

// ---- Helpers ----

LocalScheduler::ServiceState& LocalScheduler::Service(const std::string& name) {
  changed_stats_[name] = true;
  ServiceState& svc = services_[name];
  svc.known = true;
  return svc;
}

LocalScheduler::ServiceState* LocalScheduler::FindKnownService(const std::string& name) {
  auto it = services_.find(name);
  if (it == services_.end() || !it->second.known) return nullptr;
  changed_stats_[name] = true;
  return &it->second;
}

void LocalScheduler::Schedule(const Envelope& e) {
  ServiceState& svc = Service(e.service);
  if (e.state == EnvelopeState::kScheduled) {
    svc.schedule.emplace(absl::ToUnixMicros(e.next_retry_at), e.id);
  } else if (e.state == EnvelopeState::kDeadLettered) {
    svc.dead++;
  }
}

void LocalScheduler::AddLease(const Envelope& e) {
  const int64_t at = absl::ToUnixMicros(e.lease_expires_at);
  auto [it, inserted] = leases_.try_emplace(e.id, LeaseInfo{at, e.service});
  if (inserted) {
    Service(e.service).leased++;
  } else {
    it->second.expires_us = at;
  }
  lease_expiry_.emplace(at, e.id);
}

void LocalScheduler::RemoveLease(int64_t id, const std::string& service) {
  if (leases_.erase(id) > 0) Service(service).leased--;
}

absl::StatusOr<std::string> LocalScheduler::NewLeaseToken(const Envelope& e) {
  // "<id>.<attempts made>.<128 bits from the CSPRNG>": the id finds the row; the attempt tells a
  // token that was superseded (its lease expired and the envelope moved on) from one never
  // issued. The secret part never comes from rng_, whose jitter a worker can observe.
  ASSIGN_OR_RETURN(std::string secret, SecureRandomHex(16));
  return absl::StrCat(e.id, ".", e.attempt, ".", secret);
}

absl::StatusOr<Envelope> LocalScheduler::LoadLeased(const std::string& token,
                                                    const ServiceCheck& may_see) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  int64_t id = 0;
  int attempt = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &id) ||
      !absl::SimpleAtoi(parts[1], &attempt)) {
    return LeaseNotFound();
  }
  ASSIGN_OR_RETURN(std::optional<Envelope> e, store_->FindById(id, false));
  if (!e.has_value()) return LeaseNotFound();
  if (ConstantTimeEquals(e->lease_token, token)) {
    // The caller holds the token this envelope was last leased under.
    if (e->state != EnvelopeState::kLeased) return LeaseExpired();
    return std::move(*e);
  }
  // Any other token tells nothing about an envelope of a service the caller may not see: the
  // same answer as for an id that does not exist.
  if (may_see && !may_see(e->service)) return LeaseNotFound();
  if (attempt < e->attempt) return LeaseExpired();
  return LeaseNotFound();
}

Decision LocalScheduler::DecideFailure(Envelope& e, int attempt, const Failure& failure,
                                       absl::Time now) {
  return DecideAndApplyFailure(*policies_, *rng_, guards_, e, attempt, failure, now);
}

// ---- Guard hooks ----

void LocalScheduler::OnFirstFailure(const Envelope& e, const Decision& d, absl::Time now) {
  guards_.RecordFirstFailure(e.service, now);
  if (guards_.OnFailure(e.service, now, d.error_class, /*envelope_id=*/0)) {
    circuit_changed_(e.service);
  }
}

void LocalScheduler::OnLeasedOutcome(const std::string& service, int64_t envelope_id, bool success,
                                     ErrorClass error_class, absl::Time now) {
  const bool changed = success ? guards_.OnSuccess(service, now, envelope_id)
                               : guards_.OnFailure(service, now, error_class, envelope_id);
  if (changed) circuit_changed_(service);
}

}  // namespace retryd
