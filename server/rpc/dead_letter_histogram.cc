#include "server/rpc/dead_letter_histogram.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/rpc/filter_convert.h"
#include "server/rpc/validation.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

// Buckets of `width` needed to cover `range` (the last one may be cut short).
int64_t BucketsFor(absl::Duration range, absl::Duration width) {
  absl::Duration rest;
  const int64_t whole = absl::IDivDuration(range, width, &rest);
  return rest > absl::ZeroDuration() ? whole + 1 : whole;
}

}  // namespace

absl::Duration DefaultBucketWidth(absl::Duration range) {
  static const absl::Duration kLadder[] = {
      absl::Minutes(1), absl::Minutes(5), absl::Minutes(15), absl::Minutes(30), absl::Hours(1),
      absl::Hours(3),   absl::Hours(6),   absl::Hours(12),   absl::Hours(24)};
  for (absl::Duration w : kLadder) {
    if (BucketsFor(range, w) <= kDefaultHistogramBuckets) return w;
  }
  const int64_t days = BucketsFor(range, absl::Hours(24));
  return absl::Hours(24) * ((days + kDefaultHistogramBuckets - 1) / kDefaultHistogramBuckets);
}

absl::StatusOr<HistogramRange> HistogramRangeFromRequest(
    const v1::GetDeadLetterHistogramRequest& req, absl::Time now) {
  if (!req.service().empty()) RETURN_IF_ERROR(ValidateService("service", req.service()));
  HistogramRange r;
  r.until = now;
  if (req.has_until()) RETURN_IF_ERROR(TimestampFromProtoChecked("until", req.until(), &r.until));
  r.since = std::max(absl::UnixEpoch(), r.until - kDefaultHistogramRange);
  if (req.has_since()) RETURN_IF_ERROR(TimestampFromProtoChecked("since", req.since(), &r.since));
  // The store counts in whole microseconds.
  r.since = absl::FromUnixMicros(absl::ToUnixMicros(r.since));
  r.until = absl::FromUnixMicros(absl::ToUnixMicros(r.until));
  if (r.since >= r.until) {
    return Invalid("since", absl::StrCat("must be before until (", absl::FormatTime(r.until),
                                         "), got ", absl::FormatTime(r.since)));
  }
  const absl::Duration range = r.until - r.since;
  if (req.has_bucket_width()) {
    const google::protobuf::Duration& w = req.bucket_width();
    if (w.seconds() < 1 || w.nanos() != 0) {
      return Invalid("bucket_width", absl::StrCat("must be whole seconds, at least 1s; got ",
                                                  absl::FormatDuration(DurationFromProto(w))));
    }
    r.width = DurationFromProto(w);
    if (r.width > kMaxHistogramWidth) {
      return Invalid("bucket_width", absl::StrCat("must be at most ",
                                                  absl::FormatDuration(kMaxHistogramWidth)));
    }
  } else {
    r.width = DefaultBucketWidth(range);
  }
  r.buckets = BucketsFor(range, r.width);
  if (r.buckets > kMaxHistogramBuckets) {
    return Invalid("bucket_width",
                   absl::StrCat(absl::FormatDuration(r.width), " makes ", r.buckets,
                                " buckets of the range ", absl::FormatDuration(range),
                                "; at most ", kMaxHistogramBuckets,
                                " are allowed: choose a wider bucket or a shorter range"));
  }
  return r;
}

absl::Status DeadLetterHistogram(Store& store, absl::Time now,
                                 const v1::GetDeadLetterHistogramRequest& req,
                                 v1::GetDeadLetterHistogramResponse* resp) {
  ASSIGN_OR_RETURN(HistogramRange r, HistogramRangeFromRequest(req, now));
  ASSIGN_OR_RETURN(std::vector<HistogramCell> cells,
                   store.DeadLetterHistogram(req.service(), r.since, r.until, r.width));
  TimeToProto(r.since, resp->mutable_since());
  TimeToProto(r.until, resp->mutable_until());
  DurationToProto(r.width, resp->mutable_bucket_width());
  for (int64_t i = 0; i < r.buckets; ++i) {
    TimeToProto(r.since + r.width * i, resp->add_bucket_starts());
  }
  v1::DeadLetterSeries* series = nullptr;
  auto new_series = [&](const std::string& service) {
    series = resp->add_series();
    series->set_service(service);
    series->mutable_counts()->Resize(static_cast<int>(r.buckets), 0);
  };
  for (const HistogramCell& cell : cells) {
    if (cell.bucket < 0 || cell.bucket >= r.buckets) {
      return absl::InternalError(absl::StrCat("dead-letter histogram: the store answered bucket ",
                                              cell.bucket, " of ", r.buckets));
    }
    if (series == nullptr || series->service() != cell.service) new_series(cell.service);
    series->set_counts(static_cast<int>(cell.bucket), cell.count);
    series->set_total(series->total() + cell.count);
  }
  // A named service always has its series, zeros included.
  if (!req.service().empty() && resp->series().empty()) new_series(req.service());
  return absl::OkStatus();
}

}  // namespace retryd
