#include "client/cli/replay_cmd.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/bulk.h"
#include "client/cli/dlq_cmd.h"
#include "client/cli/filter_flags.h"
#include "client/cli/format.h"
#include "client/cli/listing.h"
#include "client/cli/table.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

using Stub = retryd::v1::AdminService::Stub;

constexpr char kDlqReplay[] = "retryctl dlq replay";
// Longest filter summary and note in a `replay list` row; `replay status` shows them whole.
constexpr size_t kListFilterWidth = 60;
constexpr size_t kListNoteWidth = 40;
// Width of the progress bar's [####----] part.
constexpr size_t kBarWidth = 30;
// --watch keeps polling through UNAVAILABLE (a server restart: replays resume) this long.
constexpr absl::Duration kWatchUnavailableGrace = absl::Seconds(60);
// Polling interval while waiting for a dry run that did not finish in its StartReplay answer.
constexpr absl::Duration kDryRunPoll = absl::Milliseconds(200);

struct StartOptions {
  FilterFlags filter;
  double max_per_second = 0;
  int64_t limit = 0;
  int canary = 0;
  bool no_reset_attempts = false;
  std::string note;
  std::string request_id;
  bool dry_run = false;
  bool yes = false;
  bool watch = false;
  std::string interval = "1s";
};

struct StatusOptions {
  std::string name;
  bool watch = false;
  std::string interval = "1s";
};

struct ListOptions {
  PageFlags pages;
};

struct CancelOptions {
  std::string name;
};

std::unique_ptr<Stub> NewAdminStub(const CliContext& ctx) {
  return retryd::v1::AdminService::NewStub(CreateChannel(ctx.connection()));
}

absl::Duration Interval(const std::string& text) {
  absl::Duration d;
  // Validated by CLI11; 1 s if it somehow does not parse.
  if (!ParseNonNegativeDuration(text, &d) || d <= absl::ZeroDuration()) return absl::Seconds(1);
  return d;
}

std::string Rate(double per_second) {
  return per_second > 0 ? absl::StrFormat("%g", per_second) : std::string(kNone);
}

std::string YesNo(bool b) { return b ? "yes" : "no"; }

int64_t Handled(const retryd::v1::Replay& r) {
  return r.replayed() + r.skipped_blocked_schema() + r.failed();
}

std::string Counts(const retryd::v1::Replay& r) {
  return absl::StrCat("(replayed ", r.replayed(), ", skipped ", r.skipped_blocked_schema(),
                      ", failed ", r.failed(), ")");
}

std::string State(const retryd::v1::Replay& r) {
  return EnumLabel(retryd::v1::ReplayState_descriptor(), r.state(), "REPLAY_");
}

// Writes progress to stderr as --watch goes: redrawn in place on a terminal, else one line per
// change.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(const CliContext& ctx)
      : ctx_(ctx), bar_(ctx.terminal.stderr_is_terminal) {}

  void Update(const retryd::v1::Replay& replay) {
    if (bar_) {
      // "\x1b[K" clears what a longer previous line left on the right.
      *ctx_.err << '\r' << FormatReplayProgressBar(replay, kBarWidth) << "\x1b[K" << std::flush;
      drawn_ = true;
      return;
    }
    std::string line = FormatReplayProgressLine(replay);
    if (line != last_line_) {
      *ctx_.err << line << std::endl;
      last_line_ = std::move(line);
    }
  }

  void Finish() {
    if (bar_ && drawn_) *ctx_.err << std::endl;
  }

 private:
  const CliContext& ctx_;
  const bool bar_;
  bool drawn_ = false;
  std::string last_line_;
};

// Polls GetReplay every `interval` until the replay is final, showing progress when `printer` is
// set. UNAVAILABLE is tolerated for kWatchUnavailableGrace (replays survive a server restart).
grpc::Status PollUntilFinal(const CliContext& ctx, Stub* stub, retryd::v1::Replay* replay,
                            absl::Duration interval, ProgressPrinter* printer) {
  absl::Time unavailable_since = absl::InfiniteFuture();
  const ConnectionOptions conn = ctx.connection();
  while (true) {
    if (printer != nullptr) printer->Update(*replay);
    if (IsFinalReplayState(replay->state())) return grpc::Status::OK;
    ctx.sleep(interval);
    retryd::v1::GetReplayRequest request;
    request.set_name(replay->name());
    grpc::ClientContext call;
    PrepareContext(conn, &call);
    retryd::v1::Replay next;
    const grpc::Status status = stub->GetReplay(&call, request, &next);
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      const absl::Time now = absl::Now();
      unavailable_since = std::min(unavailable_since, now);
      if (now - unavailable_since < kWatchUnavailableGrace) continue;
    }
    if (!status.ok()) return status;
    unavailable_since = absl::InfiniteFuture();
    *replay = std::move(next);
  }
}

