#include "server/rpc/validation.h"

#include "absl/strings/str_cat.h"
#include "server/core/policy_set.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z
constexpr absl::Duration kMaxClockSkew = absl::Minutes(5);
constexpr absl::Duration kMaxRetryAfter = absl::Hours(24 * 30);

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status MaxBytes(absl::string_view field, absl::string_view value, size_t max) {
  if (value.size() > max) {
    return Invalid(field, absl::StrCat("must be at most ", max, " bytes, got ", value.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidDuration(absl::string_view field, const google::protobuf::Duration& d,
                           absl::Duration min, absl::Duration max) {
  if (d.seconds() < -315576000000 || d.seconds() > 315576000000 || d.nanos() <= -1000000000 ||
      d.nanos() >= 1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return Invalid(field, "is not a valid duration");
  }
  const absl::Duration v = DurationFromProto(d);
  if (v < min || v > max) {
    return Invalid(field, absl::StrCat("must be between ", absl::FormatDuration(min), " and ",
                                       absl::FormatDuration(max), ", got ",
                                       absl::FormatDuration(v)));
  }
  return absl::OkStatus();
}

bool ValidTimestamp(const google::protobuf::Timestamp& t) {
  return t.seconds() >= 0 && t.seconds() <= kMaxTimestampSeconds && t.nanos() >= 0 &&
         t.nanos() <= 999999999;
}

absl::Status ValidateEnvelope(const v1::Envelope& e, const RequestLimits& limits, absl::Time now) {
  RETURN_IF_ERROR(ValidateService("envelope.service", e.service()));
  if (e.message_id().empty()) return Invalid("envelope.message_id", "is required");
  RETURN_IF_ERROR(MaxBytes("envelope.message_id", e.message_id(), 256));
  RETURN_IF_ERROR(MaxBytes("envelope.trace_id", e.trace_id(), 256));
  if (e.attempt() < 0 || e.attempt() > 1000) {
    return Invalid("envelope.attempt", absl::StrCat("must be between 0 and 1000, got ",
                                                    e.attempt()));
  }
  if (e.has_first_seen_at()) {
    if (!ValidTimestamp(e.first_seen_at())) {
      return Invalid("envelope.first_seen_at", "is not a valid timestamp");
    }
    if (TimeFromProto(e.first_seen_at()) > now + kMaxClockSkew) {
      return Invalid("envelope.first_seen_at", "is more than 5 minutes in the future");
    }
  }
  if (static_cast<int64_t>(e.payload().size()) > limits.max_payload_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("envelope.payload: ", e.payload().size(), " bytes is over the limit of ",
                     limits.max_payload_bytes, " bytes (PAYLOAD_TOO_LARGE)"));
  }
  RETURN_IF_ERROR(MaxBytes("envelope.content_type", e.content_type(), 256));
  RETURN_IF_ERROR(MaxBytes("envelope.schema_version", e.schema_version(), 64));
  RETURN_IF_ERROR(MaxBytes("envelope.source", e.source(), 256));
  if (e.headers_size() > 64) {
    return Invalid("envelope.headers", absl::StrCat("at most 64 entries, got ", e.headers_size()));
  }
  for (const auto& [k, v] : e.headers()) {
    if (k.empty() || k.size() > 256) {
      return Invalid("envelope.headers", "keys must be 1 to 256 bytes");
    }
    RETURN_IF_ERROR(MaxBytes(absl::StrCat("envelope.headers[", k, "]"), v, 4096));
  }
  return absl::OkStatus();
}

absl::Status ValidateFailure(const v1::Failure& f) {
  RETURN_IF_ERROR(MaxBytes("failure.error_code", f.error_code(), 128));
  if (!v1::ErrorClass_IsValid(f.error_class())) {
    return Invalid("failure.error_class", absl::StrCat("unknown value ", f.error_class()));
  }
  RETURN_IF_ERROR(MaxBytes("failure.message", f.message(), 4096));
  if (f.http_status() != 0 && (f.http_status() < 100 || f.http_status() > 599)) {
    return Invalid("failure.http_status",
                   absl::StrCat("must be 0 (none) or 100..599, got ", f.http_status()));
  }
  if (f.has_retry_after()) {
    RETURN_IF_ERROR(ValidDuration("failure.retry_after", f.retry_after(), absl::ZeroDuration(),
                                  kMaxRetryAfter));
  }
  return absl::OkStatus();
}

absl::Status ValidateToken(absl::string_view field, absl::string_view token, bool required) {
  if (token.empty()) return required ? Invalid(field, "is required") : absl::OkStatus();
  return MaxBytes(field, token, 256);
}

absl::Status ValidateVisibility(absl::string_view field, const google::protobuf::Duration& d) {
  return ValidDuration(field, d, kMinVisibilityTimeout, kMaxVisibilityTimeout);
}

}  // namespace

absl::Status ValidateService(absl::string_view field, absl::string_view service) {
  if (service.empty()) return Invalid(field, "is required");
  if (!IsValidServiceName(service)) {
    return Invalid(field, absl::StrCat("must match [a-z0-9][a-z0-9._-]{0,63}, got \"",
                                       service.substr(0, 80), "\""));
  }
  return absl::OkStatus();
}

absl::Status ValidateReportFailure(const v1::ReportFailureRequest& req,
                                   const RequestLimits& limits, absl::Time now) {
  if (!req.has_envelope()) return Invalid("envelope", "is required");
  if (!req.has_failure()) return Invalid("failure", "is required");
  RETURN_IF_ERROR(ValidateToken("lease_token", req.lease_token(), false));
  if (!req.lease_token().empty()) {
    // A leased retry names its envelope by the token; only service and message_id are read.
    RETURN_IF_ERROR(ValidateService("envelope.service", req.envelope().service()));
    RETURN_IF_ERROR(MaxBytes("envelope.message_id", req.envelope().message_id(), 256));
  } else {
    RETURN_IF_ERROR(ValidateEnvelope(req.envelope(), limits, now));
  }
  return ValidateFailure(req.failure());
}

absl::Status ValidateLease(const v1::LeaseRequest& req) {
  RETURN_IF_ERROR(ValidateService("service", req.service()));
  if (req.max_messages() < 0) {
    return Invalid("max_messages",
                   absl::StrCat("must not be negative, got ", req.max_messages()));
  }
  if (req.has_visibility_timeout()) {
    RETURN_IF_ERROR(ValidateVisibility("visibility_timeout", req.visibility_timeout()));
  }
  if (req.has_wait_time()) {
    RETURN_IF_ERROR(
        ValidDuration("wait_time", req.wait_time(), absl::ZeroDuration(), kMaxWaitTime));
  }
  return absl::OkStatus();
}

absl::Status ValidateReportSuccess(const v1::ReportSuccessRequest& req) {
  RETURN_IF_ERROR(ValidateService("service", req.service()));
  return ValidateToken("lease_token", req.lease_token(), true);
}

absl::Status ValidateExtendLease(const v1::ExtendLeaseRequest& req) {
  RETURN_IF_ERROR(ValidateToken("lease_token", req.lease_token(), true));
  if (req.has_visibility_timeout()) {
    RETURN_IF_ERROR(ValidateVisibility("visibility_timeout", req.visibility_timeout()));
  }
  return absl::OkStatus();
}

absl::Status ValidateRecordOutcomes(const v1::RecordOutcomesRequest& req) {
  RETURN_IF_ERROR(ValidateService("service", req.service()));
  constexpr int64_t kMax = 1000000000;
  if (req.successes() < 0 || req.successes() > kMax) {
    return Invalid("successes", absl::StrCat("must be between 0 and ", kMax, ", got ",
                                             req.successes()));
  }
  if (req.failures() < 0 || req.failures() > kMax) {
    return Invalid("failures", absl::StrCat("must be between 0 and ", kMax, ", got ",
                                            req.failures()));
  }
  return absl::OkStatus();
}

absl::Status ValidateSetCircuitOverride(const v1::SetCircuitOverrideRequest& req) {
  RETURN_IF_ERROR(ValidateService("service", req.service()));
  switch (req.override()) {
    case v1::AUTO:
    case v1::FORCE_OPEN:
    case v1::FORCE_CLOSED:
      break;
    default:
      return Invalid("override", absl::StrCat("must be AUTO, FORCE_OPEN or FORCE_CLOSED, got ",
                                              static_cast<int>(req.override())));
  }
  if (req.note().size() > kMaxNoteBytes) {
    return Invalid("note", absl::StrCat("must be at most ", kMaxNoteBytes, " bytes, got ",
                                        req.note().size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateGetEnvelope(const v1::GetEnvelopeRequest& req) {
  RETURN_IF_ERROR(ValidateService("service", req.service()));
  if (req.message_id().empty()) return Invalid("message_id", "is required");
  return MaxBytes("message_id", req.message_id(), 256);
}

absl::Status ValidatePageSize(int32_t page_size, int* effective) {
  if (page_size < 0) {
    return Invalid("page_size", absl::StrCat("must not be negative, got ", page_size));
  }
  *effective = page_size == 0 ? 50 : std::min(page_size, 1000);
  return absl::OkStatus();
}

}  // namespace retryd
