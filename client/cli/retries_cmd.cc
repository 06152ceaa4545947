#include "client/cli/retries_cmd.h"

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

struct ListOptions {
  FilterFlags filter;
  PageFlags pages;
};

int RunRetriesList(const CliContext& ctx, const ListOptions& opts) {
  return RunFilteredAdminListing(
      ctx, "retryctl retries list", opts.filter, opts.pages,
      &retryd::v1::AdminService::Stub::ListRetries,
      [](retryd::v1::ListRetriesResponse* r) { return r->mutable_retries(); }, FormatRetriesTable,
      "No scheduled retries found.");
}

}  // namespace

std::string FormatRetriesTable(const retryd::v1::ListRetriesResponse& response, bool headers) {
  Table table({"SERVICE", "MESSAGE_ID", "ATTEMPTS", "CLASS", "ERROR_CODE", "NEXT_RETRY_AT"});
  for (const retryd::v1::Envelope& e : response.retries()) {
    std::string attempts = absl::StrCat(e.attempt());
    if (e.max_attempts() > 0) absl::StrAppend(&attempts, "/", e.max_attempts());
    table.AddRow({
        e.service(),
        e.message_id(),
        attempts,
        EnumLabel(retryd::v1::ErrorClass_descriptor(), e.last_error().error_class()),
        e.last_error().error_code(),
        FormatTimestamp(e.next_retry_at()),
    });
  }
  return table.Render(headers);
}

void AddRetriesCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* retries =
      app->add_subcommand("retries", "Inspect the retry schedule (envelopes waiting to retry)");
  retries->require_subcommand(1);
  auto opts = std::make_shared<ListOptions>();
  CLI::App* cmd = retries->add_subcommand(
      "list", "List scheduled retries, soonest first (payloads are left out; use 'get')");
  AddFilterFlags(cmd, &opts->filter, FilterTarget::kRetries);
  AddPageFlags(cmd, &opts->pages, "retries");
  cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunRetriesList(*ctx, *opts); }; });
}

}  // namespace retryd::cli
