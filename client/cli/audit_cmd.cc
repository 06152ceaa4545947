#include "client/cli/audit_cmd.h"

#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
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

// The audit log's filters (ListAuditEventsRequest's fields).
struct AuditFilterFlags {
  std::vector<std::string> methods;
  std::vector<std::string> identities;
  std::vector<std::string> targets;
  std::vector<std::string> results;
  std::string since;
  std::string until;
};

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

// The request filters of `flags` (times resolved once, against `now`, so that every page uses the
// same filter) and, in `command`, the flags that repeat them for the next-page hint. False with
// `error` set on a bad time.
bool BuildAuditRequest(const AuditFilterFlags& flags, absl::Time now,
                       retryd::v1::ListAuditEventsRequest* request, std::string* command,
                       std::string* error) {
  auto repeat = [command](const char* flag, const std::vector<std::string>& values,
                          google::protobuf::RepeatedPtrField<std::string>* out) {
    for (const std::string& v : values) {
      *out->Add() = v;
      absl::StrAppend(command, " ", flag, " ", ShellQuote(v));
    }
  };
  repeat("--method", flags.methods, request->mutable_methods());
  repeat("--identity", flags.identities, request->mutable_identities());
  repeat("--target", flags.targets, request->mutable_targets());
  repeat("--result", flags.results, request->mutable_result_codes());
  absl::Time t;
  if (!flags.since.empty()) {
    if (!ParseTimeBound(flags.since, now, &t, error)) {
      *error = absl::StrCat("--since: ", *error);
      return false;
    }
    SetTime(t, request->mutable_since());
    absl::StrAppend(command, " --since ", absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t,
                                                           absl::UTCTimeZone()));
  }
  if (!flags.until.empty()) {
    if (!ParseTimeBound(flags.until, now, &t, error)) {
      *error = absl::StrCat("--until: ", *error);
      return false;
    }
    SetTime(t, request->mutable_until());
    absl::StrAppend(command, " --until ", absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", t,
                                                           absl::UTCTimeZone()));
  }
  return true;
}

int RunAudit(const CliContext& ctx, const AuditFilterFlags& filters, const PageFlags& pages) {
  retryd::v1::ListAuditEventsRequest base;
  std::string command = "retryctl audit";
  std::string error;
  if (!BuildAuditRequest(filters, absl::Now(), &base, &command, &error)) {
    return ReportUsageError(ctx, "retryctl audit", error);
  }
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  return RunListing<retryd::v1::ListAuditEventsResponse>(
      ctx, command, nullptr, pages,
      AdminPageFetcher(conn, stub.get(), &retryd::v1::AdminService::Stub::ListAuditEvents, base),
      [](retryd::v1::ListAuditEventsResponse* r) { return r->mutable_events(); },
      FormatAuditTable, "No audit events found.");
}

// Adds the audit filter flags to `cmd`.
void AddAuditFilterFlags(CLI::App* cmd, AuditFilterFlags* flags) {
  cmd->add_option("--method", flags->methods,
                  "Only this RPC, e.g. PurgeDeadLetters (repeatable: any of them)");
  cmd->add_option("--identity", flags->identities,
                  "Only this caller identity (token name, certificate SAN; repeatable)");
  cmd->add_option("--target", flags->targets,
                  "Only this target, e.g. replays/7 or a service name (repeatable)");
  cmd->add_option("--result", flags->results,
                  "Only this outcome code, e.g. OK or INVALID_ARGUMENT (repeatable)");
  cmd->add_option("--since", flags->since,
                  "Only events at or after this time: RFC 3339, or an age like 2h or 7d")
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  cmd->add_option("--until", flags->until,
                  "Only events before this time: RFC 3339, 'now', or an age")
      ->multi_option_policy(CLI::MultiOptionPolicy::Throw);
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
  auto filters = std::make_shared<AuditFilterFlags>();
  CLI::App* audit = app->add_subcommand(
      "audit", "List operator mutations (purges, replays, circuit overrides), newest first");
  audit->require_subcommand(0, 1);
  AddAuditFilterFlags(audit, filters.get());
  AddPageFlags(audit, pages.get(), "events");
  const auto select = [ctx, pages, filters] {
    ctx->action = [ctx, pages, filters] { return RunAudit(*ctx, *filters, *pages); };
  };
  audit->callback(select);
  CLI::App* list = audit->add_subcommand("list", "Same as 'audit'");
  AddAuditFilterFlags(list, filters.get());
  AddPageFlags(list, pages.get(), "events");
  list->callback(select);
}

}  // namespace retryd::cli
