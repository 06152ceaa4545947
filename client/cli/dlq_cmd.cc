#include "client/cli/dlq_cmd.h"

#include <memory>
#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/dlq_histogram_cmd.h"
#include "client/cli/envelope_cmd.h"
#include "client/cli/filter_flags.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/purge_cmd.h"
#include "client/cli/replay_cmd.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

// Longest normalised message shown in a failure-group row.
constexpr size_t kGroupMessageWidth = 60;

struct ListOptions {
  FilterFlags filter;
  PageFlags pages;
};

struct ShowOptions {
  std::string service;
  std::string message_id;
  std::string payload_file;
};

struct StatsOptions {
  std::string service;
};

std::unique_ptr<retryd::v1::AdminService::Stub> NewAdminStub(const CliContext& ctx) {
  return retryd::v1::AdminService::NewStub(CreateChannel(ctx.connection()));
}

int RunDlqList(const CliContext& ctx, const ListOptions& opts) {
  return RunFilteredAdminListing(
      ctx, "retryctl dlq list", opts.filter, opts.pages,
      &retryd::v1::AdminService::Stub::ListDeadLetters,
      [](retryd::v1::ListDeadLettersResponse* r) { return r->mutable_dead_letters(); },
      FormatDeadLettersTable, "No dead letters found.");
}

int RunDlqGroups(const CliContext& ctx, const ListOptions& opts) {
  return RunFilteredAdminListing(
      ctx, "retryctl dlq groups", opts.filter, opts.pages,
      &retryd::v1::AdminService::Stub::ListFailureGroups,
      [](retryd::v1::ListFailureGroupsResponse* r) { return r->mutable_groups(); },
      FormatFailureGroupsTable, "No failure groups found.");
}

int RunDlqStats(const CliContext& ctx, const StatsOptions& opts) {
  auto stub = NewAdminStub(ctx);
  grpc::ClientContext call;
  PrepareContext(ctx.connection(), &call);
  retryd::v1::GetDeadLetterStatsRequest request;
  request.set_service(opts.service);
  retryd::v1::GetDeadLetterStatsResponse response;
  const grpc::Status status = stub->GetDeadLetterStats(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatDeadLetterStats(response, ctx.headers());
  return kExitOk;
}

std::string Percent(double ratio) { return absl::StrFormat("%.1f%%", ratio * 100.0); }

}  // namespace

