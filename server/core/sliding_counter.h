// SlidingCounter: a count of events over a sliding time window, kept in a fixed number of equal
// buckets so that adding and reading are O(1) amortized and memory is bounded. The window read at
// `now` covers the bucket holding `now` and the buckets before it, `buckets` in all: between
// window − window/buckets and window of history. Used by the retry budget (first attempts) and
// the circuit breaker (failures and successes). A value type: copying it copies the counts (the
// guards' undo of a failed op does).
//
// Not thread-safe: owned by the engine's writer thread.
#ifndef RETRYD_SERVER_CORE_SLIDING_COUNTER_H_
#define RETRYD_SERVER_CORE_SLIDING_COUNTER_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace retryd {

class SlidingCounter {
 public:
  // REQUIRES: window >= 1 µs × buckets, buckets >= 1.
  SlidingCounter(absl::Duration window, int buckets);

  // Adds `n` events at `now`. Times must not go backwards by more than a bucket (an earlier time
  // is counted in the newest bucket).
  void Add(absl::Time now, int64_t n);
  // Events in the window ending at `now`.
  int64_t Sum(absl::Time now);
  // Forgets everything.
  void Clear();

  // The counts as stored (server/core/guard_state.h).
  struct Buckets {
    int64_t bucket_us = 0;     // Bucket length.
    int64_t head = INT64_MIN;  // Index (unix µs / bucket_us) of the newest bucket; INT64_MIN: none.
    // counts[age] is the count of bucket head − age; zeros after the last nonzero are left out.
    std::vector<int64_t> counts;
  };
  Buckets Save() const;
  // Takes over saved counts, exactly. Returns false, and forgets everything, when they were saved
  // with another bucket length or more buckets (the policy's window changed).
  bool Load(const Buckets& saved);

 private:
  // Moves the newest bucket to the one holding `now`, zeroing the buckets that slid out.
  void Advance(absl::Time now);

  int64_t bucket_us_;  // Not const, so that the counter can be assigned.
  std::vector<int64_t> counts_;
  int64_t head_ = INT64_MIN;  // Bucket index (time / bucket_us_) of the newest bucket.
  int64_t total_ = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_SLIDING_COUNTER_H_
