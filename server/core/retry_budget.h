// RetryBudget: the per-service cap on retries of DESIGN.md ("Retry budget"), so that a downstream
// outage does not turn into a retry storm.
//
// The allowance of a window is max(min_retries_per_window, floor(ratio × first attempts seen in
// the last `window`)). First attempts are what RecordOutcomes reports (successes + failures) and
// the first failures reported with ReportFailure; because a worker may report the same failed
// first attempt both ways, the two failure counts are not added: the window counts
//   successes + max(failures from RecordOutcomes, first failures from ReportFailure).
//
// The budget books each retry at the time it will run (its next_retry_at) in a ledger of
// sub-intervals ("slots", window / 60 each). The window slides: any interval of the window's
// length, wherever it starts, runs at most the allowance. Such an interval touches at most 61
// consecutive slots (it starts inside one and ends inside the 61st), so a retry may be booked in
// slot s only while every run of 61 consecutive slots that contains s holds fewer than the
// allowance, however the retries were decided. (Counting 61 slots where a window spans 60 is what
// the slots' coarseness costs: the sustained rate is the allowance per 61/60 of a window, 1.6 %
// below the allowance per window.)
//   - A retry whose wanted slot has room is booked there: bursts within the budget pass unchanged.
//   - Otherwise the budget is spent. DEFER moves the retry to the first later time that has room
//     in every run of slots and is at least one emission interval (61 slots / allowance) after
//     the previous deferred retry, so deferred retries go out evenly at the budget's rate instead
//     of bunching at the edge of the next window. DEAD_LETTER refuses it.
//   - The ledger reaches at most kMaxWindowsAhead windows ahead: a deferral that finds no room
//     that soon is refused (the caller dead-letters it with BUDGET_EXHAUSTED), and a retry wanted
//     beyond that horizon (a long Retry-After) passes unbooked.
//
// What survives a restart: the first-attempt window and the pacing of deferrals (Windows, stored
// with every batch that changes them), and the bookings of the retries still scheduled (rebuilt
// from the schedule with Restore). The bookings of retries that already ran are not kept: for up
// to one window after a restart those runs do not count against the allowance.
//
// Pure: the time is a parameter. Not thread-safe (owned by the engine's writer thread).
#ifndef RETRYD_SERVER_CORE_RETRY_BUDGET_H_
#define RETRYD_SERVER_CORE_RETRY_BUDGET_H_

#include <cstdint>
#include <algorithm>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "server/core/policy.h"
#include "server/core/sliding_counter.h"

namespace retryd {

// The budget's answer for one retry.
struct BudgetGrant {
  // False: the budget refused the retry (spent in DEAD_LETTER mode, or no room within the
  // horizon); the caller dead-letters it with BUDGET_EXHAUSTED.
  bool granted = false;
  // When the retry may run (granted only): the wanted time, or later when deferred.
  absl::Time at = absl::InfinitePast();
  // True when `at` is later than wanted because the budget was spent.
  bool deferred = false;
  // Refused because the deferral would have passed the deadline given to Acquire (the caller
  // dead-letters it with DEADLINE_EXCEEDED). Nothing was booked.
  bool past_deadline = false;
};

class RetryBudget {
 public:
  // Slots (sub-intervals) per window.
  static constexpr int kSlotsPerWindow = 60;
  // Consecutive slots an interval of the window's length can touch: every run of this many slots
  // holds at most the allowance.
  static constexpr int kSlotsChecked = kSlotsPerWindow + 1;
  // How far ahead, in windows, the ledger books.
  static constexpr int kMaxWindowsAhead = 240;

  explicit RetryBudget(const RetryBudgetSpec& spec);

