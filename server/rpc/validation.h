// Validation of untrusted requests at the door, before anything is touched. Each function returns
// INVALID_ARGUMENT naming the offending field (e.g. "envelope.service: ..."), RESOURCE_EXHAUSTED
// for an over-size payload, or OK.
#ifndef RETRYD_SERVER_RPC_VALIDATION_H_
#define RETRYD_SERVER_RPC_VALIDATION_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "retryd/v1/admin_service.pb.h"
#include "retryd/v1/retry_service.pb.h"

namespace retryd {

struct RequestLimits {
  int64_t max_payload_bytes = 1 << 20;
};

// Bounds shared by the API (see the proto comments).
// Lease: more than kMaxLeaseMessages is reduced to it (as page sizes are).
inline constexpr int kMaxLeaseMessages = 1000;
inline constexpr absl::Duration kMinVisibilityTimeout = absl::Milliseconds(10);
inline constexpr absl::Duration kMaxVisibilityTimeout = absl::Hours(12);
inline constexpr absl::Duration kDefaultVisibilityTimeout = absl::Seconds(30);
inline constexpr absl::Duration kMaxWaitTime = absl::Seconds(20);
// Longest operator note (audit log), in bytes.
inline constexpr size_t kMaxNoteBytes = 1024;

[[nodiscard]] absl::Status ValidateService(absl::string_view field, absl::string_view service);
[[nodiscard]] absl::Status ValidateReportFailure(const v1::ReportFailureRequest& req,
                                                 const RequestLimits& limits, absl::Time now);
[[nodiscard]] absl::Status ValidateLease(const v1::LeaseRequest& req);
[[nodiscard]] absl::Status ValidateReportSuccess(const v1::ReportSuccessRequest& req);
[[nodiscard]] absl::Status ValidateExtendLease(const v1::ExtendLeaseRequest& req);
[[nodiscard]] absl::Status ValidateRecordOutcomes(const v1::RecordOutcomesRequest& req);
[[nodiscard]] absl::Status ValidateGetEnvelope(const v1::GetEnvelopeRequest& req);
[[nodiscard]] absl::Status ValidateSetCircuitOverride(const v1::SetCircuitOverrideRequest& req);
// page_size: negative is an error; returns the effective size (0 -> 50, >1000 -> 1000).
[[nodiscard]] absl::Status ValidatePageSize(int32_t page_size, int* effective);

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_VALIDATION_H_
