#include "client/cli/dlq_histogram_cmd.h"

#include <memory>
#include <ostream>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/cli/filter_flags.h"
#include "client/cli/format.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

struct HistogramOptions {
  std::string service;
  std::string since;
  std::string until;
  std::string bucket;
};

constexpr char kCommand[] = "retryctl dlq histogram";

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts->set_seconds(seconds);
  ts->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(seconds))));
}

int RunDlqHistogram(const CliContext& ctx, const HistogramOptions& opts) {
  retryd::v1::GetDeadLetterHistogramRequest request;
  request.set_service(opts.service);
  const absl::Time now = absl::Now();
  std::string error;
  absl::Time t;
  if (!opts.since.empty()) {
    if (!ParseTimeBound(opts.since, now, &t, &error)) {
      return ReportUsageError(ctx, kCommand, absl::StrCat("--since: ", error));
    }
    SetTime(t, request.mutable_since());
  }
  if (!opts.until.empty()) {
    if (!ParseTimeBound(opts.until, now, &t, &error)) {
      return ReportUsageError(ctx, kCommand, absl::StrCat("--until: ", error));
    }
    SetTime(t, request.mutable_until());
  }
  if (!opts.bucket.empty()) {
    absl::Duration width;
    if (!ParseNonNegativeDuration(opts.bucket, &width) || width <= absl::ZeroDuration()) {
      return ReportUsageError(
          ctx, kCommand, absl::StrCat("--bucket: not a positive duration: ", opts.bucket));
    }
    ToProtoDuration(width, request.mutable_bucket_width());
  }
  const ConnectionOptions conn = ctx.connection();
  auto stub = retryd::v1::AdminService::NewStub(CreateChannel(conn));
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::GetDeadLetterHistogramResponse response;
  const grpc::Status status = stub->GetDeadLetterHistogram(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatDeadLetterHistogram(response, ctx.headers());
  if (response.series().empty()) *ctx.err << "No dead letters in the range." << std::endl;
  return kExitOk;
}

}  // namespace

std::string FormatDeadLetterHistogram(const retryd::v1::GetDeadLetterHistogramResponse& response,
                                      bool headers) {
  std::vector<std::string> columns = {"BUCKET_START"};
  for (const retryd::v1::DeadLetterSeries& s : response.series()) columns.push_back(s.service());
  columns.push_back("TOTAL");
  Table table(columns);
  for (int i = 0; i < response.bucket_starts_size(); ++i) {
    std::vector<std::string> row = {FormatTimestamp(response.bucket_starts(i))};
    int64_t total = 0;
    for (const retryd::v1::DeadLetterSeries& s : response.series()) {
      const int64_t n = i < s.counts_size() ? s.counts(i) : 0;
      total += n;
      row.push_back(absl::StrCat(n));
    }
    row.push_back(absl::StrCat(total));
    table.AddRow(row);
  }
  return table.Render(headers);
}

void AddDlqHistogramCommand(CLI::App* dlq, CliContext* ctx) {
  auto opts = std::make_shared<HistogramOptions>();
  CLI::App* cmd = dlq->add_subcommand(
      "histogram",
      "Dead letters now in the queue, counted per service and time bucket of dead_lettered_at");
  cmd->add_option("--service", opts->service, "Only this service (default: every service)");
  cmd->add_option("--since", opts->since,
                  "Start of the range: RFC 3339, or an age like 6h or 7d (default: 24h before "
                  "--until)");
  cmd->add_option("--until", opts->until,
                  "End of the range (exclusive): RFC 3339, 'now', or an age (default: now)");
  cmd->add_option("--bucket", opts->bucket,
                  "Bucket width, whole seconds, e.g. 5m or 1h (default: chosen by the server "
                  "from the range, at most 100 buckets)");
  cmd->callback(
      [ctx, opts] { ctx->action = [ctx, opts] { return RunDlqHistogram(*ctx, *opts); }; });
}

}  // namespace retryd::cli
