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
    entry.op_mark = entry.journal.size();
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

void ServiceGuards::Note(const std::string& service, Entry& entry, GuardEvent event) {
  entry.journal.push_back(std::move(event));
  journaled_.insert(service);
}

namespace {

GuardEvent Event(GuardEvent::Kind kind, absl::Time at) {
  GuardEvent e;
  e.kind = kind;
  e.at = at;
  return e;
}

}  // namespace

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
      if (journaling_) Note(service, entry, Event(GuardEvent::Kind::kDeferral, grant.at));
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
  if (!entry.budget.has_value()) return;
  entry.budget->RecordFirstFailure(now);
  if (journaling_) Note(service, entry, Event(GuardEvent::Kind::kFirstFailure, now));
}

bool ServiceGuards::RecordOutcomes(const std::string& service, absl::Time now,
                                   int64_t successes, int64_t failures) {
  Entry& entry = Change(service, now);
  if (entry.budget.has_value()) entry.budget->RecordOutcomes(now, successes, failures);
  const bool changed = entry.circuit.OnFirstAttemptOutcomes(now, successes, failures);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kOutcomes, now);
    e.a = successes;
    e.b = failures;
    Note(service, entry, std::move(e));
  }
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnFailure(const std::string& service, absl::Time now, ErrorClass error_class,
                              int64_t envelope_id) {
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnFailure(now, error_class, envelope_id);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kFailure, now);
    e.error_class = error_class;
    e.a = envelope_id;
    Note(service, entry, std::move(e));
  }
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::OnSuccess(const std::string& service, absl::Time now, int64_t envelope_id) {
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnSuccess(now, envelope_id);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kSuccess, now);
    e.a = envelope_id;
    Note(service, entry, std::move(e));
  }
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
    if (*changed && journaling_) Note(service, entry, Event(GuardEvent::Kind::kAdvance, now));
    Touch(service, entry);
  }
  const Entry& entry = *it->second;
  if (journaling_ && entry.circuit.state() == CircuitState::kHalfOpen) {
    bool claim = false;
    if (!MayTakeTrials(service, entry, now, &claim)) return 0;
    if (claim) *changed = true;  // The caller claims the trials first.
  }
  return entry.circuit.LeaseAllowance();
}

bool ServiceGuards::MayTakeTrials(const std::string& service, const Entry& entry, absl::Time now,
                                  bool* claim) const {
  *claim = false;
  if (barred_.contains(service)) return false;
  const std::string& holder = entry.circuit.trial_holder();
  if (holder == replica_) return true;
  if (holder.empty() ||
      (entry.circuit.trials_leased() == 0 &&
       now >= entry.circuit.since() + entry.circuit.spec().open_duration)) {
    *claim = true;
    return true;
  }
  return false;
}

bool ServiceGuards::MayClaimTrials(const std::string& service, absl::Time now) const {
  const Entry* entry = Find(service);
  if (entry == nullptr || entry->circuit.state() != CircuitState::kHalfOpen) return false;
  bool claim = false;
  return MayTakeTrials(service, *entry, now, &claim);
}

bool ServiceGuards::MayLease(const std::string& service, absl::Time now) const {
  const Entry* entry = Find(service);
  if (entry == nullptr) return true;
  if (entry->circuit.NextTransition() <= now) {  // About to turn HALF_OPEN.
    return !journaling_ || !barred_.contains(service);
  }
  bool claim = false;
  if (journaling_ && entry->circuit.state() == CircuitState::kHalfOpen &&
      !MayTakeTrials(service, *entry, now, &claim)) {
    return false;
  }
  return entry->circuit.LeaseAllowance() > 0;
}

bool ServiceGuards::OnLeased(const std::string& service, absl::Time now,
                             const std::vector<int64_t>& ids, bool drained) {
  auto it = entries_.find(service);
  // Only HALF_OPEN keeps anything of a lease (its trials).
  if (it == entries_.end() || it->second->circuit.state() != CircuitState::kHalfOpen) return false;
  Entry& entry = Change(service, now);
  const bool changed = entry.circuit.OnLeased(now, ids, drained);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kLeased, now);
    e.ids = ids;
    e.drained = drained;
    Note(service, entry, std::move(e));
  }
  Touch(service, entry);
  return changed;
}

bool ServiceGuards::SetOverride(const std::string& service, absl::Time now, CircuitOverride mode,
                                std::string note, std::string peer) {
  Entry& entry = Change(service, now);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kOverride, now);
    e.mode = mode;
    e.text = note;
    e.peer = peer;
    Note(service, entry, std::move(e));
  }
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
    if (entry.circuit.Advance(now)) {
      changed->push_back(service);
      if (journaling_) Note(service, entry, Event(GuardEvent::Kind::kAdvance, now));
    }
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
    if (entry.journal.size() > entry.op_mark) {
      entry.journal.erase(entry.journal.begin() + static_cast<ptrdiff_t>(entry.op_mark),
                          entry.journal.end());
    }
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
  journaled_.clear();
  barred_.clear();
}

void ServiceGuards::RestoreScheduled(const std::string& service, absl::Time now,
                                     absl::Time next_retry_at) {
  Entry& entry = Get(service, now);
  if (entry.budget.has_value()) entry.budget->Restore(now, next_retry_at);
}

absl::Status ServiceGuards::RestoreCircuit(const CircuitRecord& record) {
  Entry& entry = Get(record.service, record.since);
  absl::Status status = Load(entry, record, /*shared=*/false);
  Touch(record.service, entry);
  return status;
}

