// `retryctl circuit get|list|open|close|auto`: a service's fleet-wide circuit breaker
// (RetryService.GetCircuit, AdminService.ListServices and AdminService.SetCircuitOverride).
#ifndef RETRYD_CLIENT_CLI_CIRCUIT_CMD_H_
#define RETRYD_CLIENT_CLI_CIRCUIT_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"
#include "retryd/v1/retry_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddCircuitCommands(CLI::App* app, CliContext* ctx);

// Columns: SERVICE STATE SINCE NEXT_PROBE FAILURE_RATE.
std::string FormatCircuitTable(const std::string& service,
                               const retryd::v1::GetCircuitResponse& circuit, bool headers);
// Columns: SERVICE CIRCUIT BUDGET_LEFT (from ListServices).
std::string FormatCircuitListTable(const retryd::v1::ListServicesResponse& response,
                                   bool headers);
// Columns: SERVICE STATE OVERRIDE.
std::string FormatOverrideTable(const std::string& service,
                                const retryd::v1::SetCircuitOverrideResponse& response,
                                bool headers);
// A budget_remaining cell: the number, or "unlimited" for -1 (no budget).
std::string BudgetCell(int64_t remaining);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_CIRCUIT_CMD_H_
