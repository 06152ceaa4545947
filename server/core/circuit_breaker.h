// CircuitBreaker: the per-service, fleet-wide breaker of DESIGN.md ("Circuit").
//
//   CLOSED    → OPEN       when, in the window, failures / (failures + successes) reaches
//                          failure_rate_threshold with at least minimum_calls outcomes. Failures
//                          are TRANSIENT and RECOVERABLE ones (a lease expiry is TRANSIENT);
//                          PERMANENT failures are not counted.
//   OPEN      → HALF_OPEN  once open_duration has passed (at next_probe_at, which becomes its
//                          `since`). Nothing is leased while OPEN.
//   HALF_OPEN → CLOSED     when half_open_trials trial leases have succeeded. At most
//                          half_open_trials envelopes are leased as trials; a trial whose
//                          outcome is PERMANENT frees its place for another.
//   HALF_OPEN → OPEN       when a trial fails (TRANSIENT/RECOVERABLE, or its lease expires),
//                          for twice the previous open duration, capped at max_open_duration.
// Entering CLOSED clears the window and resets the open duration. Outcomes other than the trials'
// are counted in the window (for failure_rate) but move nothing while OPEN or HALF_OPEN.
//
// Overrides: FORCE_OPEN (nothing leased, no probe) and FORCE_CLOSED (everything leased, never
// trips) suspend the automatic machine; AUTO resumes it — from FORCE_OPEN through HALF_OPEN
// (trials first), from FORCE_CLOSED as CLOSED with an empty window. A breaker whose policy has
// `enabled = false` stays CLOSED unless forced.
//
// What survives a restart is CircuitRecord (state, since, next probe, open duration, override)
// and the Windows (the failure-rate window's counts and the HALF_OPEN trials handed out with
// their outcomes so far), stored with every batch that changes them, so a restart resumes the
// breaker exactly: no second set of trials, and the window counts what it counted before.
//
// Pure: the time is a parameter. Not thread-safe (owned by the engine's writer thread).
#ifndef RETRYD_SERVER_CORE_CIRCUIT_BREAKER_H_
#define RETRYD_SERVER_CORE_CIRCUIT_BREAKER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"
#include "server/core/sliding_counter.h"

namespace retryd {

// Values equal the proto enums' numbers.
enum class CircuitState : int { kUnspecified = 0, kClosed = 1, kOpen = 2, kHalfOpen = 3 };
enum class CircuitOverride : int { kUnspecified = 0, kAuto = 1, kForceOpen = 2, kForceClosed = 3 };

absl::string_view CircuitStateName(CircuitState s);        // "CLOSED", ...
absl::string_view CircuitOverrideName(CircuitOverride o);  // "AUTO", ...

// A circuit as the store keeps it.
struct CircuitRecord {
  std::string service;
  // The automatic machine's state and when it entered it.
  CircuitState state = CircuitState::kClosed;
  absl::Time since = absl::InfinitePast();
  // OPEN only: when it turns HALF_OPEN.
  absl::Time next_probe_at = absl::InfinitePast();
  // The open duration in force (doubled by each failed probe); zero = the policy's.
  absl::Duration open_duration = absl::ZeroDuration();
  CircuitOverride override_mode = CircuitOverride::kAuto;
  // The last override: its note, the caller's peer address and when it was set.
  std::string override_note;
  std::string override_peer;
  absl::Time override_at = absl::InfinitePast();
  // The service's guard windows: the breaker's Windows and the retry budget's, encoded as
  // server/core/guard_state.h says; opaque to the store. Empty: none stored (the windows start
  // empty, as they did before schema version 7).
  std::string windows;
};

// What readers see (GetCircuit, Lease, ListServices).
struct CircuitView {
  CircuitState state = CircuitState::kClosed;  // Effective: the override applied.
  absl::Time since = absl::InfinitePast();
  absl::Time next_probe_at = absl::InfinitePast();  // Automatic OPEN only.
  double failure_rate = 0;
  CircuitOverride override_mode = CircuitOverride::kAuto;
};

class CircuitBreaker {
 public:
  // Buckets of the failure-rate window.
  static constexpr int kWindowBuckets = 60;

  // A CLOSED breaker since `now`.
  CircuitBreaker(const CircuitSpec& spec, absl::Time now);

  // Takes over a stored state (start-up). Trials and the window start empty (LoadWindows
  // restores them).
  void Restore(const CircuitRecord& record);
  // The state to store (service and windows left empty).
  CircuitRecord Record() const;

