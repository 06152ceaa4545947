// The structured Filter at the door: validation (INVALID_ARGUMENT naming the field, e.g.
// "filter.error_classes[2]: ...") and conversion to the domain EnvelopeFilter.
#ifndef RETRYD_SERVER_RPC_FILTER_CONVERT_H_
#define RETRYD_SERVER_RPC_FILTER_CONVERT_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_FILTER_CONVERT_H_
