#include "server/core/sliding_counter.h"

#include <algorithm>

namespace retryd {

SlidingCounter::SlidingCounter(absl::Duration window, int buckets)
    : bucket_us_(std::max<int64_t>(1, absl::ToInt64Microseconds(window) / std::max(1, buckets))),
      counts_(std::max(1, buckets), 0) {}

void SlidingCounter::Advance(absl::Time now) {
  const int64_t index = absl::ToUnixMicros(now) / bucket_us_;
  const int64_t n = static_cast<int64_t>(counts_.size());
  if (head_ == INT64_MIN || index - head_ >= n) {
    std::fill(counts_.begin(), counts_.end(), 0);
    total_ = 0;
    head_ = index;
    return;
  }
  while (head_ < index) {
    ++head_;
    int64_t& slot = counts_[head_ % n];
    total_ -= slot;
    slot = 0;
  }
}

void SlidingCounter::Add(absl::Time now, int64_t n) {
  Advance(now);
  counts_[head_ % static_cast<int64_t>(counts_.size())] += n;
  total_ += n;
}

int64_t SlidingCounter::Sum(absl::Time now) {
  Advance(now);
  return total_;
}

void SlidingCounter::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
}

}  // namespace retryd
