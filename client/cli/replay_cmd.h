// Replays: `retryctl dlq replay` (AdminService.StartReplay, with --dry-run, confirmation and
// --watch) and `retryctl replay status|list|cancel` (GetReplay, ListReplays, CancelReplay).
#ifndef RETRYD_CLIENT_CLI_REPLAY_CMD_H_
#define RETRYD_CLIENT_CLI_REPLAY_CMD_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

// Adds `replay` under `retryctl dlq`.
void AddDlqReplayCommand(CLI::App* dlq, CliContext* ctx);
// Adds the top-level `replay status|list|cancel`.
void AddReplayCommands(CLI::App* app, CliContext* ctx);

// "replays/7" for "7" or "replays/7"; other text unchanged (the server judges it).
std::string ReplayName(const std::string& arg);

// True for SUCCEEDED, FAILED and CANCELLED.
bool IsFinalReplayState(retryd::v1::ReplayState state);

// Dead letters the replay will handle: `matched`, capped by `limit` when there is one.
int64_t ReplayTarget(const retryd::v1::Replay& replay);

// The detail view of a replay; for a dry run, followed by its sample as a dead-letter table.
std::string FormatReplayDetail(const retryd::v1::Replay& replay, bool headers);

// Columns: NAME STATE DRY_RUN MATCHED REPLAYED SKIPPED FAILED RATE CREATED_AT FILTER NOTE.
std::string FormatReplaysTable(const retryd::v1::ListReplaysResponse& response, bool headers);

// One plain progress line (no newline), for logs:
// "replays/7 RUNNING 314/1000 handled (replayed 312, skipped 2, failed 0)".
std::string FormatReplayProgressLine(const retryd::v1::Replay& replay);

// The in-place progress bar of a terminal (no '\r', no newline), `width` cells wide:
// "replays/7 RUNNING [#########-----] 31% 314/1000 (replayed 312, skipped 2, failed 0) ~14s left".
std::string FormatReplayProgressBar(const retryd::v1::Replay& replay, size_t width);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_REPLAY_CMD_H_
