#include "server/core/classifier.h"

#include "absl/strings/match.h"

namespace retryd {
namespace {

bool IsPrefixRule(absl::string_view rule_code) { return absl::EndsWith(rule_code, "*"); }

// The class the policy's rules give `error_code`, or kUnspecified when none matches.
ErrorClass ClassifyByRules(absl::string_view error_code, const Policy& p) {
  const ClassificationRule* best_prefix = nullptr;
  for (const ClassificationRule& rule : p.rules) {
    if (!IsPrefixRule(rule.error_code)) {
      if (rule.error_code == error_code) return rule.error_class;
      continue;
    }
    if (RuleMatches(rule.error_code, error_code) &&
        (best_prefix == nullptr || rule.error_code.size() > best_prefix->error_code.size())) {
      best_prefix = &rule;
    }
  }
  return best_prefix == nullptr ? ErrorClass::kUnspecified : best_prefix->error_class;
}

ErrorClass ClassifyByHttpStatus(int status) {
  switch (status) {
    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return ErrorClass::kTransient;
    case 501:
    case 505:
      return ErrorClass::kPermanent;
    default:
      return status >= 400 && status <= 499 ? ErrorClass::kPermanent : ErrorClass::kUnspecified;
  }
}

}  // namespace

bool RuleMatches(absl::string_view rule_code, absl::string_view error_code) {
  if (IsPrefixRule(rule_code)) {
    rule_code.remove_suffix(1);
    return absl::StartsWith(error_code, rule_code);
  }
  return rule_code == error_code;
}

ErrorClass Classify(const Failure& f, const Policy& p) {
  if (f.error_class != ErrorClass::kUnspecified) return f.error_class;
  if (ErrorClass c = ClassifyByRules(f.error_code, p); c != ErrorClass::kUnspecified) return c;
  if (f.error_code == kLeaseExpiredCode) return ErrorClass::kTransient;
  if (ErrorClass c = ClassifyByHttpStatus(f.http_status); c != ErrorClass::kUnspecified) return c;
  return p.unclassified == ErrorClass::kUnspecified ? ErrorClass::kTransient : p.unclassified;
}

}  // namespace retryd
