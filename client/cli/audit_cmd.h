// `retryctl audit [list]`: every operator mutation, newest first (AdminService.ListAuditEvents),
// filtered by --method, --identity, --target, --result (each repeatable), --since and --until.
#ifndef RETRYD_CLIENT_CLI_AUDIT_CMD_H_
#define RETRYD_CLIENT_CLI_AUDIT_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddAuditCommands(CLI::App* app, CliContext* ctx);

// Columns: ID TIME IDENTITY METHOD TARGET DRY_RUN COUNT RESULT FILTER NOTE.
std::string FormatAuditTable(const retryd::v1::ListAuditEventsResponse& response, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_AUDIT_CMD_H_
