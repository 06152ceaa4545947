#include "client/cli/worker_cmd.h"

#include <fstream>
#include <istream>
#include <ostream>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "client/cli/format.h"
#include "client/cli/table.h"
#include "retryd/v1/retry_service.grpc.pb.h"

namespace retryd::cli {
namespace {

// Lease deadlines cover the long poll plus this much (conventions: wait_time + 5 s).
constexpr absl::Duration kLeaseDeadlineSlack = absl::Seconds(5);

struct LeaseOptions {
  std::string service;
  int max_messages = 0;  // 0 = 1 (server default)
  std::string visibility_timeout = "30s";
  std::string wait = "0s";
};

struct SuccessOptions {
  std::string service;
  std::string lease_token;
};

bool ReadAll(std::istream& in, std::string* out) {
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return false;
  *out = std::move(buffer).str();
  return true;
}

bool ReadPayload(const CliContext& ctx, const std::string& path, std::string* payload) {
  if (path == "-") return ctx.in != nullptr && ReadAll(*ctx.in, payload);
  std::ifstream file(path, std::ios::binary);
  return file && ReadAll(file, payload);
}

std::unique_ptr<retryd::v1::RetryService::Stub> NewStub(const ConnectionOptions& conn) {
  return retryd::v1::RetryService::NewStub(CreateChannel(conn));
}

int RunReportFailure(const CliContext& ctx, const ReportFailureOptions& opts) {
  std::string payload = opts.payload;
  if (!opts.payload_file.empty() && !ReadPayload(ctx, opts.payload_file, &payload)) {
    return ReportLocalError(ctx, absl::StrCat("cannot read payload file ", opts.payload_file));
  }
  retryd::v1::ReportFailureRequest request;
  std::string error;
  if (!BuildReportFailureRequest(opts, payload, &request, &error)) {
    *ctx.err << "Error: " << error << "\nRun 'retryctl report-failure --help' for usage."
             << std::endl;
    return kExitUsage;
  }

  const ConnectionOptions conn = ctx.connection();
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::ReportFailureResponse response;
  const grpc::Status status = NewStub(conn)->ReportFailure(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);

  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatDecision(response.decision());
  return kExitOk;
}

int RunLease(const CliContext& ctx, const LeaseOptions& opts) {
  absl::Duration visibility;
  absl::Duration wait;
  // Both were validated by CLI11.
  if (!ParseNonNegativeDuration(opts.visibility_timeout, &visibility) ||
      !ParseNonNegativeDuration(opts.wait, &wait)) {
    return ReportLocalError(ctx, "invalid duration");
  }
  retryd::v1::LeaseRequest request;
  request.set_service(opts.service);
  request.set_max_messages(opts.max_messages);
  ToProtoDuration(visibility, request.mutable_visibility_timeout());
  if (wait > absl::ZeroDuration()) ToProtoDuration(wait, request.mutable_wait_time());

  const ConnectionOptions conn = ctx.connection();
  grpc::ClientContext call;
  PrepareContext(conn, &call, wait + kLeaseDeadlineSlack);
  retryd::v1::LeaseResponse response;
  const grpc::Status status = NewStub(conn)->Lease(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);

  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << FormatLeaseTable(response, ctx.headers());
  ctx.out->flush();
  if (response.circuit_state() == retryd::v1::OPEN) {
    *ctx.err << "Circuit of " << opts.service << " is OPEN: nothing is handed out." << std::endl;
  } else if (response.circuit_state() == retryd::v1::HALF_OPEN) {
    *ctx.err << "Circuit of " << opts.service
             << " is HALF_OPEN: only trial retries are handed out." << std::endl;
  }
  if (response.envelopes().empty()) *ctx.err << "No due envelopes." << std::endl;
  return kExitOk;
}

int RunSuccess(const CliContext& ctx, const SuccessOptions& opts) {
  retryd::v1::ReportSuccessRequest request;
  request.set_service(opts.service);
  request.set_lease_token(opts.lease_token);

  const ConnectionOptions conn = ctx.connection();
  grpc::ClientContext call;
  PrepareContext(conn, &call);
  retryd::v1::ReportSuccessResponse response;
  const grpc::Status status = NewStub(conn)->ReportSuccess(&call, request, &response);
  if (!status.ok()) return ReportRpcError(ctx, status);

  if (ctx.output() == OutputFormat::kJson) return PrintJson(ctx, response);
  *ctx.out << "Success recorded for " << opts.service << " (lease " << opts.lease_token << ")."
           << std::endl;
  return kExitOk;
}

CLI::Validator HeaderValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        const size_t eq = value.find('=');
        if (eq == std::string::npos || eq == 0) {
          return absl::StrCat("invalid header \"", value, "\" (expected key=value)");
        }
        return "";
      },
      "KEY=VALUE");
}

}  // namespace

