// `retryctl retries list`: scheduled envelopes waiting for their next attempt
// (AdminService.ListRetries), with the filter and pagination flags.
#ifndef RETRYD_CLIENT_CLI_RETRIES_CMD_H_
#define RETRYD_CLIENT_CLI_RETRIES_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddRetriesCommands(CLI::App* app, CliContext* ctx);

// Columns: SERVICE MESSAGE_ID ATTEMPTS CLASS ERROR_CODE NEXT_RETRY_AT.
std::string FormatRetriesTable(const retryd::v1::ListRetriesResponse& response, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_RETRIES_CMD_H_
