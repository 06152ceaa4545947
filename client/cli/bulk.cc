#include "client/cli/bulk.h"

#include <istream>
#include <ostream>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace retryd::cli {

std::string NewRequestId() {
  std::random_device device;
  std::string id = "retryctl-";
  for (int i = 0; i < 4; ++i) absl::StrAppendFormat(&id, "%08x", device());
  return id;
}

std::string DryRunRequestId(const std::string& request_id) {
  return absl::StrCat(request_id, "-dry-run");
}

grpc::Status CallWithRetry(const CliContext& ctx,
                           const std::function<grpc::Status(grpc::ClientContext*)>& call) {
  const ConnectionOptions conn = ctx.connection();
  absl::Duration pause = absl::Milliseconds(500);
  grpc::Status status;
  for (int attempt = 1; attempt <= kMutationAttempts; ++attempt) {
    grpc::ClientContext context;
    PrepareContext(conn, &context);
    status = call(&context);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    if (attempt < kMutationAttempts) {
      ctx.sleep(pause);
      pause *= 2;
    }
  }
  return status;
}

std::string RetryHint(const std::string& command, const std::string& request_id) {
  return absl::StrCat("The server may have applied it. Re-running '", command,
                      "' with --request-id ", request_id, " is safe: it is not applied twice.");
}

int ReportMutationError(const CliContext& ctx, const grpc::Status& status,
                        const std::string& command, const std::string& request_id) {
  const int rc = ReportRpcError(ctx, status);
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
      status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    *ctx.err << RetryHint(command, request_id) << std::endl;
  }
  return rc;
}

int ConfirmBulk(const CliContext& ctx, bool yes, int64_t count, const std::string& command,
                const std::string& verb, const std::string& question,
                const std::string& details) {
  if (yes || count <= kConfirmThreshold) return kExitOk;
  if (!ctx.terminal.stdin_is_terminal || ctx.in == nullptr) {
    return ReportUsageError(
        ctx, command,
        absl::StrCat("this would ", verb, " ", count, " dead letters (more than ",
                     kConfirmThreshold,
                     ") and there is no terminal to confirm on; add --yes to go ahead, or "
                     "--dry-run to see what matches"));
  }
  *ctx.err << details << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(*ctx.in, answer)) answer.clear();
  answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
  if (answer == "y" || answer == "yes") return kExitOk;
  *ctx.err << "Aborted; nothing was changed." << std::endl;
  return kExitDeclined;
}

}  // namespace retryd::cli