  // What a restart needs beyond the record: the window's counts and the HALF_OPEN trials.
  struct Windows {
    SlidingCounter::Buckets retry_failures;
    SlidingCounter::Buckets first_failures;
    SlidingCounter::Buckets recorded_failures;
    SlidingCounter::Buckets successes;
    std::vector<int64_t> trials;  // Envelope ids leased as trials, in lease order.
    int64_t trial_successes = 0;
    bool drained = false;
    // Fleet-wide guards (server/core/guard_sync.h): the replica that claimed this HALF_OPEN and
    // alone leases its trials; empty: not claimed (always so with one process).
    std::string trial_holder;
  };
  Windows SaveWindows() const;
  // Takes over stored windows (after Restore). A counter saved with another window length (the
  // policy changed) starts empty; returns false when one did.
  bool LoadWindows(const Windows& windows);

  // Undo, for an op that changed the breaker and then failed: Checkpoint() copies the whole
  // state (no allocation once warm), Undo() returns to the last checkpoint.
  void Checkpoint();
  void Undo();

  // Applies the time-driven transition (OPEN → HALF_OPEN at next_probe_at). Returns true when
  // the state changed (the caller stores Record()).
  bool Advance(absl::Time now);
  // When Advance would next change something; InfiniteFuture if nothing is pending.
  absl::Time NextTransition() const;

  // How many envelopes Lease may hand out now: unlimited (INT64_MAX) when CLOSED, 0 when OPEN,
  // the trials left when HALF_OPEN. Call Advance first.
  int64_t LeaseAllowance() const;
  // Envelopes just leased (maybe none); in HALF_OPEN they become the trials. `drained`: the
  // lease took every due envelope there was, so no further trial is coming yet. HALF_OPEN closes
  // once every trial handed out has succeeded and either `half_open_trials` of them did or the
  // schedule was drained (fewer were due). Returns true when the state changed.
  bool OnLeased(absl::Time now, const std::vector<int64_t>& envelope_ids, bool drained);

  // Outcomes. `envelope_id` is the leased envelope's id for a leased retry, 0 for a first
  // failure. Each returns true when the state changed.
  bool OnSuccess(absl::Time now, int64_t envelope_id);
  bool OnFailure(absl::Time now, ErrorClass error_class, int64_t envelope_id);
  // First attempts counted by the worker (RecordOutcomes). A worker may report a failed first
  // attempt here and with ReportFailure too, so the window counts the larger of the two
  // first-failure counts, never their sum.
  bool OnFirstAttemptOutcomes(absl::Time now, int64_t successes, int64_t failures);

  // HALF_OPEN only (ignored otherwise): names the replica that holds the trials (see
  // Windows::trial_holder). Entering any state clears it.
  void SetTrialHolder(const std::string& replica);
  const std::string& trial_holder() const { return trial_holder_; }
  // HALF_OPEN: the trials leased so far, and when it turned HALF_OPEN.
  size_t trials_leased() const { return trials_.size(); }
  absl::Time since() const { return record_.since; }

  // Sets the override; returns true when anything stored changed.
  bool SetOverride(absl::Time now, CircuitOverride mode, std::string note, std::string peer);

  CircuitView View(absl::Time now);
  // Effective state (the override applied).
  CircuitState state() const;
  // Failure rate in the window ending at `now`, 0..1 (0 with no outcomes).
  double FailureRate(absl::Time now);
  const CircuitSpec& spec() const { return spec_; }

 private:
  void Open(absl::Time now, absl::Duration duration);
  void Close(absl::Time now);
  void HalfOpen(absl::Time now);
  bool IsTrial(int64_t envelope_id) const;
  // CLOSED → OPEN when the window's failure rate reaches the threshold.
  bool MaybeTrip(absl::Time now);
  // HALF_OPEN → CLOSED when the trials so far all succeeded and no more are expected.
  bool MaybeCloseAfterTrials(absl::Time now);
  int64_t Failures(absl::Time now);
  void ResetTrials();
  void ClearWindow();

  const CircuitSpec spec_;
  CircuitRecord record_;
  // Counted failures (TRANSIENT/RECOVERABLE): of leased retries (and expired leases), of first
  // attempts reported with ReportFailure, and of first attempts counted by RecordOutcomes.
  SlidingCounter retry_failures_;
  SlidingCounter first_failures_;
  SlidingCounter recorded_failures_;
  SlidingCounter successes_;
  // HALF_OPEN: the envelopes leased as trials, how many of them succeeded, and whether a lease
  // found no more due envelopes to try.
  std::vector<int64_t> trials_;
  int64_t trial_successes_ = 0;
  bool drained_ = false;
  std::string trial_holder_;

  // The state at the last Checkpoint().
  struct Saved {
    CircuitRecord record;
    SlidingCounter retry_failures;
    SlidingCounter first_failures;
    SlidingCounter recorded_failures;
    SlidingCounter successes;
    std::vector<int64_t> trials;
    int64_t trial_successes;
    bool drained;
    std::string trial_holder;
  };
  std::optional<Saved> saved_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_CIRCUIT_BREAKER_H_
