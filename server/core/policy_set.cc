#include "server/core/policy_set.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace retryd {
namespace {

constexpr absl::string_view kDefaultName = "default";

bool IsServiceChar(char c) {
  return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '.' || c == '_' || c == '-';
}

// For a prefix pattern ("billing.*" or "bill*"), the prefix a service must start with
// ("billing." or "bill"); empty for any other name.
absl::string_view PatternPrefix(absl::string_view name) {
  if (!absl::EndsWith(name, "*")) return {};
  absl::string_view prefix = name.substr(0, name.size() - 1);
  const absl::string_view stem = absl::EndsWith(prefix, ".")
                                     ? prefix.substr(0, prefix.size() - 1)
                                     : prefix;
  return IsValidServiceName(stem) ? prefix : absl::string_view();
}

const Policy& BuiltinDefault() {
  static const Policy* const policy = new Policy();
  return *policy;
}

}  // namespace

bool IsValidServiceName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (!absl::ascii_islower(name[0]) && !absl::ascii_isdigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(), IsServiceChar);
}

bool IsValidPolicyName(absl::string_view name) {
  return name == kDefaultName || IsValidServiceName(name) || !PatternPrefix(name).empty();
}

absl::StatusOr<PolicySet> PolicySet::Create(std::vector<Policy> policies) {
  PolicySet set;
  for (size_t i = 0; i < policies.size(); ++i) {
    const std::string& name = policies[i].name;
    const std::string field = absl::StrCat("policies[", i, "].name");
    if (!IsValidPolicyName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": must be \"default\", a service name ([a-z0-9][a-z0-9._-]{0,63}) or a prefix "
                 "pattern such as \"billing.*\", got \"",
          absl::CEscape(name), "\""));
    }
    const absl::string_view prefix = PatternPrefix(name);
    if (prefix.empty()) {
      if (!set.exact_.emplace(name, i).second) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ": duplicate policy name \"", name, "\""));
      }
    } else {
      for (const auto& [other, index] : set.prefixes_) {
        if (other == prefix) {
          return absl::InvalidArgumentError(
              absl::StrCat(field, ": duplicate policy name \"", name, "\""));
        }
      }
      set.prefixes_.emplace_back(std::string(prefix), i);
    }
  }
  std::stable_sort(set.prefixes_.begin(), set.prefixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  set.policies_ = std::move(policies);
  return set;
}

const Policy& PolicySet::Resolve(absl::string_view service) const {
  if (auto it = exact_.find(service); it != exact_.end()) return policies_[it->second];
  for (const auto& [prefix, index] : prefixes_) {
    if (absl::StartsWith(service, prefix)) return policies_[index];
  }
  if (auto it = exact_.find(kDefaultName); it != exact_.end()) return policies_[it->second];
  return BuiltinDefault();
}

}  // namespace retryd
