// `retryctl dlq ...`: the dead-letter queue.
//   dlq list     AdminService.ListDeadLetters (filter flags, pagination)
//   dlq show     AdminService.GetEnvelope of one dead letter
//   dlq stats    AdminService.GetDeadLetterStats
//   dlq groups   AdminService.ListFailureGroups (filter flags, pagination)
//   dlq histogram  see dlq_histogram_cmd.h
//   dlq replay   see replay_cmd.h
//   dlq purge    see purge_cmd.h
#ifndef RETRYD_CLIENT_CLI_DLQ_CMD_H_
#define RETRYD_CLIENT_CLI_DLQ_CMD_H_

#include <cstdint>
#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddDlqCommands(CLI::App* app, CliContext* ctx);

// Columns: SERVICE MESSAGE_ID REASON ATTEMPTS ERROR_CODE DEAD_LETTERED_AT.
std::string FormatDeadLettersTable(const retryd::v1::ListDeadLettersResponse& response,
                                   bool headers);

// The same columns for a list of envelopes (a dry run's sample).
std::string FormatDeadLetterRows(
    const google::protobuf::RepeatedPtrField<retryd::v1::Envelope>& envelopes, bool headers);

// What a bulk command shows above its confirmation question: "Sample of the <count> dead letters
// to <verb>:" and the first kPromptSampleRows rows of a dry run's `sample`; "" without a sample.
inline constexpr int kPromptSampleRows = 10;
std::string FormatPromptSample(
    const google::protobuf::RepeatedPtrField<retryd::v1::Envelope>& sample, int64_t count,
    const std::string& verb);

// A summary block (total, last hour, oldest age, shares), then "By service and reason:" and
// "Top error codes:" tables.
std::string FormatDeadLetterStats(const retryd::v1::GetDeadLetterStatsResponse& stats,
                                  bool headers);

// Columns: FINGERPRINT COUNT SERVICE CLASS ERROR_CODE FIRST_SEEN LAST_SEEN MESSAGE (the
// normalised message, cut to 60 characters).
std::string FormatFailureGroupsTable(const retryd::v1::ListFailureGroupsResponse& response,
                                     bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_DLQ_CMD_H_
