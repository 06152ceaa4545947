// SlidingCounter: a count of events over a sliding time window, kept in a fixed number of equal
// buckets so that adding and reading are O(1) amortized and memory is bounded. The window read at
// `now` covers the bucket holding `now` and the buckets before it, `buckets` in all: between
// window − window/buckets and window of history. Used by the retry budget (first attempts) and
// the circuit breaker (failures and successes).
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

 private:
  // Moves the newest bucket to the one holding `now`, zeroing the buckets that slid out.
  void Advance(absl::Time now);

  const int64_t bucket_us_;
  std::vector<int64_t> counts_;
  int64_t head_ = INT64_MIN;  // Bucket index (time / bucket_us_) of the newest bucket.
  int64_t total_ = 0;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_SLIDING_COUNTER_H_
