#include "client/cli/dlq_cmd.h"

#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/format.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

struct DlqListOptions {
  std::string service;
  int page_size = 0;  // 0 = the server's default (50)
  std::string page_token;
  bool all = false;
};

int RunDlqList(const CliContext& ctx, const DlqListOptions& opts) {
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));

  retryd::v1::ListDeadLettersRequest request;
  request.mutable_filter()->set_service(opts.service);
  request.set_page_size(opts.page_size);
  request.set_page_token(opts.page_token);

  // With --all every page is merged into one response, so the output is one document.
  retryd::v1::ListDeadLettersResponse merged;
  while (true) {
    grpc::ClientContext call;
    PrepareContext(conn, &call);
    retryd::v1::ListDeadLettersResponse page;
    const grpc::Status status = stub->ListDeadLetters(&call, request, &page);
    if (!status.ok()) return ReportRpcError(ctx, status);
    for (retryd::v1::Envelope& e : *page.mutable_dead_letters()) {
      *merged.add_dead_letters() = std::move(e);
    }
    merged.set_next_page_token(page.next_page_token());
    if (!opts.all || page.next_page_token().empty()) break;
    if (page.next_page_token() == request.page_token()) {
      return ReportLocalError(ctx, "the server returned the same page token twice; stopping");
    }
    request.set_page_token(page.next_page_token());
  }

  const int rc = ctx.output() == OutputFormat::kJson ? PrintJson(ctx, merged) : [&] {
    *ctx.out << FormatDeadLettersTable(merged, ctx.headers());
    ctx.out->flush();
    if (merged.dead_letters().empty()) *ctx.err << "No dead letters found." << std::endl;
    return kExitOk;
  }();
  if (rc == kExitOk && !merged.next_page_token().empty()) {
    *ctx.err << NextPageHint(opts.service, opts.page_size, merged.next_page_token()) << std::endl;
  }
  return rc;
}

}  // namespace

std::string FormatDeadLettersTable(const retryd::v1::ListDeadLettersResponse& response,
                                   bool headers) {
  Table table({"SERVICE", "MESSAGE_ID", "REASON", "ATTEMPTS", "ERROR_CODE", "DEAD_LETTERED_AT"});
  for (const retryd::v1::Envelope& e : response.dead_letters()) {
    table.AddRow({
        e.service(),
        e.message_id(),
        EnumLabel(retryd::v1::DeadLetterReason_descriptor(), e.dead_letter_reason()),
        absl::StrCat(e.attempt()),
        e.last_error().error_code(),
        FormatTimestamp(e.dead_lettered_at()),
    });
  }
  return table.Render(headers);
}

std::string NextPageHint(const std::string& service, int page_size,
                         const std::string& next_page_token) {
  std::string hint = "Next page: retryctl dlq list";
  if (!service.empty()) absl::StrAppend(&hint, " --service ", service);
  if (page_size > 0) absl::StrAppend(&hint, " --page-size ", page_size);
  absl::StrAppend(&hint, " --page-token ", next_page_token);
  return hint;
}

void AddDlqCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* dlq = app->add_subcommand("dlq", "Inspect the dead-letter queue");
  dlq->require_subcommand(1);

  auto opts = std::make_shared<DlqListOptions>();
  CLI::App* list = dlq->add_subcommand(
      "list", "List dead letters, oldest first (payloads are left out; use 'get')");
  list->add_option("--service", opts->service, "Only this service (exact name)");
  list->add_option("--page-size", opts->page_size,
                   "Dead letters per page (0 = server default 50, max 1000)")
      ->check(NonNegativeIntValidator());
  list->add_option("--page-token", opts->page_token, "Continue from this page token");
  list->add_flag("--all", opts->all, "Follow page tokens and list every page");
  list->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunDlqList(*ctx, *opts); }; });
}

}  // namespace retryd::cli
