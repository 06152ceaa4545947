// absl::Time/Duration <-> google.protobuf.Timestamp/Duration and unix microseconds (how times
// are stored). absl::InfinitePast() stands for "unset".
#ifndef RETRYD_SERVER_UTIL_TIME_CONVERSION_H_
#define RETRYD_SERVER_UTIL_TIME_CONVERSION_H_

#include <cstdint>

#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace retryd {

inline absl::Duration DurationFromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

inline void DurationToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t nanos = absl::ToInt64Nanoseconds(d);
  out->set_seconds(nanos / 1000000000);
  out->set_nanos(static_cast<int32_t>(nanos % 1000000000));
}

// An all-zero Timestamp (unset) maps to InfinitePast.
inline absl::Time TimeFromProto(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// InfinitePast leaves `out` cleared (unset).
inline void TimeToProto(absl::Time t, google::protobuf::Timestamp* out) {
  if (t == absl::InfinitePast()) {
    out->Clear();
    return;
  }
  const int64_t micros = absl::ToUnixMicros(t);
  int64_t secs = micros / 1000000;
  int64_t rem = micros % 1000000;
  if (rem < 0) {
    rem += 1000000;
    --secs;
  }
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(rem * 1000));
}

// Stored form: unix microseconds; InfinitePast is stored as INT64_MIN.
inline int64_t ToStoredMicros(absl::Time t) {
  return t == absl::InfinitePast() ? INT64_MIN : absl::ToUnixMicros(t);
}
inline absl::Time FromStoredMicros(int64_t us) {
  return us == INT64_MIN ? absl::InfinitePast() : absl::FromUnixMicros(us);
}

}  // namespace retryd

#endif  // RETRYD_SERVER_UTIL_TIME_CONVERSION_H_
