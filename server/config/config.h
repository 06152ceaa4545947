// The config file: one JSON document whose schema is retryd.v1.ServerConfig (see
// proto/retryd/v1/config.proto for every field, default and range), parsed with Protobuf's JSON
// parser, and its conversion to validated domain types. Every error is INVALID_ARGUMENT (or
// NOT_FOUND for a missing file) whose message starts with the offending field's full path,
// e.g. "policies[2].backoff.initial: must be between 1ms and 24h, got 0s".
#ifndef RETRYD_SERVER_CONFIG_CONFIG_H_
#define RETRYD_SERVER_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "retryd/v1/config.pb.h"
#include "server/core/policy.h"
#include "server/core/policy_set.h"

namespace retryd {

// Parses `json` into a ServerConfig; unknown fields are rejected. INVALID_ARGUMENT
// "config: <protobuf's message, which names the bad field>" on error. Only the JSON is
// checked here; use the functions below to validate and convert the parts.
[[nodiscard]] absl::StatusOr<v1::ServerConfig> ParseServerConfigJson(absl::string_view json);

// Reads and parses the file at `path`. NOT_FOUND when it cannot be opened, INVALID_ARGUMENT when
// it cannot be read or parsed; both messages start with the path.
[[nodiscard]] absl::StatusOr<v1::ServerConfig> LoadServerConfigFile(const std::string& path);

// Reads a file holding only the `auth` section, as JSON of retryd.v1.AuthConfig
// ({"tokens": [...]}; e.g. a Kubernetes Secret mounted beside the config). Errors as above. The
// tokens are validated with TokenTable::FromConfig (server/auth).
[[nodiscard]] absl::StatusOr<v1::AuthConfig> LoadAuthConfigFile(const std::string& path);

// Converts and validates one policy. Unset fields keep the defaults of policy.h (each unset field
// of recoverable_backoff takes BackoffSpec::DefaultRecoverable()'s value); enum UNSPECIFIED
// values mean the default, except in a classification rule, where a class is required.
// `field_path` prefixes every error message, e.g. "policies[2]".
[[nodiscard]] absl::StatusOr<Policy> PolicyFromProto(const v1::Policy& proto,
                                                     absl::string_view field_path);

// Converts cfg.policies (paths "policies[i]...") and builds the set (unique, valid names).
[[nodiscard]] absl::StatusOr<PolicySet> PolicySetFromConfig(const v1::ServerConfig& cfg);

// Writes every field of `p` into `out` (cleared first), e.g. for ListServices.
void PolicyToProto(const Policy& p, v1::Policy* out);

// Bounds on untrusted input and responses (config.proto `Limits`).
struct Limits {
  int64_t max_payload_bytes = 1 << 20;
  int64_t max_lease_response_bytes = 3670016;  // 3.5 MiB.
  absl::Duration dedupe_window = absl::Hours(24);
  int64_t max_pending_requests = 100000;
  int64_t min_free_bytes = int64_t{64} << 20;  // 64 MiB.
};

// Converts and validates limits (paths "limits.max_payload_bytes", ...); unset fields keep the
// defaults above.
[[nodiscard]] absl::StatusOr<Limits> LimitsFromProto(const v1::Limits& proto);

}  // namespace retryd

#endif  // RETRYD_SERVER_CONFIG_CONFIG_H_
