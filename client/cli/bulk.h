// What the bulk mutations (`dlq replay`, `dlq purge`) share: a client request id so a retried
// call never runs twice, retrying a call the server may not have seen, and the confirmation
// asked before touching more than kConfirmThreshold dead letters.
#ifndef RETRYD_CLIENT_CLI_BULK_H_
#define RETRYD_CLIENT_CLI_BULK_H_

#include <cstdint>
#include <functional>
#include <string>

#include "client/cli/common.h"

namespace retryd::cli {

// A purge or replay of more rows than this asks first (--yes skips the question).
inline constexpr int64_t kConfirmThreshold = 100;

// Attempts of a mutating call that failed UNAVAILABLE (the request id makes a repeat harmless).
inline constexpr int kMutationAttempts = 3;

// "retryctl-" and 32 random hex digits.
std::string NewRequestId();

// The request id of a dry run made for `request_id`: "<request_id>-dry-run". A dry run never
// carries the id of the real call, because the server answers a repeated id from its first use:
// a real purge or replay sent with a dry run's id would change nothing.
std::string DryRunRequestId(const std::string& request_id);

// Makes `call` (given a prepared ClientContext) up to kMutationAttempts times while it fails
// UNAVAILABLE, pausing with ctx.sleep in between (0.5 s, then 1 s). Returns the last status.
grpc::Status CallWithRetry(const CliContext& ctx,
                           const std::function<grpc::Status(grpc::ClientContext*)>& call);

// The request id hint printed after a mutation failed in a way that may have left it applied.
std::string RetryHint(const std::string& command, const std::string& request_id);

// Reports a failed mutation call (ReportRpcError) and, when it failed in a way that may have left
// it applied (UNAVAILABLE, DEADLINE_EXCEEDED), the RetryHint for `command`. Returns the exit code.
int ReportMutationError(const CliContext& ctx, const grpc::Status& status,
                        const std::string& command, const std::string& request_id);

// Asks before a mutation of `count` rows. Goes ahead (kExitOk) when `yes`, or count is at most
// kConfirmThreshold, or the operator answers y/yes on a terminal. Otherwise:
//  - no terminal on stdin: writes why and how (--yes, --dry-run) to ctx.err, returns kExitUsage;
//  - any other answer: writes "Aborted; nothing was changed." and returns kExitDeclined.
// `question` is asked as "<question> [y/N] "; `details` (a sample, may be empty) is shown first.
// `command` names the command for the usage hint.
int ConfirmBulk(const CliContext& ctx, bool yes, int64_t count, const std::string& command,
                const std::string& verb, const std::string& question, const std::string& details);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_BULK_H_
