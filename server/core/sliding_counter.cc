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

namespace {

// The ring position of bucket `index` (a floor modulo, also for negative indexes).
size_t Position(int64_t index, int64_t n) { return static_cast<size_t>(((index % n) + n) % n); }

}  // namespace

SlidingCounter::Buckets SlidingCounter::Save() const {
  Buckets b;
  b.bucket_us = bucket_us_;
  b.head = head_;
  if (head_ == INT64_MIN || total_ == 0) return b;
  const int64_t n = static_cast<int64_t>(counts_.size());
  b.counts.resize(counts_.size());
  size_t used = 0;
  for (int64_t age = 0; age < n; ++age) {
    b.counts[age] = counts_[Position(head_ - age, n)];
    if (b.counts[age] != 0) used = static_cast<size_t>(age) + 1;
  }
  b.counts.resize(used);
  return b;
}

bool SlidingCounter::Load(const Buckets& saved) {
  std::fill(counts_.begin(), counts_.end(), 0);
  total_ = 0;
  head_ = INT64_MIN;
  const int64_t n = static_cast<int64_t>(counts_.size());
  if (saved.bucket_us != bucket_us_ || static_cast<int64_t>(saved.counts.size()) > n) return false;
  if (saved.head == INT64_MIN) return saved.counts.empty();
  head_ = saved.head;
  for (int64_t age = 0; age < static_cast<int64_t>(saved.counts.size()); ++age) {
    counts_[Position(head_ - age, n)] = saved.counts[age];
    total_ += saved.counts[age];
  }
  return true;
}

}  // namespace retryd
