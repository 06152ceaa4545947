// `retryctl services [list]`: every service retryd knows, with its numbers
// (AdminService.ListServices).
#ifndef RETRYD_CLIENT_CLI_SERVICES_CMD_H_
#define RETRYD_CLIENT_CLI_SERVICES_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddServicesCommands(CLI::App* app, CliContext* ctx);

// Columns: SERVICE POLICY SCHEDULED LEASED DEAD OLDEST_DEAD CIRCUIT BUDGET_LEFT ("unlimited"
// when the service has no budget).
std::string FormatServicesTable(const retryd::v1::ListServicesResponse& response, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_SERVICES_CMD_H_