bool BuildReportFailureRequest(const ReportFailureOptions& opts, const std::string& payload,
                               retryd::v1::ReportFailureRequest* request, std::string* error) {
  request->Clear();
  retryd::v1::Envelope* envelope = request->mutable_envelope();
  envelope->set_service(opts.service);
  envelope->set_message_id(opts.message_id);
  envelope->set_trace_id(opts.trace_id);
  envelope->set_attempt(opts.attempt);
  envelope->set_payload(payload);
  envelope->set_content_type(opts.content_type);
  envelope->set_schema_version(opts.schema_version);
  envelope->set_source(opts.source);
  for (const std::string& header : opts.headers) {
    const size_t eq = header.find('=');
    if (eq == std::string::npos || eq == 0) {
      *error = absl::StrCat("invalid header \"", header, "\" (expected key=value)");
      return false;
    }
    (*envelope->mutable_headers())[header.substr(0, eq)] = header.substr(eq + 1);
  }

  retryd::v1::Failure* failure = request->mutable_failure();
  failure->set_error_code(opts.error_code);
  failure->set_message(opts.message);
  failure->set_http_status(opts.http_status);
  const std::string cls = absl::AsciiStrToLower(opts.error_class);
  if (cls == "transient") {
    failure->set_error_class(retryd::v1::TRANSIENT);
  } else if (cls == "recoverable") {
    failure->set_error_class(retryd::v1::RECOVERABLE);
  } else if (cls == "permanent") {
    failure->set_error_class(retryd::v1::PERMANENT);
  } else if (!cls.empty()) {
    *error = absl::StrCat("invalid --class \"", opts.error_class,
                          "\" (expected transient, recoverable or permanent)");
    return false;
  }
  if (!opts.retry_after.empty()) {
    absl::Duration retry_after;
    if (!ParseNonNegativeDuration(opts.retry_after, &retry_after)) {
      *error = absl::StrCat("invalid --retry-after \"", opts.retry_after, "\"");
      return false;
    }
    ToProtoDuration(retry_after, failure->mutable_retry_after());
  }
  request->set_lease_token(opts.lease_token);
  return true;
}

std::string FormatDecision(const retryd::v1::Decision& d) {
  KeyValues fields = {
      {"Decision", EnumLabel(retryd::v1::DecisionKind_descriptor(), d.kind(), "DECISION_")},
  };
  if (d.kind() == retryd::v1::DECISION_DEAD_LETTERED || d.reason() != 0) {
    fields.emplace_back("Reason", EnumLabel(retryd::v1::DeadLetterReason_descriptor(), d.reason()));
  }
  fields.emplace_back("Attempt", absl::StrCat(d.attempt()));
  fields.emplace_back("Class", EnumLabel(retryd::v1::ErrorClass_descriptor(), d.error_class()));
  fields.emplace_back("State", EnumLabel(retryd::v1::EnvelopeState_descriptor(), d.state()));
  if (d.kind() == retryd::v1::DECISION_SCHEDULED || d.has_next_retry_at()) {
    fields.emplace_back("Next retry", FormatTimestamp(d.next_retry_at()));
    fields.emplace_back("Delay", HumanDuration(d.delay()));
  }
  fields.emplace_back("Duplicate",
                      d.duplicate() ? "yes (already recorded; nothing was counted again)" : "no");
  return RenderKeyValues(fields);
}

