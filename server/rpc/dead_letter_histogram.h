// GetDeadLetterHistogram at the door: the request's range and bucket width validated (defaults
// filled in, INVALID_ARGUMENT naming the field), the store's per-bucket counts turned into one
// series per service.
#ifndef RETRYD_SERVER_RPC_DEAD_LETTER_HISTOGRAM_H_
#define RETRYD_SERVER_RPC_DEAD_LETTER_HISTOGRAM_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "retryd/v1/admin_service.pb.h"
#include "server/store/store.h"

namespace retryd {

// Most buckets one histogram may have; a request asking for more is INVALID_ARGUMENT.
inline constexpr int64_t kMaxHistogramBuckets = 500;
// The default width is chosen to give at most this many buckets.
inline constexpr int64_t kDefaultHistogramBuckets = 100;
// The range when the request gives no `since`.
inline constexpr absl::Duration kDefaultHistogramRange = absl::Hours(24);
// Widest bucket accepted (about ten years).
inline constexpr absl::Duration kMaxHistogramWidth = absl::Hours(24 * 3660);

// The range and bucket width a histogram request asks for, defaults filled in.
struct HistogramRange {
  absl::Time since;
  absl::Time until;
  absl::Duration width;
  int64_t buckets = 0;
};

// The default bucket width for a range: the smallest of 1m, 5m, 15m, 30m, 1h, 3h, 6h, 12h, 1d
// that makes at most kDefaultHistogramBuckets buckets, or whole days beyond.
absl::Duration DefaultBucketWidth(absl::Duration range);

// Validates `req` against `now` (the default `until`). Errors name `service`, `since`, `until`
// or `bucket_width`.
absl::StatusOr<HistogramRange> HistogramRangeFromRequest(
    const v1::GetDeadLetterHistogramRequest& req, absl::Time now);

// The whole RPC body: validation, the store's count, the response.
absl::Status DeadLetterHistogram(Store& store, absl::Time now,
                                 const v1::GetDeadLetterHistogramRequest& req,
                                 v1::GetDeadLetterHistogramResponse* resp);

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_DEAD_LETTER_HISTOGRAM_H_
