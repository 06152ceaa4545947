#include "client/cli/services_cmd.h"

#include <memory>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/circuit_cmd.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
int RunListServices(const CliContext& ctx, const std::string& command, ServicesFormatter format,
                    const PageFlags& pages) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  return RunListing<retryd::v1::ListServicesResponse>(
      ctx, command, nullptr, pages,
      AdminPageFetcher(conn, stub.get(), &retryd::v1::AdminService::Stub::ListServices,
                       retryd::v1::ListServicesRequest()),
      [](retryd::v1::ListServicesResponse* r) { return r->mutable_services(); }, format,
      "No services found.");
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
  auto pages = std::make_shared<PageFlags>();
  AddPageFlags(services, pages.get(), "services");
  const auto select = [ctx, pages] {
    ctx->action = [ctx, pages] {
      return RunListServices(*ctx, "retryctl services", FormatServicesTable, *pages);
    };
  };
  services->callback(select);
  CLI::App* list = services->add_subcommand("list", "Same as 'services'");
  AddPageFlags(list, pages.get(), "services");
  list->callback(select);
}

}  // namespace retryd::cli
