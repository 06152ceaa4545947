#include "server/core/circuit_breaker.h"

#include <algorithm>
#include <utility>

namespace retryd {

absl::string_view CircuitStateName(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return "CLOSED";
    case CircuitState::kOpen:
      return "OPEN";
    case CircuitState::kHalfOpen:
      return "HALF_OPEN";
    default:
      return "CIRCUIT_STATE_UNSPECIFIED";
  }
}

absl::string_view CircuitOverrideName(CircuitOverride o) {
  switch (o) {
    case CircuitOverride::kAuto:
      return "AUTO";
    case CircuitOverride::kForceOpen:
      return "FORCE_OPEN";
    case CircuitOverride::kForceClosed:
      return "FORCE_CLOSED";
    default:
      return "CIRCUIT_OVERRIDE_UNSPECIFIED";
  }
}

CircuitBreaker::CircuitBreaker(const CircuitSpec& spec, absl::Time now)
    : spec_(spec),
      retry_failures_(spec.window, kWindowBuckets),
      first_failures_(spec.window, kWindowBuckets),
      recorded_failures_(spec.window, kWindowBuckets),
      successes_(spec.window, kWindowBuckets) {
  record_.since = now;
}

void CircuitBreaker::Restore(const CircuitRecord& record) {
  const std::string service = record_.service;
  record_ = record;
  record_.service = service;
  record_.windows.clear();
  if (!spec_.enabled && record_.state != CircuitState::kClosed) {
    // The policy no longer enables the breaker: its automatic state can only be CLOSED.
    record_.state = CircuitState::kClosed;
    record_.next_probe_at = absl::InfinitePast();
  }
  ResetTrials();
  ClearWindow();
}

CircuitRecord CircuitBreaker::Record() const { return record_; }

CircuitBreaker::Windows CircuitBreaker::SaveWindows() const {
  Windows w;
  w.retry_failures = retry_failures_.Save();
  w.first_failures = first_failures_.Save();
  w.recorded_failures = recorded_failures_.Save();
  w.successes = successes_.Save();
  w.trials = trials_;
  w.trial_successes = trial_successes_;
  w.drained = drained_;
  w.trial_holder = trial_holder_;
  return w;
}

bool CircuitBreaker::LoadWindows(const Windows& w) {
  bool exact = retry_failures_.Load(w.retry_failures);
  exact = first_failures_.Load(w.first_failures) && exact;
  exact = recorded_failures_.Load(w.recorded_failures) && exact;
  exact = successes_.Load(w.successes) && exact;
  trials_ = w.trials;
  trial_successes_ = w.trial_successes;
  drained_ = w.drained;
  trial_holder_ = w.trial_holder;
  return exact;
}

void CircuitBreaker::Checkpoint() {
  if (!saved_.has_value()) {
    saved_.emplace(Saved{record_, retry_failures_, first_failures_, recorded_failures_,
                         successes_, trials_, trial_successes_, drained_, trial_holder_});
    return;
  }
  Saved& s = *saved_;
  s.record = record_;
  s.retry_failures = retry_failures_;
  s.first_failures = first_failures_;
  s.recorded_failures = recorded_failures_;
  s.successes = successes_;
  s.trials = trials_;
  s.trial_successes = trial_successes_;
  s.drained = drained_;
  s.trial_holder = trial_holder_;
}

void CircuitBreaker::Undo() {
  if (!saved_.has_value()) return;
  const Saved& s = *saved_;
  record_ = s.record;
  retry_failures_ = s.retry_failures;
  first_failures_ = s.first_failures;
  recorded_failures_ = s.recorded_failures;
  successes_ = s.successes;
  trials_ = s.trials;
  trial_successes_ = s.trial_successes;
  drained_ = s.drained;
  trial_holder_ = s.trial_holder;
}

bool CircuitBreaker::Advance(absl::Time now) {
  if (record_.override_mode != CircuitOverride::kAuto) return false;
  if (record_.state == CircuitState::kOpen && now >= record_.next_probe_at) {
    // It turned HALF_OPEN when the open duration ran out, however late this call comes.
    HalfOpen(record_.next_probe_at);
    return true;
  }
  return false;
}

absl::Time CircuitBreaker::NextTransition() const {
  if (record_.override_mode == CircuitOverride::kAuto && record_.state == CircuitState::kOpen) {
    return record_.next_probe_at;
  }
  return absl::InfiniteFuture();
}

int64_t CircuitBreaker::LeaseAllowance() const {
  switch (state()) {
    case CircuitState::kOpen:
      return 0;
    case CircuitState::kHalfOpen:
      return std::max<int64_t>(0, spec_.half_open_trials - static_cast<int64_t>(trials_.size()));
    default:
      return INT64_MAX;
  }
}

bool CircuitBreaker::OnLeased(absl::Time now, const std::vector<int64_t>& envelope_ids,
                              bool drained) {
  if (state() != CircuitState::kHalfOpen) return false;
  trials_.insert(trials_.end(), envelope_ids.begin(), envelope_ids.end());
  drained_ = drained;
  return MaybeCloseAfterTrials(now);
}

bool CircuitBreaker::OnSuccess(absl::Time now, int64_t envelope_id) {
  const bool changed = Advance(now);
  successes_.Add(now, 1);
  if (state() != CircuitState::kHalfOpen || !IsTrial(envelope_id)) return changed;
  ++trial_successes_;
  return MaybeCloseAfterTrials(now) || changed;
}

bool CircuitBreaker::OnFirstAttemptOutcomes(absl::Time now, int64_t successes, int64_t failures) {
  const bool changed = Advance(now);
  if (successes > 0) successes_.Add(now, successes);
  if (failures <= 0) return changed;
  recorded_failures_.Add(now, failures);
  return MaybeTrip(now) || changed;
}