absl::Status ServiceGuards::Load(Entry& entry, const CircuitRecord& record, bool shared) {
  entry.circuit.Restore(record);
  absl::Status status;
  std::optional<RetryBudget::Windows> budget;
  if (!record.windows.empty()) {
    absl::StatusOr<GuardState> state = DecodeGuardState(record.windows);
    if (state.ok()) {
      // A counter of a window whose length the policy changed starts empty.
      entry.circuit.LoadWindows(state->circuit);
      budget = std::move(state->budget);
    } else {
      status = state.status();
    }
  }
  if (entry.budget.has_value()) {
    if (budget.has_value()) {
      entry.budget->LoadWindows(*budget);
    } else if (shared) {
      // The shared row holds no budget window: none was counted yet (empty Buckets load as a
      // window of another length, which starts empty).
      entry.budget->LoadWindows(RetryBudget::Windows{});
    }
  }
  return status;
}

void ServiceGuards::Apply(Entry& entry, const GuardEvent& e) {
  switch (e.kind) {
    case GuardEvent::Kind::kFirstFailure:
      if (entry.budget.has_value()) entry.budget->RecordFirstFailure(e.at);
      break;
    case GuardEvent::Kind::kOutcomes:
      if (entry.budget.has_value()) entry.budget->RecordOutcomes(e.at, e.a, e.b);
      entry.circuit.OnFirstAttemptOutcomes(e.at, e.a, e.b);
      break;
    case GuardEvent::Kind::kFailure:
      entry.circuit.OnFailure(e.at, e.error_class, e.a);
      break;
    case GuardEvent::Kind::kSuccess:
      entry.circuit.OnSuccess(e.at, e.a);
      break;
    case GuardEvent::Kind::kAdvance:
      entry.circuit.Advance(e.at);
      break;
    case GuardEvent::Kind::kLeased:
      entry.circuit.OnLeased(e.at, e.ids, e.drained);
      break;
    case GuardEvent::Kind::kOverride:
      entry.circuit.SetOverride(e.at, e.mode, e.text, e.peer);
      break;
    case GuardEvent::Kind::kDeferral:
      if (entry.budget.has_value()) entry.budget->NoteDeferral(e.at);
      break;
    case GuardEvent::Kind::kTrialHolder:
      entry.circuit.SetTrialHolder(e.text);
      break;
  }
}

void ServiceGuards::EnableJournal(std::string replica) {
  journaling_ = true;
  replica_ = std::move(replica);
}

std::vector<std::string> ServiceGuards::Journaled() const {
  std::vector<std::string> out;
  for (const std::string& service : journaled_) {
    const Entry* entry = Find(service);
    if (entry != nullptr && !entry->journal.empty()) out.push_back(service);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const std::vector<GuardEvent>& ServiceGuards::Journal(const std::string& service) const {
  static const std::vector<GuardEvent>* const kNone = new std::vector<GuardEvent>();
  const Entry* entry = Find(service);
  return entry == nullptr ? *kNone : entry->journal;
}

absl::Status ServiceGuards::LoadShared(const CircuitRecord& record) {
  const std::string& service = record.service;
  Entry& entry = Get(service, record.since);
  absl::Status status = Load(entry, record, /*shared=*/true);
  const bool op_changed = in_op_ && entry.in_op;
  const size_t mark = op_changed ? std::min(entry.op_mark, entry.journal.size())
                                 : entry.journal.size();
  for (size_t i = 0; i < mark; ++i) Apply(entry, entry.journal[i]);
  if (op_changed) {
    // What the op's undo returns to: the shared row with the changes of earlier ops, not the
    // state this row replaced.
    entry.circuit.Checkpoint();
    if (entry.budget.has_value()) {
      if (op_created_.contains(service)) {
        entry.budget->Checkpoint();  // Created by this op: nothing of it was saved yet.
      } else {
        entry.budget->Rebase();
      }
    }
    op_created_.erase(service);  // It holds the shared state now: an undo keeps it.
  }
  for (size_t i = mark; i < entry.journal.size(); ++i) Apply(entry, entry.journal[i]);
  Touch(service, entry);
  return status;
}

absl::Status ServiceGuards::LoadSaved(const CircuitRecord& record) {
  Entry& entry = Get(record.service, record.since);
  absl::Status status = Load(entry, record, /*shared=*/true);
  entry.journal.clear();
  entry.op_mark = 0;
  journaled_.erase(record.service);
  Touch(record.service, entry);
  return status;
}

void ServiceGuards::Replay(const std::string& service, absl::Time now,
                           const std::vector<GuardEvent>& events) {
  Entry& entry = Get(service, now);
  for (const GuardEvent& e : events) Apply(entry, e);
  Touch(service, entry);
}

void ServiceGuards::SetTrialHolder(const std::string& service, absl::Time now,
                                   const std::string& replica) {
  Entry& entry = Change(service, now);
  entry.circuit.SetTrialHolder(replica);
  if (journaling_) {
    GuardEvent e = Event(GuardEvent::Kind::kTrialHolder, now);
    e.text = replica;
    Note(service, entry, std::move(e));
  }
  Touch(service, entry);
}

CircuitState ServiceGuards::State(const std::string& service) const {
  const Entry* entry = Find(service);
  return entry == nullptr ? CircuitState::kClosed : entry->circuit.state();
}

std::string ServiceGuards::TrialHolder(const std::string& service) const {
  const Entry* entry = Find(service);
  return entry == nullptr ? std::string() : entry->circuit.trial_holder();
}

void ServiceGuards::BarTrials(const std::string& service) { barred_.insert(service); }

void ServiceGuards::EndBatch() { barred_.clear(); }

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