std::string FormatDeadLetterRows(
    const google::protobuf::RepeatedPtrField<retryd::v1::Envelope>& envelopes, bool headers) {
  Table table({"SERVICE", "MESSAGE_ID", "REASON", "ATTEMPTS", "ERROR_CODE", "DEAD_LETTERED_AT"});
  for (const retryd::v1::Envelope& e : envelopes) {
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

std::string FormatPromptSample(
    const google::protobuf::RepeatedPtrField<retryd::v1::Envelope>& sample, int64_t count,
    const std::string& verb) {
  if (sample.empty()) return "";
  google::protobuf::RepeatedPtrField<retryd::v1::Envelope> shown;
  for (int i = 0; i < sample.size() && i < kPromptSampleRows; ++i) *shown.Add() = sample.Get(i);
  return absl::StrCat("Sample of the ", count, " dead letters to ", verb, ":\n",
                      FormatDeadLetterRows(shown, /*headers=*/true));
}

std::string FormatDeadLettersTable(const retryd::v1::ListDeadLettersResponse& response,
                                   bool headers) {
  return FormatDeadLetterRows(response.dead_letters(), headers);
}

std::string FormatDeadLetterStats(const retryd::v1::GetDeadLetterStatsResponse& stats,
                                  bool headers) {
  const bool has_oldest =
      stats.total() > 0 && FromProtoDuration(stats.oldest_age()) > absl::ZeroDuration();
  std::string out = RenderKeyValues({
      {"Dead letters", absl::StrCat(stats.total())},
      {"In the last hour", absl::StrCat(stats.dead_lettered_last_hour())},
      {"Oldest", has_oldest ? HumanDuration(stats.oldest_age()) : std::string(kNone)},
      {"Non-retryable", Percent(stats.non_retryable_ratio())},
      {"Retry exhausted", Percent(stats.exhausted_ratio())},
  });
  if (!stats.counts().empty()) {
    Table table({"SERVICE", "REASON", "COUNT"});
    for (const retryd::v1::DeadLetterCount& c : stats.counts()) {
      table.AddRow({c.service(), EnumLabel(retryd::v1::DeadLetterReason_descriptor(), c.reason()),
                    absl::StrCat(c.count())});
    }
    absl::StrAppend(&out, "\nBy service and reason:\n", table.Render(headers, "  "));
  }
  if (!stats.top_error_codes().empty()) {
    Table table({"ERROR_CODE", "COUNT"});
    for (const retryd::v1::ErrorCodeCount& c : stats.top_error_codes()) {
      table.AddRow({c.error_code(), absl::StrCat(c.count())});
    }
    absl::StrAppend(&out, "\nTop error codes:\n", table.Render(headers, "  "));
  }
  return out;
}

std::string FormatFailureGroupsTable(const retryd::v1::ListFailureGroupsResponse& response,
                                     bool headers) {
  Table table({"FINGERPRINT", "COUNT", "SERVICE", "CLASS", "ERROR_CODE", "FIRST_SEEN",
               "LAST_SEEN", "MESSAGE"});
  for (const retryd::v1::FailureGroup& g : response.groups()) {
    table.AddRow({
        g.fingerprint(),
        absl::StrCat(g.count()),
        g.service(),
        EnumLabel(retryd::v1::ErrorClass_descriptor(), g.error_class()),
        g.error_code(),
        FormatTimestamp(g.first_seen()),
        FormatTimestamp(g.last_seen()),
        SanitizeCell(g.normalized_message(), kGroupMessageWidth),
    });
  }
  return table.Render(headers);
}

void AddDlqCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* dlq = app->add_subcommand(
      "dlq", "Inspect, replay and purge the dead-letter queue");
  dlq->require_subcommand(1);

  {
    auto opts = std::make_shared<ListOptions>();
    CLI::App* cmd = dlq->add_subcommand(
        "list", "List dead letters, oldest first (payloads are left out; use 'dlq show')");
    AddFilterFlags(cmd, &opts->filter, FilterTarget::kDeadLetters);
    AddPageFlags(cmd, &opts->pages, "dead letters");
    cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunDlqList(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<ShowOptions>();
    CLI::App* cmd = dlq->add_subcommand(
        "show", "Show one dead letter: fields, last error, attempt history and payload");
    cmd->add_option("SERVICE", opts->service, "Service of the dead letter")->required();
    cmd->add_option("MESSAGE_ID", opts->message_id, "Message id of the dead letter")->required();
    cmd->add_option("--payload-file", opts->payload_file,
                    "Write the raw payload to this file instead of printing it");
    cmd->callback([ctx, opts] {
      ctx->action = [ctx, opts] {
        return RunGetEnvelope(*ctx, opts->service, opts->message_id, opts->payload_file,
                              /*expect_dead_letter=*/true);
      };
    });
  }
  {
    auto opts = std::make_shared<StatsOptions>();
    CLI::App* cmd = dlq->add_subcommand(
        "stats", "Dead-letter counts by service and reason, top error codes, oldest age");
    cmd->add_option("--service", opts->service, "Only this service (default: every service)");
    cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunDlqStats(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<ListOptions>();
    CLI::App* cmd = dlq->add_subcommand(
        "groups",
        "Dead letters grouped by failure fingerprint, largest first (replay or purge a group "
        "with --fingerprint)");
    AddFilterFlags(cmd, &opts->filter, FilterTarget::kDeadLetters);
    AddPageFlags(cmd, &opts->pages, "groups");
    cmd->callback(
        [ctx, opts] { ctx->action = [ctx, opts] { return RunDlqGroups(*ctx, *opts); }; });
  }
  AddDlqHistogramCommand(dlq, ctx);
  AddDlqReplayCommand(dlq, ctx);
  AddDlqPurgeCommand(dlq, ctx);
}

}  // namespace retryd::cli