int PrintReplay(const CliContext& ctx, const retryd::v1::Replay& replay) {
  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, replay);
  *ctx.out << FormatReplayDetail(replay, ctx.headers());
  ctx.out->flush();
  return kExitOk;
}

// Watches `replay` to its end, prints its final state and returns the exit code (FAILED: 5).
int WatchAndPrint(const CliContext& ctx, Stub* stub, retryd::v1::Replay replay,
                  absl::Duration interval) {
  ProgressPrinter printer(ctx);
  const grpc::Status status = PollUntilFinal(ctx, stub, &replay, interval, &printer);
  printer.Finish();
  if (!status.ok()) return ReportRpcError(ctx, status);
  const int rc = PrintReplay(ctx, replay);
  if (rc != kExitOk) return rc;
  if (replay.state() == retryd::v1::REPLAY_FAILED) {
    *ctx.err << "Error: " << replay.name() << " FAILED: " << OrNone(replay.error()) << std::endl;
    return kExitReplayFailed;
  }
  return kExitOk;
}

grpc::Status StartReplay(const CliContext& ctx, Stub* stub,
                         const retryd::v1::StartReplayRequest& request,
                         retryd::v1::Replay* replay) {
  return CallWithRetry(ctx, [&](grpc::ClientContext* call) {
    replay->Clear();
    return stub->StartReplay(call, request, replay);
  });
}

int RunDlqReplay(const CliContext& ctx, const StartOptions& opts) {
  retryd::v1::StartReplayRequest request;
  std::string error;
  if (!BuildFilter(opts.filter, absl::Now(), request.mutable_filter(), &error)) {
    return ReportUsageError(ctx, kDlqReplay, error);
  }
  request.set_max_per_second(opts.max_per_second);
  request.set_limit(opts.limit);
  request.set_canary_count(opts.canary);
  request.set_reset_attempts(!opts.no_reset_attempts);
  request.set_note(opts.note);
  const std::string request_id = opts.request_id.empty() ? NewRequestId() : opts.request_id;
  auto stub = NewAdminStub(ctx);

  if (opts.dry_run) {
    request.set_dry_run(true);
    request.set_request_id(DryRunRequestId(request_id));
    retryd::v1::Replay replay;
    grpc::Status status = StartReplay(ctx, stub.get(), request, &replay);
    if (status.ok()) status = PollUntilFinal(ctx, stub.get(), &replay, kDryRunPoll, nullptr);
    if (!status.ok()) return ReportRpcError(ctx, status);
    return PrintReplay(ctx, replay);
  }

  // A limit within the threshold needs no count; otherwise a dry run tells how many would move.
  if (!opts.yes && !(opts.limit > 0 && opts.limit <= kConfirmThreshold)) {
    retryd::v1::StartReplayRequest dry = request;
    dry.set_dry_run(true);
    dry.set_request_id(DryRunRequestId(request_id));
    retryd::v1::Replay counted;
    grpc::Status status = StartReplay(ctx, stub.get(), dry, &counted);
    if (status.ok()) status = PollUntilFinal(ctx, stub.get(), &counted, kDryRunPoll, nullptr);
    if (!status.ok()) return ReportRpcError(ctx, status);
    const int64_t count = ReplayTarget(counted);
    const std::string details = FormatPromptSample(counted.sample(), count, "replay");
    const int rc = ConfirmBulk(
        ctx, opts.yes, count, kDlqReplay, "replay",
        absl::StrCat("Replay ", count, " dead letters matching ", FilterSummary(request.filter()),
                     "?"),
        details);
    if (rc != kExitOk) return rc;
  }

  request.set_request_id(request_id);
  retryd::v1::Replay replay;
  const grpc::Status status = StartReplay(ctx, stub.get(), request, &replay);
  if (!status.ok()) return ReportMutationError(ctx, status, kDlqReplay, request_id);
  if (opts.watch) return WatchAndPrint(ctx, stub.get(), replay, Interval(opts.interval));
  const int rc = PrintReplay(ctx, replay);
  if (rc == kExitOk && !IsFinalReplayState(replay.state())) {
    *ctx.err << "Follow it with: retryctl replay status " << replay.name() << " --watch"
             << std::endl;
  }
  return rc;
}

int RunReplayStatus(const CliContext& ctx, const StatusOptions& opts) {
  auto stub = NewAdminStub(ctx);
  grpc::ClientContext call;
  PrepareContext(ctx.connection(), &call);
  retryd::v1::GetReplayRequest request;
  request.set_name(ReplayName(opts.name));
  retryd::v1::Replay replay;
  const grpc::Status status = stub->GetReplay(&call, request, &replay);
  if (!status.ok()) return ReportRpcError(ctx, status);
  if (opts.watch) return WatchAndPrint(ctx, stub.get(), replay, Interval(opts.interval));
  return PrintReplay(ctx, replay);
}