bool CircuitBreaker::OnFailure(absl::Time now, ErrorClass error_class, int64_t envelope_id) {
  bool changed = Advance(now);
  const bool counted =
      error_class == ErrorClass::kTransient || error_class == ErrorClass::kRecoverable;
  if (!counted) {
    // A PERMANENT outcome says nothing about the downstream's health: a trial that ends so
    // frees its place for another.
    if (state() == CircuitState::kHalfOpen && IsTrial(envelope_id)) {
      trials_.erase(std::find(trials_.begin(), trials_.end(), envelope_id));
      return MaybeCloseAfterTrials(now) || changed;
    }
    return changed;
  }
  (envelope_id == 0 ? first_failures_ : retry_failures_).Add(now, 1);
  if (record_.override_mode != CircuitOverride::kAuto || !spec_.enabled) return changed;
  if (record_.state == CircuitState::kHalfOpen) {
    if (!IsTrial(envelope_id)) return changed;
    // Doubles the open duration in force; a HALF_OPEN that followed FORCE_OPEN had none.
    const absl::Duration next = record_.open_duration > absl::ZeroDuration()
                                    ? std::min(record_.open_duration * 2, spec_.max_open_duration)
                                    : spec_.open_duration;
    Open(now, next);
    return true;
  }
  return MaybeTrip(now) || changed;
}

bool CircuitBreaker::MaybeTrip(absl::Time now) {
  if (record_.override_mode != CircuitOverride::kAuto || !spec_.enabled) return false;
  if (record_.state != CircuitState::kClosed) return false;
  const int64_t failures = Failures(now);
  const int64_t calls = failures + successes_.Sum(now);
  if (calls < spec_.minimum_calls) return false;
  if (static_cast<double>(failures) < spec_.failure_rate_threshold * static_cast<double>(calls)) {
    return false;
  }
  Open(now, spec_.open_duration);
  return true;
}

bool CircuitBreaker::MaybeCloseAfterTrials(absl::Time now) {
  if (record_.override_mode != CircuitOverride::kAuto || record_.state != CircuitState::kHalfOpen) {
    return false;
  }
  if (trials_.empty() || trial_successes_ < static_cast<int64_t>(trials_.size())) return false;
  if (trial_successes_ < spec_.half_open_trials && !drained_) return false;
  Close(now);
  return true;
}

int64_t CircuitBreaker::Failures(absl::Time now) {
  return retry_failures_.Sum(now) +
         std::max(first_failures_.Sum(now), recorded_failures_.Sum(now));
}

void CircuitBreaker::ClearWindow() {
  retry_failures_.Clear();
  first_failures_.Clear();
  recorded_failures_.Clear();
  successes_.Clear();
}

bool CircuitBreaker::SetOverride(absl::Time now, CircuitOverride mode, std::string note,
                                 std::string peer) {
  const CircuitOverride before = record_.override_mode;
  record_.override_mode = mode;
  record_.override_note = std::move(note);
  record_.override_peer = std::move(peer);
  record_.override_at = now;
  if (mode == CircuitOverride::kAuto && before != CircuitOverride::kAuto) {
    if (before == CircuitOverride::kForceOpen && spec_.enabled) {
      HalfOpen(now);  // Probe before letting everything through.
    } else {
      Close(now);
    }
  }
  return true;
}

CircuitView CircuitBreaker::View(absl::Time now) {
  Advance(now);
  CircuitView v;
  v.state = state();
  v.since = record_.override_mode == CircuitOverride::kAuto ? record_.since : record_.override_at;
  if (v.state == CircuitState::kOpen && record_.override_mode == CircuitOverride::kAuto) {
    v.next_probe_at = record_.next_probe_at;
  }
  v.failure_rate = FailureRate(now);
  v.override_mode = record_.override_mode;
  return v;
}

CircuitState CircuitBreaker::state() const {
  switch (record_.override_mode) {
    case CircuitOverride::kForceOpen:
      return CircuitState::kOpen;
    case CircuitOverride::kForceClosed:
      return CircuitState::kClosed;
    default:
      return record_.state;
  }
}

double CircuitBreaker::FailureRate(absl::Time now) {
  const int64_t failures = Failures(now);
  const int64_t calls = failures + successes_.Sum(now);
  return calls == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(calls);
}

void CircuitBreaker::Open(absl::Time now, absl::Duration duration) {
  record_.state = CircuitState::kOpen;
  record_.since = now;
  record_.open_duration = duration;
  record_.next_probe_at = now + duration;
  ResetTrials();
}

void CircuitBreaker::Close(absl::Time now) {
  record_.state = CircuitState::kClosed;
  record_.since = now;
  record_.open_duration = absl::ZeroDuration();
  record_.next_probe_at = absl::InfinitePast();
  ResetTrials();
  ClearWindow();
}

void CircuitBreaker::HalfOpen(absl::Time now) {
  record_.state = CircuitState::kHalfOpen;
  record_.since = now;
  record_.next_probe_at = absl::InfinitePast();
  ResetTrials();
}

void CircuitBreaker::ResetTrials() {
  trials_.clear();
  trial_successes_ = 0;
  drained_ = false;
  trial_holder_.clear();
}

void CircuitBreaker::SetTrialHolder(const std::string& replica) {
  if (state() == CircuitState::kHalfOpen) trial_holder_ = replica;
}

bool CircuitBreaker::IsTrial(int64_t envelope_id) const {
  return envelope_id != 0 &&
         std::find(trials_.begin(), trials_.end(), envelope_id) != trials_.end();
}

}  // namespace retryd
