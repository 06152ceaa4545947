#include "server/core/service_guards.h"

#include <algorithm>
#include <utility>

namespace retryd {

ServiceGuards::Entry::Entry(const Policy& p, absl::Time now)
    : policy(&p), circuit(p.circuit, now) {
  if (p.budget.enabled) budget.emplace(p.budget);
}

ServiceGuards::ServiceGuards(const PolicySet* policies, absl::Time started_at)
    : policies_(policies), started_at_(started_at) {}

ServiceGuards::Entry& ServiceGuards::Get(const std::string& service, absl::Time now) {
  auto it = entries_.find(service);
  if (it != entries_.end()) return *it->second;
  auto entry = std::make_unique<Entry>(policies_->Resolve(service), now);
  Entry& ref = *entry;
  entries_.emplace(service, std::move(entry));
  dirty_.insert(service);
  return ref;
}

const ServiceGuards::Entry* ServiceGuards::Find(const std::string& service) const {
  auto it = entries_.find(service);
  return it == entries_.end() ? nullptr : it->second.get();
}

void ServiceGuards::Touch(const std::string& service, const Entry& entry) {
  dirty_.insert(service);
  if (entry.circuit.NextTransition() != absl::InfiniteFuture()) {
    pending_.insert(service);
  } else {
    pending_.erase(service);
  }
}

void ServiceGuards::ApplyBudget(const std::string& service, const Policy& policy,
                                absl::Time first_seen_at, absl::Time now, Decision* d) {
  if (d->kind != DecisionKind::kScheduled || !policy.budget.enabled) return;
  Entry& entry = Get(service, now);
  if (!entry.budget.has_value()) return;
  const BudgetGrant grant = entry.budget->Acquire(now, d->next_retry_at);
  if (grant.granted && !grant.deferred) return;
  if (grant.granted && policy.max_retry_duration > absl::ZeroDuration() &&
      grant.at > first_seen_at + policy.max_retry_duration) {
    entry.budget->Release(now, grant.at);
  } else if (grant.granted) {
    d->next_retry_at = grant.at;
    d->delay = grant.at - now;
    return;
  }
  d->kind = DecisionKind::kDeadLettered;
  d->state = EnvelopeState::kDeadLettered;
  d->reason = grant.granted ? DeadLetterReason::kDeadlineExceeded
                            : DeadLetterReason::kBudgetExhausted;
  d->next_retry_at = absl::InfinitePast();
  d->delay = absl::ZeroDuration();
}

void ServiceGuards::ReleaseRetry(const std::string& service, absl::Time now, const Decision& d) {
  if (d.kind != DecisionKind::kScheduled) return;
  auto it = entries_.find(service);
  if (it == entries_.end() || !it->second->budget.has_value()) return;
  it->second->budget->Release(now, d.next_retry_at);
}

void ServiceGuards::RecordFirstFailure(const std::string& service, absl::Time now) {
  Entry& entry = Get(service, now);
  if (entry.budget.has_value()) entry.budget->RecordFirstFailure(now);
}

bool ServiceGuards::RecordOutcomes(const std::string& service, absl::Time now,
                                   int64_t successes, int64_t failures) {
  Entry& entry = Get(service, now);
  if (entry.budget.has_value()) entry.budget->RecordOutcomes(now, successes, failures);
  const bool changed = entry.circuit.OnFirstAttemptOutcomes(now, successes, failures);
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnFailure(const std::string& service, absl::Time now, ErrorClass error_class,
                              int64_t envelope_id) {
  Entry& entry = Get(service, now);
  const bool changed = entry.circuit.OnFailure(now, error_class, envelope_id);
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnSuccess(const std::string& service, absl::Time now, int64_t envelope_id) {
  Entry& entry = Get(service, now);
  const bool changed = entry.circuit.OnSuccess(now, envelope_id);
  Touch(service, entry);
  return changed;
}

int64_t ServiceGuards::LeaseAllowance(const std::string& service, absl::Time now, bool* changed) {
  *changed = false;
  auto it = entries_.find(service);
  if (it == entries_.end()) return INT64_MAX;  // Never seen: CLOSED.
  Entry& entry = *it->second;
  if (entry.circuit.Advance(now)) {
    *changed = true;
    Touch(service, entry);
  }
  return entry.circuit.LeaseAllowance();
}

bool ServiceGuards::MayLease(const std::string& service, absl::Time now) const {
  const Entry* entry = Find(service);
  if (entry == nullptr) return true;
  if (entry->circuit.NextTransition() <= now) return true;  // About to turn HALF_OPEN.
  return entry->circuit.LeaseAllowance() > 0;
}

bool ServiceGuards::OnLeased(const std::string& service, absl::Time now,
                             const std::vector<int64_t>& ids, bool drained) {
  auto it = entries_.find(service);
  if (it == entries_.end()) return false;
  const bool changed = it->second->circuit.OnLeased(now, ids, drained);
  if (changed) Touch(service, *it->second);
  return changed;
}

bool ServiceGuards::SetOverride(const std::string& service, absl::Time now, CircuitOverride mode,
                                std::string note, std::string peer) {
  Entry& entry = Get(service, now);
  const bool changed = entry.circuit.SetOverride(now, mode, std::move(note), std::move(peer));
  Touch(service, entry);
  return changed;
}

CircuitRecord ServiceGuards::Record(const std::string& service) {
  auto it = entries_.find(service);
  CircuitRecord r = it == entries_.end() ? CircuitRecord() : it->second->circuit.Record();
  r.service = service;
  return r;
}

CircuitView ServiceGuards::Circuit(const std::string& service, absl::Time now) {
  auto it = entries_.find(service);
  if (it == entries_.end()) {
    CircuitView v;
    v.since = started_at_;
    return v;
  }
  return it->second->circuit.View(now);
}

absl::Time ServiceGuards::NextTransition() const {
  absl::Time next = absl::InfiniteFuture();
  for (const std::string& service : pending_) {
    const Entry* entry = Find(service);
    if (entry != nullptr) next = std::min(next, entry->circuit.NextTransition());
  }
  return next;
}

void ServiceGuards::AdvanceAll(absl::Time now, std::vector<std::string>* changed) {
  std::vector<std::string> due;
  for (const std::string& service : pending_) {
    const Entry* entry = Find(service);
    if (entry != nullptr && entry->circuit.NextTransition() <= now) due.push_back(service);
  }
  for (const std::string& service : due) {
    Entry& entry = *entries_[service];
    if (entry.circuit.Advance(now)) changed->push_back(service);
    Touch(service, entry);
  }
}

void ServiceGuards::ClearBookings() {
  for (auto& [name, entry] : entries_) {
    if (entry->budget.has_value()) entry->budget->ClearBookings();
  }
}

void ServiceGuards::RestoreScheduled(const std::string& service, absl::Time now,
                                     absl::Time next_retry_at) {
  Entry& entry = Get(service, now);
  if (entry.budget.has_value()) entry.budget->Restore(now, next_retry_at);
}

void ServiceGuards::RestoreCircuit(const CircuitRecord& record) {
  Entry& entry = Get(record.service, record.since);
  entry.circuit.Restore(record);
  Touch(record.service, entry);
}

std::map<std::string, GuardView> ServiceGuards::Views(absl::Time now) {
  std::map<std::string, GuardView> out;
  for (auto& [name, entry] : entries_) {
    GuardView& v = out[name];
    v.circuit = entry->circuit.View(now);
    v.budget_remaining = entry->budget.has_value() ? entry->budget->Remaining(now) : -1;
  }
  return out;
}

void ServiceGuards::Publish(absl::Time now) {
  if (dirty_.empty()) return;
  std::vector<std::pair<std::string, CircuitView>> views;
  views.reserve(dirty_.size());
  for (const std::string& service : dirty_) {
    auto it = entries_.find(service);
    if (it != entries_.end()) views.emplace_back(service, it->second->circuit.View(now));
  }
  dirty_.clear();
  absl::MutexLock lock(&snapshot_mu_);
  for (auto& [service, view] : views) snapshot_[service] = view;
}

CircuitView ServiceGuards::Snapshot(const std::string& service, absl::Time now) const {
  CircuitView v;
  {
    absl::MutexLock lock(&snapshot_mu_);
    auto it = snapshot_.find(service);
    if (it == snapshot_.end()) {
      v.since = started_at_;
      return v;
    }
    v = it->second;
  }
  // The writer makes this transition at next_probe_at; readers need not wait for it.
  if (v.state == CircuitState::kOpen && v.next_probe_at != absl::InfinitePast() &&
      now >= v.next_probe_at) {
    v.state = CircuitState::kHalfOpen;
    v.since = v.next_probe_at;
    v.next_probe_at = absl::InfinitePast();
  }
  return v;
}

}  // namespace retryd
