#include "client/cli/audit_cmd.h"

#include <memory>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/filter_flags.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

// Longest note and filter summary shown in a row; -o json has them whole.
constexpr size_t kNoteWidth = 40;
constexpr size_t kFilterWidth = 60;

int RunAudit(const CliContext& ctx, const PageFlags& pages) {
  return RunAdminListing(
      ctx, "retryctl audit", pages, &retryd::v1::AdminService::Stub::ListAuditEvents,
      [](retryd::v1::ListAuditEventsResponse* r) { return r->mutable_events(); },
      FormatAuditTable, "No audit events found.");
}

}  // namespace

std::string FormatAuditTable(const retryd::v1::ListAuditEventsResponse& response, bool headers) {
  Table table({"ID", "TIME", "IDENTITY", "METHOD", "TARGET", "DRY_RUN", "COUNT", "RESULT",
               "FILTER", "NOTE"});
  for (const retryd::v1::AuditEvent& e : response.events()) {
    table.AddRow({
        absl::StrCat(e.id()),
        FormatTimestamp(e.time()),
        e.identity(),
        e.method(),
        e.target(),
        e.dry_run() ? "yes" : "no",
        absl::StrCat(e.affected_count()),
        e.result_code(),
        e.has_filter() ? SanitizeCell(FilterSummary(e.filter()), kFilterWidth)
                       : std::string(kNone),
        SanitizeCell(e.note(), kNoteWidth),
    });
  }
  return table.Render(headers);
}

void AddAuditCommands(CLI::App* app, CliContext* ctx) {
  auto pages = std::make_shared<PageFlags>();
  CLI::App* audit = app->add_subcommand(
      "audit", "List operator mutations (purges, replays, circuit overrides), newest first");
  audit->require_subcommand(0, 1);
  AddPageFlags(audit, pages.get(), "events");
  const auto select = [ctx, pages] {
    ctx->action = [ctx, pages] { return RunAudit(*ctx, *pages); };
  };
  audit->callback(select);
  CLI::App* list = audit->add_subcommand("list", "Same as 'audit'");
  AddPageFlags(list, pages.get(), "events");
  list->callback(select);
}

}  // namespace retryd::cli
