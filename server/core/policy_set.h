// PolicySet: the configured policies and the lookup of a service's policy (DESIGN.md "Policy").
#ifndef RETRYD_SERVER_CORE_POLICY_SET_H_
#define RETRYD_SERVER_CORE_POLICY_SET_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/core/policy.h"

namespace retryd {

// Whether `name` is a valid service name: [a-z0-9][a-z0-9._-]{0,63}.
bool IsValidServiceName(absl::string_view name);

// Whether `name` is a valid policy name: "default", a service name, or a service name followed
// by ".*" or "*" (a prefix pattern, e.g. "billing.*").
bool IsValidPolicyName(absl::string_view name);

// An immutable set of policies with unique names. A copyable, movable value; thread-safe for
// concurrent reads. A default-constructed set is empty and resolves every service to the
// built-in default Policy{}.
class PolicySet {
 public:
  PolicySet() = default;

  // Validates and indexes `policies`. INVALID_ARGUMENT naming `policies[i].name` for an invalid
  // or duplicate name. Other fields are not validated here (config.h does that).
  static absl::StatusOr<PolicySet> Create(std::vector<Policy> policies);

  // The policy for `service`: the policy with exactly that name, else the matching prefix
  // pattern with the longest prefix ("billing.*" matches "billing.invoices", not "billing";
  // "bill*" matches "bill" and "billing"), else the policy named "default", else the built-in
  // Policy{}. The reference stays valid as long as this set is alive and unmodified.
  const Policy& Resolve(absl::string_view service) const;

  // The policies in the order given to Create.
  const std::vector<Policy>& policies() const { return policies_; }

 private:
  std::vector<Policy> policies_;
  // Exact names ("default" included) → index in policies_.
  absl::flat_hash_map<std::string, size_t> exact_;
  // (prefix without the '*', index in policies_), longest prefix first.
  std::vector<std::pair<std::string, size_t>> prefixes_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CORE_POLICY_SET_H_
