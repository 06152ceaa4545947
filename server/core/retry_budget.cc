#include "server/core/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace retryd {

RetryBudget::RetryBudget(const RetryBudgetSpec& spec)
    : spec_(spec),
      slot_us_(std::max<int64_t>(1, absl::ToInt64Microseconds(spec.window) / kSlotsPerWindow)),
      successes_(spec.window, kSlotsPerWindow),
      outcome_failures_(spec.window, kSlotsPerWindow),
      first_failures_(spec.window, kSlotsPerWindow) {}

void RetryBudget::RecordFirstFailure(absl::Time now) { first_failures_.Add(now, 1); }

void RetryBudget::RecordOutcomes(absl::Time now, int64_t successes, int64_t failures) {
  if (successes > 0) successes_.Add(now, successes);
  if (failures > 0) outcome_failures_.Add(now, failures);
}

int64_t RetryBudget::FirstAttempts(absl::Time now) {
  return successes_.Sum(now) + std::max(outcome_failures_.Sum(now), first_failures_.Sum(now));
}

int64_t RetryBudget::Allowance(absl::Time now) {
  const double scaled = std::floor(spec_.ratio * static_cast<double>(FirstAttempts(now)));
  const int64_t by_ratio = scaled >= 9e18 ? INT64_MAX : static_cast<int64_t>(scaled);
  return std::max(spec_.min_retries_per_window, by_ratio);
}

int64_t RetryBudget::Remaining(absl::Time now) {
  Trim(now);
  const int64_t allowance = Allowance(now);
  const int64_t slot = SlotOf(now);
  // The fullest run of slots containing `slot` decides.
  int64_t sum = 0;
  for (int64_t j = slot - kSlotsChecked + 1; j <= slot; ++j) sum += Count(j);
  int64_t fullest = sum;
  for (int64_t j = slot + 1; j < slot + kSlotsChecked; ++j) {
    sum += Count(j) - Count(j - kSlotsChecked);
    fullest = std::max(fullest, sum);
  }
  return std::max<int64_t>(0, allowance - fullest);
}

BudgetGrant RetryBudget::Acquire(absl::Time now, absl::Time wanted, absl::Time deadline) {
  Trim(now);
  const absl::Time t = std::max(now, wanted);
  const int64_t slot = SlotOf(t);
  const int64_t horizon = SlotOf(now) + int64_t{kMaxWindowsAhead} * kSlotsPerWindow;
  BudgetGrant grant;
  if (slot >= horizon) {  // Too far ahead to matter for a storm: passes unbooked.
    grant.granted = true;
    grant.at = t;
    return grant;
  }
  const int64_t allowance = Allowance(now);
  if (Fits(slot, allowance)) {
    Book(slot, 1);
    grant.granted = true;
    grant.at = t;
    return grant;
  }
  // With no allowance at all (a floor of 0 and no first attempts) nothing can be deferred to.
  if (spec_.when_exhausted == BudgetExhaustedAction::kDeadLetter || allowance <= 0) return grant;

  // Deferred: paced one emission interval (kSlotsChecked slots / allowance, the rate every run
  // of slots can hold) after the previous deferral, and no earlier than the first later slot that
  // has room in every run containing it.
  const int64_t interval_us =
      std::max<int64_t>(1, slot_us_ * int64_t{kSlotsChecked} / allowance);
  absl::Time at = SlotStart(slot + 1);
  if (last_deferred_at_ != absl::InfinitePast()) {
    at = std::max(at, last_deferred_at_ + absl::Microseconds(interval_us));
  }
  int64_t s = SlotOf(at);
  while (s < horizon && !Fits(s, allowance)) {
    ++s;
    at = SlotStart(s);
  }
  if (s >= horizon) return grant;
  if (at > deadline) {
    grant.past_deadline = true;
    return grant;
  }
  Book(s, 1);
  last_deferred_at_ = at;
  grant.granted = true;
  grant.at = at;
  grant.deferred = true;
  return grant;
}

void RetryBudget::Release(absl::Time now, absl::Time at) {
  const int64_t slot = SlotOf(at);
  if (Count(slot) > 0) Book(slot, -1);
  Trim(now);
}