  // A first failure reported with ReportFailure (not a duplicate).
  void RecordFirstFailure(absl::Time now);
  // Batched first-attempt counts from RecordOutcomes.
  void RecordOutcomes(absl::Time now, int64_t successes, int64_t failures);
  // First attempts in the window ending at `now` (see the file comment).
  int64_t FirstAttempts(absl::Time now);
  // The most retries any window may run: max(min_retries_per_window, floor(ratio × first
  // attempts)).
  int64_t Allowance(absl::Time now);
  // Retries that could still be booked at `now` without deferral: 0 once the budget is spent.
  int64_t Remaining(absl::Time now);

  // Books one retry wanted at `wanted` (earlier than `now` counts as `now`). See the file comment.
  // A deferral later than `deadline` is refused (past_deadline) and changes nothing.
  BudgetGrant Acquire(absl::Time now, absl::Time wanted,
                      absl::Time deadline = absl::InfiniteFuture());
  // Undoes an Acquire that was granted at `at` (the decision was not kept).
  void Release(absl::Time now, absl::Time at);
  // Books a retry that is already scheduled at `at`, without checking room (start-up rebuild).
  void Restore(absl::Time now, absl::Time at);
  // Forgets every booking (the schedule is being rebuilt).
  void ClearBookings();

  // What a restart keeps beyond the schedule: the first-attempt window and the pacing.
  struct Windows {
    SlidingCounter::Buckets successes;
    SlidingCounter::Buckets outcome_failures;  // From RecordOutcomes.
    SlidingCounter::Buckets first_failures;    // From ReportFailure.
    absl::Time last_deferred_at = absl::InfinitePast();
  };
  Windows SaveWindows() const;
  // Takes over stored windows. A counter saved with another window length (the policy changed)
  // starts empty; returns false when one did.
  bool LoadWindows(const Windows& windows);

  // Undo, for an op that changed the budget and then failed: Checkpoint() copies the windows and
  // pacing and starts journaling the ledger's changes; Undo() returns to the checkpoint; Forget()
  // keeps the changes. Either ends the journal.
  void Checkpoint();
  void Undo();
  void Forget();
  // Inside a checkpoint: makes the current windows and pacing what Undo returns to, keeping the
  // ledger's journal (the guards reloaded the shared windows in the middle of an op).
  void Rebase();

  // Fleet-wide guards: another replica deferred a retry to `at`; the pacing of later deferrals
  // follows the latest one.
  void NoteDeferral(absl::Time at) { last_deferred_at_ = std::max(last_deferred_at_, at); }

  // Retries booked in the slot holding `t` (for tests and diagnostics).
  int64_t BookedInSlot(absl::Time t) const;
  absl::Duration slot_length() const { return absl::Microseconds(slot_us_); }
  const RetryBudgetSpec& spec() const { return spec_; }

 private:
  int64_t SlotOf(absl::Time t) const;
  absl::Time SlotStart(int64_t slot) const;
  int64_t Count(int64_t slot) const;
  void Book(int64_t slot, int64_t delta);
  // Drops ledger slots too old to matter at `now`.
  void Trim(absl::Time now);
  // True when one more retry in `slot` keeps every run of kSlotsChecked slots containing it
  // below `allowance`.
  bool Fits(int64_t slot, int64_t allowance) const;

  const RetryBudgetSpec spec_;
  const int64_t slot_us_;
  SlidingCounter successes_;
  SlidingCounter outcome_failures_;
  SlidingCounter first_failures_;
  // ledger_[i] = retries booked in slot base_ + i.
  std::deque<int32_t> ledger_;
  int64_t base_ = 0;
  // When the latest deferred retry was booked to run; the next one runs at least one emission
  // interval (window / allowance) later.
  absl::Time last_deferred_at_ = absl::InfinitePast();

  // Undo (see Checkpoint): the state at the checkpoint, and the ledger's changes since.
  struct Saved {
    SlidingCounter successes;
    SlidingCounter outcome_failures;
    SlidingCounter first_failures;
    absl::Time last_deferred_at;
  };
  std::optional<Saved> saved_;
  bool journaling_ = false;
  std::vector<std::pair<int64_t, int64_t>> journal_;  // (slot, delta), oldest first.
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_RETRY_BUDGET_H_
