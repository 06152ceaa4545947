// The worker-side RPCs, for operators and scripts: `report-failure` (RetryService.ReportFailure),
// `lease` (RetryService.Lease) and `success` (RetryService.ReportSuccess).
#ifndef RETRYD_CLIENT_CLI_WORKER_CMD_H_
#define RETRYD_CLIENT_CLI_WORKER_CMD_H_

#include <string>
#include <vector>

#include "client/cli/common.h"
#include "retryd/v1/retry_service.pb.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddWorkerCommands(CLI::App* app, CliContext* ctx);

// The flags of `report-failure`, as CLI11 binds them.
struct ReportFailureOptions {
  std::string service;
  std::string message_id;
  std::string payload;       // --payload
  std::string payload_file;  // --payload-file ("-" = stdin)
  std::string error_code;
  std::string error_class;  // "", transient, recoverable or permanent
  std::string message;
  int http_status = 0;
  std::string retry_after;  // a duration, "" = none
  int attempt = 0;
  std::string trace_id;
  std::string schema_version;
  std::string content_type;
  std::string source;
  std::vector<std::string> headers;  // "key=value"
  std::string lease_token;
};

// Builds the request from the flags; `payload` is the payload already read (from --payload or
// --payload-file). Returns false with `error` set when a flag value is unusable.
bool BuildReportFailureRequest(const ReportFailureOptions& options, const std::string& payload,
                               retryd::v1::ReportFailureRequest* request, std::string* error);

// The human view of a decision ("Decision:  SCHEDULED", attempt, class, next retry, ...).
std::string FormatDecision(const retryd::v1::Decision& decision);

// Columns: MESSAGE_ID ATTEMPTS LEASE_EXPIRES_AT LEASE_TOKEN. ATTEMPTS is the attempts made so
// far; this delivery is attempt ATTEMPTS+1.
std::string FormatLeaseTable(const retryd::v1::LeaseResponse& response, bool headers);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_WORKER_CMD_H_