int RunReplayList(const CliContext& ctx, const ListOptions& opts) {
  return RunAdminListing(
      ctx, "retryctl replay list", opts.pages, &retryd::v1::AdminService::Stub::ListReplays,
      [](retryd::v1::ListReplaysResponse* r) { return r->mutable_replays(); }, FormatReplaysTable,
      "No replays found.");
}

int RunReplayCancel(const CliContext& ctx, const CancelOptions& opts) {
  auto stub = NewAdminStub(ctx);
  retryd::v1::CancelReplayRequest request;
  request.set_name(ReplayName(opts.name));
  retryd::v1::Replay replay;
  // Cancelling twice is harmless, so an UNAVAILABLE call is retried like the bulk mutations.
  const grpc::Status status = CallWithRetry(ctx, [&](grpc::ClientContext* call) {
    replay.Clear();
    return stub->CancelReplay(call, request, &replay);
  });
  if (!status.ok()) return ReportRpcError(ctx, status);
  return PrintReplay(ctx, replay);
}

void AddWatchFlags(CLI::App* cmd, bool* watch, std::string* interval) {
  cmd->add_flag("--watch", *watch,
                "Show progress until the replay ends (a bar on a terminal, lines otherwise); "
                "exit 5 if it FAILED");
  cmd->add_option("--interval", *interval, "How often --watch polls")
      ->check(PositiveDurationValidator())
      ->capture_default_str();
}

}  // namespace

std::string ReplayName(const std::string& arg) {
  if (!arg.empty() && arg.find('/') == std::string::npos) return absl::StrCat("replays/", arg);
  return arg;
}

bool IsFinalReplayState(retryd::v1::ReplayState state) {
  return state == retryd::v1::REPLAY_SUCCEEDED || state == retryd::v1::REPLAY_FAILED ||
         state == retryd::v1::REPLAY_CANCELLED;
}

int64_t ReplayTarget(const retryd::v1::Replay& replay) {
  return replay.limit() > 0 ? std::min(replay.matched(), replay.limit()) : replay.matched();
}

std::string FormatReplayDetail(const retryd::v1::Replay& r, bool headers) {
  KeyValues fields = {
      {"Name", r.name()},
      {"State", State(r)},
      {"Filter", FilterSummary(r.filter())},
      {"Dry run", YesNo(r.dry_run())},
      {"Max per second", Rate(r.max_per_second())},
      {"Limit", r.limit() > 0 ? absl::StrCat(r.limit()) : std::string("none")},
      {"Canary", r.canary_count() > 0 ? absl::StrCat(r.canary_count()) : std::string("none")},
      {"Reset attempts", YesNo(r.reset_attempts())},
      {"Note", OrNone(r.note())},
      {"Created by", OrNone(r.created_by())},
      {"Request id", OrNone(r.request_id())},
      {"Created", FormatTimestamp(r.create_time())},
      {"Started", FormatTimestamp(r.start_time())},
      {"Ended", FormatTimestamp(r.end_time())},
      {"Matched", absl::StrCat(r.matched())},
      {"Replayed", absl::StrCat(r.replayed())},
      {"Skipped (blocked schema)", absl::StrCat(r.skipped_blocked_schema())},
      {"Failed", absl::StrCat(r.failed())},
  };
  if (!r.error().empty()) fields.emplace_back("Error", r.error());
  std::string out = RenderKeyValues(fields);
  if (r.dry_run()) {
    absl::StrAppend(&out, "\nDry run: ", ReplayTarget(r),
                    " dead letters would be replayed; nothing was changed.\n");
    if (!r.sample().empty()) {
      absl::StrAppend(&out, "Sample (", r.sample_size(), " of ", r.matched(), "):\n",
                      FormatDeadLetterRows(r.sample(), headers));
    }
  }
  return out;
}

std::string FormatReplaysTable(const retryd::v1::ListReplaysResponse& response, bool headers) {
  Table table({"NAME", "STATE", "DRY_RUN", "MATCHED", "REPLAYED", "SKIPPED", "FAILED", "RATE",
               "CREATED_AT", "FILTER", "NOTE"});
  for (const retryd::v1::Replay& r : response.replays()) {
    table.AddRow({
        r.name(),
        State(r),
        r.dry_run() ? "yes" : "no",
        absl::StrCat(r.matched()),
        absl::StrCat(r.replayed()),
        absl::StrCat(r.skipped_blocked_schema()),
        absl::StrCat(r.failed()),
        Rate(r.max_per_second()),
        FormatTimestamp(r.create_time()),
        SanitizeCell(FilterSummary(r.filter()), kListFilterWidth),
        SanitizeCell(r.note(), kListNoteWidth),
    });
  }
  return table.Render(headers);
}

