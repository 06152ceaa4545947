// `retryctl dlq ...`: the dead-letter queue. This issue: `dlq list` (AdminService.ListDeadLetters).
#ifndef RETRYD_CLIENT_CLI_DLQ_CMD_H_
#define RETRYD_CLIENT_CLI_DLQ_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddDlqCommands(CLI::App* app, CliContext* ctx);

// Columns: SERVICE MESSAGE_ID REASON ATTEMPTS ERROR_CODE DEAD_LETTERED_AT.
std::string FormatDeadLettersTable(const retryd::v1::ListDeadLettersResponse& response,
                                   bool headers);

// The stderr hint that shows how to fetch the next page, e.g.
// "Next page: retryctl dlq list --service billing --page-size 20 --page-token abc".
std::string NextPageHint(const std::string& service, int page_size,
                         const std::string& next_page_token);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_DLQ_CMD_H_
