#include "server/rpc/filter_convert.h"

#include "absl/strings/str_cat.h"
#include "server/core/fingerprint.h"
#include "server/rpc/validation.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckCount(absl::string_view field, int n) {
  if (n > kMaxFilterValues) {
    return Invalid(field, absl::StrCat("at most ", kMaxFilterValues, " values, got ", n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FilterStrings(absl::string_view field,
                     const google::protobuf::RepeatedPtrField<std::string>& in, size_t min,
                     size_t max, std::vector<std::string>* out) {
  RETURN_IF_ERROR(CheckCount(field, in.size()));
  for (int i = 0; i < in.size(); ++i) {
    if (in[i].size() < min || in[i].size() > max) {
      return Invalid(absl::StrCat(field, "[", i, "]"),
                     absl::StrCat("must be ", min, " to ", max, " bytes, got ", in[i].size()));
    }
    out->push_back(in[i]);
  }
  return absl::OkStatus();
}

absl::Status TimestampFromProtoChecked(absl::string_view field,
                                       const google::protobuf::Timestamp& t, absl::Time* out) {
  if (t.seconds() < 0 || t.seconds() > kMaxTimestampSeconds || t.nanos() < 0 ||
      t.nanos() > 999999999) {
    return Invalid(field, "is not a valid timestamp");
  }
  *out = TimeFromProto(t);
  return absl::OkStatus();
}

absl::StatusOr<EnvelopeFilter> FilterFromProto(const v1::Filter& f, absl::string_view field) {
  EnvelopeFilter out;
  if (!f.service().empty()) {
    RETURN_IF_ERROR(ValidateService(absl::StrCat(field, ".service"), f.service()));
    out.service = f.service();
  }
  RETURN_IF_ERROR(FilterStrings(absl::StrCat(field, ".error_codes"), f.error_codes(), 1, 128,
                                &out.error_codes));
  const std::string classes = absl::StrCat(field, ".error_classes");
  RETURN_IF_ERROR(CheckCount(classes, f.error_classes_size()));
  for (int i = 0; i < f.error_classes_size(); ++i) {
    const int c = f.error_classes(i);
    if (c < v1::TRANSIENT || c > v1::PERMANENT) {
      return Invalid(absl::StrCat(classes, "[", i, "]"),
                     absl::StrCat("must be TRANSIENT, RECOVERABLE or PERMANENT, got ", c));
    }
    out.error_classes.push_back(static_cast<ErrorClass>(c));
  }
  const std::string reasons = absl::StrCat(field, ".reasons");
  RETURN_IF_ERROR(CheckCount(reasons, f.reasons_size()));
  for (int i = 0; i < f.reasons_size(); ++i) {
    const int r = f.reasons(i);
    if (r < v1::NON_RETRYABLE || r > v1::BUDGET_EXHAUSTED) {
      return Invalid(absl::StrCat(reasons, "[", i, "]"),
                     absl::StrCat("must be NON_RETRYABLE, RETRY_EXHAUSTED, DEADLINE_EXCEEDED or "
                                  "BUDGET_EXHAUSTED, got ", r));
    }
    out.reasons.push_back(static_cast<DeadLetterReason>(r));
  }
  // An empty schema version is allowed: it selects envelopes that carry none.
  RETURN_IF_ERROR(FilterStrings(absl::StrCat(field, ".schema_versions"), f.schema_versions(), 0,
                                64, &out.schema_versions));
  RETURN_IF_ERROR(FilterStrings(absl::StrCat(field, ".message_ids"), f.message_ids(), 1, 256,
                                &out.message_ids));
  const std::string fps = absl::StrCat(field, ".fingerprints");
  RETURN_IF_ERROR(CheckCount(fps, f.fingerprints_size()));
  for (int i = 0; i < f.fingerprints_size(); ++i) {
    if (!IsFingerprint(f.fingerprints(i))) {
      return Invalid(absl::StrCat(fps, "[", i, "]"),
                     absl::StrCat("must be ", kFingerprintLength,
                                  " lowercase hex digits (as ListFailureGroups shows)"));
    }
    out.fingerprints.push_back(f.fingerprints(i));
  }
  if (f.has_after()) {
    RETURN_IF_ERROR(
        TimestampFromProtoChecked(absl::StrCat(field, ".after"), f.after(), &out.after));
  }
  if (f.has_before()) {
    RETURN_IF_ERROR(
        TimestampFromProtoChecked(absl::StrCat(field, ".before"), f.before(), &out.before));
  }
  if (f.has_after() && f.has_before() && out.after > out.before) {
    return Invalid(absl::StrCat(field, ".before"),
                   absl::StrCat("must not be earlier than ", field, ".after"));
  }
  return out;
}

}  // namespace retryd
