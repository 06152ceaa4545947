// The structured Filter at the door: validation (INVALID_ARGUMENT naming the field, e.g.
// "filter.error_classes[2]: ...") and conversion to the domain EnvelopeFilter.
#ifndef RETRYD_SERVER_RPC_FILTER_CONVERT_H_
#define RETRYD_SERVER_RPC_FILTER_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "google/protobuf/timestamp.pb.h"
#include "retryd/v1/envelope.pb.h"
#include "server/core/filter.h"

namespace retryd {

// Most values in one repeated filter field.
inline constexpr int kMaxFilterValues = 100;

// Validates `f` (its fields named under `field`, e.g. "filter") and converts it. Checks: service
// pattern; at most kMaxFilterValues values per list; error codes 1..128 bytes; classes and
// reasons named (not UNSPECIFIED, not unknown numbers); schema versions at most 64 bytes;
// message ids 1..256 bytes; fingerprints 16 lowercase hex digits; valid timestamps with
// after <= before.
absl::StatusOr<EnvelopeFilter> FilterFromProto(const v1::Filter& f, absl::string_view field);

// A request timestamp: INVALID_ARGUMENT "<field>: is not a valid timestamp" outside
// 1970-01-01..9999-12-31 or with nanos out of range.
absl::Status TimestampFromProtoChecked(absl::string_view field,
                                       const google::protobuf::Timestamp& t, absl::Time* out);

// A repeated string field of a filter: at most kMaxFilterValues values, each min..max bytes
// (INVALID_ARGUMENT naming "<field>" or "<field>[i]"); appended to `out`.
absl::Status FilterStrings(absl::string_view field,
                           const google::protobuf::RepeatedPtrField<std::string>& in, size_t min,
                           size_t max, std::vector<std::string>* out);

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_FILTER_CONVERT_H_
