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
    : spec_(spec), failures_(spec.window, kWindowBuckets), successes_(spec.window, kWindowBuckets) {
  record_.since = now;
}

void CircuitBreaker::Restore(const CircuitRecord& record) {
  const std::string service = record_.service;
  record_ = record;
  record_.service = service;
  if (!spec_.enabled && record_.state != CircuitState::kClosed) {
    // The policy no longer enables the breaker: its automatic state can only be CLOSED.
    record_.state = CircuitState::kClosed;
    record_.next_probe_at = absl::InfinitePast();
  }
  trials_.clear();
  trial_successes_ = 0;
  failures_.Clear();
  successes_.Clear();
}

CircuitRecord CircuitBreaker::Record() const { return record_; }

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

void CircuitBreaker::OnLeased(const std::vector<int64_t>& envelope_ids) {
  if (state() != CircuitState::kHalfOpen) return;
  trials_.insert(trials_.end(), envelope_ids.begin(), envelope_ids.end());
}

bool CircuitBreaker::OnSuccess(absl::Time now, int64_t envelope_id) {
  const bool changed = Advance(now);
  successes_.Add(now, 1);
  if (state() != CircuitState::kHalfOpen || !IsTrial(envelope_id)) return changed;
  ++trial_successes_;
  if (trial_successes_ < spec_.half_open_trials) return changed;
  Close(now);
  return true;
}

void CircuitBreaker::OnFirstAttemptSuccesses(absl::Time now, int64_t count) {
  if (count > 0) successes_.Add(now, count);
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
    }
    return changed;
  }
  failures_.Add(now, 1);
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
  if (record_.state != CircuitState::kClosed) return changed;
  const int64_t failures = failures_.Sum(now);
  const int64_t calls = failures + successes_.Sum(now);
  if (calls < spec_.minimum_calls) return changed;
  if (static_cast<double>(failures) < spec_.failure_rate_threshold * static_cast<double>(calls)) {
    return changed;
  }
  Open(now, spec_.open_duration);
  return true;
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
  const int64_t failures = failures_.Sum(now);
  const int64_t calls = failures + successes_.Sum(now);
  return calls == 0 ? 0.0 : static_cast<double>(failures) / static_cast<double>(calls);
}

void CircuitBreaker::Open(absl::Time now, absl::Duration duration) {
  record_.state = CircuitState::kOpen;
  record_.since = now;
  record_.open_duration = duration;
  record_.next_probe_at = now + duration;
  trials_.clear();
  trial_successes_ = 0;
}

void CircuitBreaker::Close(absl::Time now) {
  record_.state = CircuitState::kClosed;
  record_.since = now;
  record_.open_duration = absl::ZeroDuration();
  record_.next_probe_at = absl::InfinitePast();
  trials_.clear();
  trial_successes_ = 0;
  failures_.Clear();
  successes_.Clear();
}

void CircuitBreaker::HalfOpen(absl::Time now) {
  record_.state = CircuitState::kHalfOpen;
  record_.since = now;
  record_.next_probe_at = absl::InfinitePast();
  trials_.clear();
  trial_successes_ = 0;
}

bool CircuitBreaker::IsTrial(int64_t envelope_id) const {
  return envelope_id != 0 &&
         std::find(trials_.begin(), trials_.end(), envelope_id) != trials_.end();
}

}  // namespace retryd
