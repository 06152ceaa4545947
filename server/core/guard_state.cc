#include "server/core/guard_state.h"

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace retryd {
namespace {

constexpr uint64_t kFormat = 1;
// Format 2 = format 1 with the HALF_OPEN trials' holder after `drained`; written only when a
// holder is set, so a state without one stays byte for byte what format 1 wrote.
constexpr uint64_t kFormatWithHolder = 2;
constexpr uint64_t kMaxHolder = 1024;
// Bounds on the lengths a decoder accepts, so that a damaged value cannot ask for gigabytes.
constexpr uint64_t kMaxBuckets = 1 << 16;
constexpr uint64_t kMaxTrials = 1 << 20;

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void PutSigned(int64_t v, std::string* out) {
  const uint64_t u = static_cast<uint64_t>(v);
  PutVarint((u << 1) ^ (v < 0 ? ~uint64_t{0} : 0), out);
}

void PutCounter(const SlidingCounter::Buckets& b, std::string* out) {
  PutVarint(static_cast<uint64_t>(b.bucket_us), out);
  PutSigned(b.head, out);
  PutVarint(b.counts.size(), out);
  for (int64_t c : b.counts) PutSigned(c, out);
}

// Reads what the Put functions wrote; every Get fails on a short or malformed input.
class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}

  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return false;
      const uint8_t byte = static_cast<uint8_t>(in_.front());
      in_.remove_prefix(1);
      *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return true;
    }
    return false;  // Longer than ten bytes.
  }
  bool Signed(int64_t* v) {
    uint64_t u;
    if (!Varint(&u)) return false;
    *v = static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1));
    return true;
  }
  bool Counter(SlidingCounter::Buckets* b) {
    uint64_t bucket_us;
    uint64_t k;
    if (!Varint(&bucket_us) || !Signed(&b->head) || !Varint(&k) || k > kMaxBuckets) return false;
    b->bucket_us = static_cast<int64_t>(bucket_us);
    b->counts.resize(k);
    for (int64_t& c : b->counts) {
      if (!Signed(&c)) return false;
    }
    return true;
  }
  // A varint length (at most `max`) and that many bytes.
  bool Bytes(uint64_t max, std::string* out) {
    uint64_t n;
    if (!Varint(&n) || n > max || n > in_.size()) return false;
    out->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  absl::string_view in_;
};

absl::Status Damaged(absl::string_view what) {
  return absl::DataLossError(absl::StrCat("stored guard state: ", what));
}

}  // namespace

std::string EncodeGuardState(const GuardState& state) {
  std::string out;
  const CircuitBreaker::Windows& c = state.circuit;
  PutVarint(c.trial_holder.empty() ? kFormat : kFormatWithHolder, &out);
  PutCounter(c.retry_failures, &out);
  PutCounter(c.first_failures, &out);
  PutCounter(c.recorded_failures, &out);
  PutCounter(c.successes, &out);
  PutVarint(c.trials.size(), &out);
  for (int64_t id : c.trials) PutSigned(id, &out);
  PutSigned(c.trial_successes, &out);
  PutVarint(c.drained ? 1 : 0, &out);
  if (!c.trial_holder.empty()) {
    PutVarint(c.trial_holder.size(), &out);
    out.append(c.trial_holder);
  }
  if (!state.budget.has_value()) {
    PutVarint(0, &out);
    return out;
  }
  PutVarint(1, &out);
  const RetryBudget::Windows& b = *state.budget;
  PutCounter(b.successes, &out);
  PutCounter(b.outcome_failures, &out);
  PutCounter(b.first_failures, &out);
  PutSigned(b.last_deferred_at == absl::InfinitePast() ? INT64_MIN
                                                       : absl::ToUnixMicros(b.last_deferred_at),
            &out);
  return out;
}

absl::StatusOr<GuardState> DecodeGuardState(absl::string_view encoded) {
  Reader r(encoded);
  uint64_t format;
  if (!r.Varint(&format)) return Damaged("empty");
  if (format != kFormat && format != kFormatWithHolder) return Damaged(absl::StrCat("unknown format ", format));
  GuardState state;
  CircuitBreaker::Windows& c = state.circuit;
  if (!r.Counter(&c.retry_failures) || !r.Counter(&c.first_failures) ||
      !r.Counter(&c.recorded_failures) || !r.Counter(&c.successes)) {
    return Damaged("circuit window cut short");
  }
  uint64_t trials;
  if (!r.Varint(&trials) || trials > kMaxTrials) return Damaged("circuit trials cut short");
  c.trials.resize(trials);
  for (int64_t& id : c.trials) {
    if (!r.Signed(&id)) return Damaged("circuit trials cut short");
  }
  uint64_t drained;
  uint64_t has_budget;
  if (!r.Signed(&c.trial_successes) || !r.Varint(&drained) || drained > 1) {
    return Damaged("circuit trials cut short");
  }
  if (format == kFormatWithHolder && !r.Bytes(kMaxHolder, &c.trial_holder)) {
    return Damaged("circuit trial holder cut short");
  }
  if (!r.Varint(&has_budget) || has_budget > 1) return Damaged("circuit trials cut short");
  c.drained = drained == 1;
  if (has_budget == 1) {
    RetryBudget::Windows& b = state.budget.emplace();
    int64_t last_deferred;
    if (!r.Counter(&b.successes) || !r.Counter(&b.outcome_failures) ||
        !r.Counter(&b.first_failures) || !r.Signed(&last_deferred)) {
      return Damaged("budget window cut short");
    }
    b.last_deferred_at = last_deferred == INT64_MIN ? absl::InfinitePast()
                                                    : absl::FromUnixMicros(last_deferred);
  }
  if (!r.done()) return Damaged("trailing bytes");
  return state;
}

}  // namespace retryd
