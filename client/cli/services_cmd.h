// `retryctl services [list]`: every service retryd knows, with its numbers
// (AdminService.ListServices), with the pagination flags.
#ifndef RETRYD_CLIENT_CLI_SERVICES_CMD_H_
#define RETRYD_CLIENT_CLI_SERVICES_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "client/cli/filter_flags.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddServicesCommands(CLI::App* app, CliContext* ctx);

// A table of ListServicesResponse: FormatServicesTable, FormatCircuitListTable.
using ServicesFormatter = std::string (*)(const retryd::v1::ListServicesResponse&, bool headers);

// ListServices, paged as `pages` say (no flags: one call, which answers up to 1000 services),
// printed as JSON or as `format`'s table ("No services found." on stderr when there are none, the
// next-page hint naming `command` when more follow); `services` and `circuit list` differ only
// in the table and the pages. Returns the exit code.
int RunListServices(const CliContext& ctx, const std::string& command, ServicesFormatter format,
                    const PageFlags& pages);

// Columns: SERVICE POLICY SCHEDULED LEASED DEAD OLDEST_DEAD CIRCUIT BUDGET_LEFT ("unlimited"
// when the service has no budget).
std::string FormatServicesTable(const retryd::v1::ListServicesResponse& response, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_SERVICES_CMD_H_