std::string FormatReplayProgressLine(const retryd::v1::Replay& r) {
  std::string line = absl::StrCat(r.name(), " ", State(r), " ", Handled(r), "/", ReplayTarget(r),
                                  " handled ", Counts(r));
  if (!r.error().empty()) absl::StrAppend(&line, " error: ", SanitizeCell(r.error()));
  return line;
}

std::string FormatReplayProgressBar(const retryd::v1::Replay& r, size_t width) {
  const int64_t target = ReplayTarget(r);
  const int64_t handled = Handled(r);
  double fraction = target > 0 ? static_cast<double>(handled) / static_cast<double>(target) : 0;
  if (r.state() == retryd::v1::REPLAY_SUCCEEDED) fraction = 1;
  fraction = std::clamp(fraction, 0.0, 1.0);
  const auto filled = static_cast<size_t>(std::floor(fraction * static_cast<double>(width)));
  std::string bar = absl::StrCat(r.name(), " ", State(r), " [", std::string(filled, '#'),
                                 std::string(width - filled, '-'), "] ",
                                 static_cast<int>(std::floor(fraction * 100)), "% ", handled, "/",
                                 target, " ", Counts(r));
  if (r.state() == retryd::v1::REPLAY_RUNNING && r.max_per_second() > 0 && target > handled) {
    const double seconds = std::ceil(static_cast<double>(target - handled) / r.max_per_second());
    absl::StrAppend(&bar, " ~", HumanDuration(absl::Seconds(seconds)), " left");
  }
  if (!r.error().empty()) absl::StrAppend(&bar, " error: ", SanitizeCell(r.error()));
  return bar;
}

void AddDlqReplayCommand(CLI::App* dlq, CliContext* ctx) {
  auto opts = std::make_shared<StartOptions>();
  CLI::App* cmd = dlq->add_subcommand(
      "replay",
      "Re-schedule the dead letters that match the filter, paced (asks before more than 100)");
  AddFilterFlags(cmd, &opts->filter, FilterTarget::kDeadLetters);
  cmd->add_option("--max-per-second", opts->max_per_second,
                  "Pace in envelopes per second (0 = the policy's replay limit, which also caps "
                  "it)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", opts->limit, "Replay at most this many (0 = no limit)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--canary", opts->canary,
                  "Replay this many first and go on only if none dead-letters again")
      ->check(NonNegativeIntValidator());
  cmd->add_flag("--no-reset-attempts", opts->no_reset_attempts,
                "Keep the attempt counts (default: replayed envelopes start again at 0)");
  cmd->add_option("--note", opts->note, "Why, recorded in the audit log (at most 1024 bytes)");
  cmd->add_option("--request-id", opts->request_id,
                  "Idempotency key: the same id never starts a second replay (default: random; "
                  "a dry run sends <id>-dry-run)");
  cmd->add_flag("--dry-run", opts->dry_run, "Count and sample the matches; change nothing");
  cmd->add_flag("-y,--yes", opts->yes, "Do not ask for confirmation");
  AddWatchFlags(cmd, &opts->watch, &opts->interval);
  cmd->footer(absl::StrCat(kFilterHelp, R"(

More than 100 dead letters to replay (counted with a dry run first): asks on a
terminal; without one, refuses (exit 2) unless --yes. A declined question exits 3.
--watch exits 5 if the replay ends FAILED.)"));
  cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunDlqReplay(*ctx, *opts); }; });
}

void AddReplayCommands(CLI::App* app, CliContext* ctx) {
  CLI::App* replay = app->add_subcommand(
      "replay", "Follow, list and cancel replays (start one with 'dlq replay')");
  replay->require_subcommand(1);
  {
    auto opts = std::make_shared<StatusOptions>();
    CLI::App* cmd = replay->add_subcommand("status", "Show one replay and its progress");
    cmd->add_option("NAME", opts->name, "replays/<id> (or just the id)")->required();
    AddWatchFlags(cmd, &opts->watch, &opts->interval);
    cmd->callback(
        [ctx, opts] { ctx->action = [ctx, opts] { return RunReplayStatus(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<ListOptions>();
    CLI::App* cmd = replay->add_subcommand("list", "List replays, newest first");
    AddPageFlags(cmd, &opts->pages, "replays");
    cmd->callback(
        [ctx, opts] { ctx->action = [ctx, opts] { return RunReplayList(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<CancelOptions>();
    CLI::App* cmd = replay->add_subcommand("cancel", "Stop a replay (what it did stays done)");
    cmd->add_option("NAME", opts->name, "replays/<id> (or just the id)")->required();
    cmd->callback(
        [ctx, opts] { ctx->action = [ctx, opts] { return RunReplayCancel(*ctx, *opts); }; });
  }
}

}  // namespace retryd::cli
