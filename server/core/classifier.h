// Classification: which ErrorClass a failure belongs to under a policy (DESIGN.md "Error class").
#ifndef RETRYD_SERVER_CORE_CLASSIFIER_H_
#define RETRYD_SERVER_CORE_CLASSIFIER_H_

#include "absl/strings/string_view.h"
#include "server/core/envelope.h"
#include "server/core/policy.h"

namespace retryd {

// The error code retryd records when a lease expires; classified TRANSIENT unless a policy rule
// says otherwise.
inline constexpr absl::string_view kLeaseExpiredCode = "LEASE_EXPIRED";

// Returns the class of `f` under `p`, never kUnspecified. First match wins:
//   1. f.error_class, when the worker gave one;
//   2. p.rules by f.error_code: an exact rule, else the longest prefix rule ("UPSTREAM_*");
//   3. the built-in code LEASE_EXPIRED → TRANSIENT;
//   4. f.http_status: 408, 429, 500, 502, 503, 504 → TRANSIENT; 501, 505, other 4xx → PERMANENT;
//   5. p.unclassified (TRANSIENT if that is kUnspecified).
ErrorClass Classify(const Failure& f, const Policy& p);

// Whether `rule_code` ("X" exact, or "X*" prefix) matches `error_code`.
bool RuleMatches(absl::string_view rule_code, absl::string_view error_code);

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_CLASSIFIER_H_