void RetryBudget::Restore(absl::Time now, absl::Time at) {
  const int64_t slot = SlotOf(at);
  if (slot < SlotOf(now) - kSlotsChecked + 1) return;  // Already out of every window.
  if (slot >= SlotOf(now) + int64_t{kMaxWindowsAhead} * kSlotsPerWindow) return;
  Book(slot, 1);
}

void RetryBudget::ClearBookings() {
  ledger_.clear();
  last_deferred_at_ = absl::InfinitePast();
}

RetryBudget::Windows RetryBudget::SaveWindows() const {
  Windows w;
  w.successes = successes_.Save();
  w.outcome_failures = outcome_failures_.Save();
  w.first_failures = first_failures_.Save();
  w.last_deferred_at = last_deferred_at_;
  return w;
}

bool RetryBudget::LoadWindows(const Windows& w) {
  bool exact = successes_.Load(w.successes);
  exact = outcome_failures_.Load(w.outcome_failures) && exact;
  exact = first_failures_.Load(w.first_failures) && exact;
  last_deferred_at_ = w.last_deferred_at;
  return exact;
}

void RetryBudget::Checkpoint() {
  if (saved_.has_value()) {
    saved_->successes = successes_;
    saved_->outcome_failures = outcome_failures_;
    saved_->first_failures = first_failures_;
    saved_->last_deferred_at = last_deferred_at_;
  } else {
    saved_.emplace(Saved{successes_, outcome_failures_, first_failures_, last_deferred_at_});
  }
  journal_.clear();
  journaling_ = true;
}

void RetryBudget::Undo() {
  if (!journaling_) return;
  journaling_ = false;
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) Book(it->first, -it->second);
  journal_.clear();
  successes_ = saved_->successes;
  outcome_failures_ = saved_->outcome_failures;
  first_failures_ = saved_->first_failures;
  last_deferred_at_ = saved_->last_deferred_at;
}

void RetryBudget::Rebase() {
  if (!journaling_) return;
  saved_->successes = successes_;
  saved_->outcome_failures = outcome_failures_;
  saved_->first_failures = first_failures_;
  saved_->last_deferred_at = last_deferred_at_;
}

void RetryBudget::Forget() {
  journaling_ = false;
  journal_.clear();
}

int64_t RetryBudget::BookedInSlot(absl::Time t) const { return Count(SlotOf(t)); }

int64_t RetryBudget::SlotOf(absl::Time t) const {
  const int64_t us = absl::ToUnixMicros(t);
  // Floor division, also for times before the epoch.
  return us >= 0 ? us / slot_us_ : -((-us + slot_us_ - 1) / slot_us_);
}

absl::Time RetryBudget::SlotStart(int64_t slot) const {
  return absl::FromUnixMicros(slot * slot_us_);
}

int64_t RetryBudget::Count(int64_t slot) const {
  if (ledger_.empty() || slot < base_) return 0;
  const int64_t i = slot - base_;
  return i < static_cast<int64_t>(ledger_.size()) ? ledger_[i] : 0;
}

void RetryBudget::Book(int64_t slot, int64_t delta) {
  if (ledger_.empty()) base_ = slot;
  while (slot < base_) {
    ledger_.push_front(0);
    --base_;
  }
  while (slot - base_ >= static_cast<int64_t>(ledger_.size())) ledger_.push_back(0);
  ledger_[slot - base_] += static_cast<int32_t>(delta);
  if (journaling_) journal_.emplace_back(slot, delta);
}

void RetryBudget::Trim(absl::Time now) {
  // A slot older than the oldest run of slots that contains `now` can no longer matter.
  const int64_t keep_from = SlotOf(now) - kSlotsChecked + 1;
  while (!ledger_.empty() && base_ < keep_from) {
    ledger_.pop_front();
    ++base_;
  }
  while (!ledger_.empty() && ledger_.back() == 0) ledger_.pop_back();
}

bool RetryBudget::Fits(int64_t slot, int64_t allowance) const {
  if (allowance <= 0) return false;
  int64_t sum = 0;
  for (int64_t j = slot - kSlotsChecked + 1; j <= slot; ++j) sum += Count(j);
  if (sum >= allowance) return false;
  for (int64_t j = slot + 1; j < slot + kSlotsChecked; ++j) {
    sum += Count(j) - Count(j - kSlotsChecked);
    if (sum >= allowance) return false;
  }
  return true;
}

}  // namespace retryd
