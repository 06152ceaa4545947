// `retryctl dlq histogram`: dead letters over time per service
// (AdminService.GetDeadLetterHistogram): --service, --since, --until, --bucket; a table of one
// row per bucket, or -o json.
#ifndef RETRYD_CLIENT_CLI_DLQ_HISTOGRAM_CMD_H_
#define RETRYD_CLIENT_CLI_DLQ_HISTOGRAM_CMD_H_

#include <string>

#include "client/cli/common.h"
#include "retryd/v1/admin_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

// Adds `histogram` under `dlq`.
void AddDlqHistogramCommand(CLI::App* dlq, CliContext* ctx);

// Columns: BUCKET_START, one per service (its name), TOTAL; one row per bucket, oldest first.
std::string FormatDeadLetterHistogram(const retryd::v1::GetDeadLetterHistogramResponse& response,
                                      bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_DLQ_HISTOGRAM_CMD_H_
