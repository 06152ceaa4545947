#include "server/core/service_guards.h"

#include <algorithm>
#include <utility>

#include "server/core/guard_state.h"

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

ServiceGuards::Entry& ServiceGuards::Change(const std::string& service, absl::Time now) {
  auto it = entries_.find(service);
  if (it == entries_.end()) {
    Entry& created = Get(service, now);
    if (in_op_) {
      created.in_op = true;  // Nothing to save: an undo forgets it.
      op_created_.insert(service);
      op_changed_.push_back(service);
    } else {
      changed_.insert(service);
    }
    return created;
  }
  Entry& entry = *it->second;
  if (!in_op_) {
    changed_.insert(service);
  } else if (!entry.in_op) {
    entry.circuit.Checkpoint();
    if (entry.budget.has_value()) entry.budget->Checkpoint();
    entry.in_op = true;
    op_changed_.push_back(service);
  }
  return entry;
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
  Entry& entry = Change(service, now);
  if (!entry.budget.has_value()) return;
  // A deferral must not pass the retry deadline; the budget refuses one that would without
  // booking it (or pacing the next deferral after it).
  const absl::Time deadline = policy.max_retry_duration > absl::ZeroDuration()
                                  ? first_seen_at + policy.max_retry_duration
                                  : absl::InfiniteFuture();
  const BudgetGrant grant = entry.budget->Acquire(now, d->next_retry_at, deadline);
  if (grant.granted) {
    if (grant.deferred) {
      d->next_retry_at = grant.at;
      d->delay = grant.at - now;
    }
    return;
  }
  d->kind = DecisionKind::kDeadLettered;
  d->state = EnvelopeState::kDeadLettered;
  d->reason = grant.past_deadline ? DeadLetterReason::kDeadlineExceeded
                                  : DeadLetterReason::kBudgetExhausted;
  d->next_retry_at = absl::InfinitePast();
  d->delay = absl::ZeroDuration();
}

void ServiceGuards::RecordFirstFailure(const std::string& service, absl::Time now) {
  const Entry* found = Find(service);
  if (found != nullptr && !found->budget.has_value()) return;
  Entry& entry = Change(service, now);
  if (entry.budget.has_value()) entry.budget->RecordFirstFailure(now);
}

bool ServiceGuards::RecordOutcomes(const std::string& service, absl::Time now,
                                   int64_t successes, int64_t failures) {
  Entry& entry = Change(service, now);
  if (entry.budget.has_value()) entry.budget->RecordOutcomes(now, successes, failures);
  const bool changed = entry.circuit.OnFirstAttemptOutcomes(now, successes, failures);
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnFailure(const std::string& service, absl::Time now, ErrorClass error_class,
                              int64_t envelope_id) {
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnFailure(now, error_class, envelope_id);
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnSuccess(const std::string& service, absl::Time now, int64_t envelope_id) {
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnSuccess(now, envelope_id);
  Touch(service, entry);
  return changed;
}

int64_t ServiceGuards::LeaseAllowance(const std::string& service, absl::Time now, bool* changed) {
  *changed = false;
  auto it = entries_.find(service);
  if (it == entries_.end()) return INT64_MAX;  // Never seen: CLOSED.
  if (it->second->circuit.NextTransition() <= now) {
    Entry& entry = Change(service, now);
    *changed = entry.circuit.Advance(now);
    Touch(service, entry);
  }
  return it->second->circuit.LeaseAllowance();
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
  // Only HALF_OPEN keeps anything of a lease (its trials).
  if (it == entries_.end() || it->second->circuit.state() != CircuitState::kHalfOpen) return false;
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnLeased(now, ids, drained);
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::SetOverride(const std::string& service, absl::Time now, CircuitOverride mode,
                                std::string note, std::string peer) {
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.SetOverride(now, mode, std::move(note), std::move(peer));
  Touch(service, entry);
  return changed;
}

CircuitRecord ServiceGuards::Record(const std::string& service) {
  auto it = entries_.find(service);
  if (it == entries_.end()) {
    CircuitRecord r;
    r.service = service;
    return r;
  }
  const Entry& entry = *it->second;
  CircuitRecord r = entry.circuit.Record();
  r.service = service;
  GuardState state;
  state.circuit = entry.circuit.SaveWindows();
  if (entry.budget.has_value()) state.budget = entry.budget->SaveWindows();
  r.windows = EncodeGuardState(state);
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
    Entry& entry = Change(service, now);
    if (entry.circuit.Advance(now)) changed->push_back(service);
    Touch(service, entry);
  }
}

void ServiceGuards::BeginOp() { in_op_ = true; }

void ServiceGuards::EndOp(bool keep) {
  if (keep) {
    for (const std::string& service : op_changed_) {
      Entry& entry = *entries_[service];
      if (entry.budget.has_value()) entry.budget->Forget();
      entry.in_op = false;
      changed_.insert(service);
    }
    op_changed_.clear();
    op_created_.clear();
  } else {
    UndoOp();
  }
  in_op_ = false;
}

void ServiceGuards::UndoOp() {
  for (const std::string& service : op_changed_) {
    auto it = entries_.find(service);
    if (op_created_.contains(service)) {
      entries_.erase(it);
      pending_.erase(service);
      continue;
    }
    Entry& entry = *it->second;
    entry.circuit.Undo();
    if (entry.budget.has_value()) entry.budget->Undo();
    entry.in_op = false;
    Touch(service, entry);
  }
  op_changed_.clear();
  op_created_.clear();
}

std::vector<std::string> ServiceGuards::TakeChanged() {
  std::vector<std::string> out(changed_.begin(), changed_.end());
  changed_.clear();
  std::sort(out.begin(), out.end());
  return out;
}

void ServiceGuards::Reset() {
  for (const auto& [name, entry] : entries_) dirty_.insert(name);
  entries_.clear();
  pending_.clear();
  changed_.clear();
  op_changed_.clear();
  op_created_.clear();
  in_op_ = false;
}

void ServiceGuards::RestoreScheduled(const std::string& service, absl::Time now,
                                     absl::Time next_retry_at) {
  Entry& entry = Get(service, now);
  if (entry.budget.has_value()) entry.budget->Restore(now, next_retry_at);
}

absl::Status ServiceGuards::RestoreCircuit(const CircuitRecord& record) {
  Entry& entry = Get(record.service, record.since);
  entry.circuit.Restore(record);
  absl::Status status;
  if (!record.windows.empty()) {
    absl::StatusOr<GuardState> state = DecodeGuardState(record.windows);
    if (state.ok()) {
      // A counter of a window whose length the policy changed starts empty.
      entry.circuit.LoadWindows(state->circuit);
      if (entry.budget.has_value() && state->budget.has_value()) {
        entry.budget->LoadWindows(*state->budget);
      }
    } else {
      status = state.status();
    }
  }
  Touch(record.service, entry);
  return status;
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
  std::vector<std::string> gone;  // Forgotten by Reset (and not restored).
  for (const std::string& service : dirty_) {
    auto it = entries_.find(service);
    if (it != entries_.end()) {
      views.emplace_back(service, it->second->circuit.View(now));
    } else {
      gone.push_back(service);
    }
  }
  dirty_.clear();
  absl::MutexLock lock(&snapshot_mu_);
  for (auto& [service, view] : views) snapshot_[service] = view;
  for (const std::string& service : gone) snapshot_.erase(service);
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