std::string FormatLeaseTable(const retryd::v1::LeaseResponse& response, bool headers) {
  Table table({"MESSAGE_ID", "ATTEMPTS", "LEASE_EXPIRES_AT", "LEASE_TOKEN"});
  for (const retryd::v1::LeasedEnvelope& leased : response.envelopes()) {
    table.AddRow({
        leased.envelope().message_id(),
        absl::StrCat(leased.envelope().attempt()),
        FormatTimestamp(leased.lease_expires_at()),
        leased.lease_token(),
    });
  }
  return table.Render(headers);
}

void AddWorkerCommands(CLI::App* app, CliContext* ctx) {
  {
    auto opts = std::make_shared<ReportFailureOptions>();
    CLI::App* cmd = app->add_subcommand(
        "report-failure", "Report a failed message (first failure, or a leased retry's outcome)");
    cmd->add_option("--service", opts->service, "Service that owns the message")->required();
    cmd->add_option("--message-id", opts->message_id, "Idempotency key of the message")
        ->required();
    CLI::Option* payload = cmd->add_option("--payload", opts->payload, "Payload as a string");
    CLI::Option* payload_file =
        cmd->add_option("--payload-file", opts->payload_file,
                        "Read the payload from a file ('-' = stdin)");
    payload->excludes(payload_file);
    cmd->add_option("--error-code", opts->error_code,
                    "Machine-readable code, e.g. UPSTREAM_TIMEOUT");
    cmd->add_option("--class", opts->error_class,
                    "Error class (default: the service's rules decide)")
        ->transform(CLI::IsMember({"transient", "recoverable", "permanent"}, CLI::ignore_case));
    cmd->add_option("--message", opts->message, "Human-readable error message");
    cmd->add_option("--http-status", opts->http_status,
                    "HTTP status of the failed call (0 = none)");
    cmd->add_option("--retry-after", opts->retry_after, "Retry-After hint (e.g. 30s)")
        ->check(DurationValidator());
    cmd->add_option("--attempt", opts->attempt, "Attempts already made, the failed one included")
        ->check(NonNegativeIntValidator());
    cmd->add_option("--trace-id", opts->trace_id, "Correlation id");
    cmd->add_option("--schema-version", opts->schema_version, "Schema version of the payload");
    cmd->add_option("--content-type", opts->content_type, "MIME type of the payload");
    cmd->add_option("--source", opts->source, "The original queue or topic");
    cmd->add_option("--header", opts->headers, "Metadata header key=value (repeatable)")
        ->check(HeaderValidator());
    cmd->add_option("--lease-token", opts->lease_token,
                    "Lease the attempt ran under (reports a leased retry's failure)");
    cmd->callback(
        [ctx, opts] { ctx->action = [ctx, opts] { return RunReportFailure(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<LeaseOptions>();
    CLI::App* cmd = app->add_subcommand("lease", "Take due retries of a service under a lease");
    cmd->add_option("--service", opts->service, "Service whose due retries to take")->required();
    cmd->add_option("--max", opts->max_messages, "Envelopes at most (0 = 1, max 1000)")
        ->check(NonNegativeIntValidator());
    cmd->add_option("--visibility-timeout", opts->visibility_timeout, "How long the lease lasts")
        ->check(PositiveDurationValidator())
        ->capture_default_str();
    cmd->add_option("--wait", opts->wait, "Long-poll this long when nothing is due (max 20s)")
        ->check(DurationValidator())
        ->capture_default_str();
    cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunLease(*ctx, *opts); }; });
  }
  {
    auto opts = std::make_shared<SuccessOptions>();
    CLI::App* cmd = app->add_subcommand("success", "Report that a leased retry succeeded");
    cmd->add_option("--service", opts->service, "Service of the lease")->required();
    cmd->add_option("--lease-token", opts->lease_token, "Token returned by 'lease'")->required();
    cmd->callback([ctx, opts] { ctx->action = [ctx, opts] { return RunSuccess(*ctx, *opts); }; });
  }
}

}  // namespace retryd::cli
