// `retryctl dlq purge`: AdminService.PurgeDeadLetters, with --dry-run, a confirmation above 100
// rows, and --all-services for the empty filter the server otherwise refuses.
#ifndef RETRYD_CLIENT_CLI_PURGE_CMD_H_
#define RETRYD_CLIENT_CLI_PURGE_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

// Adds `purge` under `retryctl dlq`.
void AddDlqPurgeCommand(CLI::App* dlq, CliContext* ctx);

// "Purged 12 dead letters (service=billing)." or, for a dry run, "Dry run: 12 dead letters
// would be purged (...); nothing was changed." followed by the sample table.
std::string FormatPurgeResult(const retryd::v1::PurgeDeadLettersResponse& response,
                              const retryd::v1::Filter& filter, bool dry_run, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_PURGE_CMD_H_
