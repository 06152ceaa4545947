#include "client/cli/purge_cmd.h"

#include <memory>
#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/bulk.h"
#include "client/cli/dlq_cmd.h"
#include "client/cli/filter_flags.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

constexpr char kDlqPurge[] = "retryctl dlq purge";

struct PurgeOptions {
  FilterFlags filter;
  bool all_services = false;
  bool dry_run = false;
  bool yes = false;
  std::string note;
  std::string request_id;
};

grpc::Status Purge(const CliContext& ctx, retryd::v1::AdminService::Stub* stub,
                   const retryd::v1::PurgeDeadLettersRequest& request,
                   retryd::v1::PurgeDeadLettersResponse* response) {
  return CallWithRetry(ctx, [&](grpc::ClientContext* call) {
    response->Clear();
    return stub->PurgeDeadLetters(call, request, response);
  });
}

int RunDlqPurge(const CliContext& ctx, const PurgeOptions& opts) {
  if (opts.filter.empty() && !opts.all_services) {
    return ReportUsageError(ctx, kDlqPurge,
                            "no filter given: that would purge every dead letter; give filter "
                            "flags, or --all-services to really purge them all");
  }
  if (!opts.filter.empty() && opts.all_services) {
    return ReportUsageError(ctx, kDlqPurge,
                            "--all-services purges every dead letter and takes no filter flags");
  }
  retryd::v1::PurgeDeadLettersRequest request;
  std::string error;
  if (!BuildFilter(opts.filter, absl::Now(), request.mutable_filter(), &error)) {
    return ReportUsageError(ctx, kDlqPurge, error);
  }
  request.set_all(opts.all_services);
  request.set_note(opts.note);
  const std::string request_id = opts.request_id.empty() ? NewRequestId() : opts.request_id;
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(ctx.connection()));

  if (opts.dry_run || !opts.yes) {
    // A dry run counts what would go: the answer itself, or the number to confirm.
    retryd::v1::PurgeDeadLettersRequest dry = request;
    dry.set_dry_run(true);
    dry.set_request_id(DryRunRequestId(request_id));
    retryd::v1::PurgeDeadLettersResponse counted;
    const grpc::Status status = Purge(ctx, stub.get(), dry, &counted);
    if (!status.ok()) return ReportRpcError(ctx, status);
    if (opts.dry_run) {
      if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, counted);
      *ctx.out << FormatPurgeResult(counted, request.filter(), /*dry_run=*/true, ctx.headers());
      return kExitOk;
    }
    const std::string details = FormatPromptSample(counted.sample(), counted.count(), "purge");
    const int rc = ConfirmBulk(ctx, opts.yes, counted.count(), kDlqPurge, "purge",
                               absl::StrCat("Purge ", counted.count(),
                                            " dead letters matching ",
                                            FilterSummary(request.filter()),
                                            "? They cannot be recovered."),
                               details);
    if (rc != kExitOk) return rc;
  }

  request.set_request_id(request_id);
  retryd::v1::PurgeDeadLettersResponse response;
  const grpc::Status status = Purge(ctx, stub.get(), request, &response);
  if (!status.ok()) return ReportMutationError(ctx, status, kDlqPurge, request_id);
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatPurgeResult(response, request.filter(), /*dry_run=*/false, ctx.headers());
  return kExitOk;
}

}  // namespace

std::string FormatPurgeResult(const retryd::v1::PurgeDeadLettersResponse& response,
                              const retryd::v1::Filter& filter, bool dry_run, bool headers) {
  if (!dry_run) {
    return absl::StrCat("Purged ", response.count(), " dead letters (", FilterSummary(filter),
                        ").\n");
  }
  std::string out = absl::StrCat("Dry run: ", response.count(), " dead letters would be purged (",
                                 FilterSummary(filter), "); nothing was changed.\n");
  if (!response.sample().empty()) {
    absl::StrAppend(&out, "Sample (", response.sample_size(), " of ", response.count(), "):\n",
                    FormatDeadLetterRows(response.sample(), headers));
  }
  return out;
}

void AddDlqPurgeCommand(CLI::App* dlq, CliContext* ctx) {
  auto opts = std::make_shared<PurgeOptions>();
  CLI::App* cmd = dlq->add_subcommand(
      "purge",
      "Drop the dead letters that match the filter for good (asks before more than 100)");
  AddFilterFlags(cmd, &opts->filter, FilterTarget::kDeadLetters);
  cmd->add_flag("--all-services", opts->all_services,
                "Purge every dead letter of every service (instead of filter flags)");
  cmd->add_option("--note", opts->note, "Why, recorded in the audit log (at most 1024 bytes)");
  cmd->add_option("--request-id", opts->request_id,
                  "Idempotency key: the same id never purges twice (default: random; a dry run "
                  "sends <id>-dry-run)");
  cmd->add_flag("--dry-run", opts->dry_run, "Count and sample the matches; change nothing");
  cmd->add_flag("-y,--yes", opts->yes, "Do not ask for confirmation");
  cmd->footer(absl::StrCat(kFilterHelp, R"(

More than 100 dead letters to purge (counted with a dry run first): asks on a
terminal; without one, refuses (exit 2) unless --yes. A declined question exits 3.)"));
  cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunDlqPurge(*ctx, *opts); }; });
}

}  // namespace retryd::cli
