#include "client/cli/services_cmd.h"

#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/circuit_cmd.h"
#include "client/cli/format.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
int RunListServices(const CliContext& ctx, ServicesFormatter format) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::ListServicesResponse response;
  const grpc::Status status =
      stub->ListServices(&call, retryd::v1::ListServicesRequest(), &response);
  if (!status.ok()) return ReportRpcError(ctx, status);

  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << format(response, ctx.headers());
  if (response.services().empty()) *ctx.err << "No services found." << std::endl;
  return kExitOk;
}

std::string FormatServicesTable(const retryd::v1::ListServicesResponse& response, bool headers) {
  Table table({"SERVICE", "POLICY", "SCHEDULED", "LEASED", "DEAD", "OLDEST_DEAD", "CIRCUIT",
               "BUDGET_LEFT"});
  for (const retryd::v1::ServiceSummary& s : response.services()) {
    const bool has_oldest =
        s.dead() > 0 && FromProtoDuration(s.oldest_dead_age()) > absl::ZeroDuration();
    table.AddRow({
        s.service(),
        s.policy_name(),
        absl::StrCat(s.scheduled()),
        absl::StrCat(s.leased()),
        absl::StrCat(s.dead()),
        has_oldest ? HumanDuration(s.oldest_dead_age()) : std::string(kNone),
        EnumLabel(retryd::v1::CircuitState_descriptor(), s.circuit_state()),
        BudgetCell(s.budget_remaining()),
    });
  }
  return table.Render(headers);
}

void AddServicesCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* services = app->add_subcommand(
      "services", "List every service retryd knows, with its policy, counts and circuit");
  services->require_subcommand(0, 1);
  const auto select = [ctx] {
    ctx->action = [ctx] { return RunListServices(*ctx, FormatServicesTable); };
  };
  services->callback(select);
  services->add_subcommand("list", "Same as 'services'")->callback(select);
}

}  // namespace retryd::cli
