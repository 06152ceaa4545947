#include "client/cli/common.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <ostream>
#include <sstream>
#include <utility>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/cli/wire.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace retryd::cli {
namespace {

constexpr char kErrorInfoTypeUrl[] = "type.googleapis.com/google.rpc.ErrorInfo";

CLI::Validator MakeDurationValidator(bool positive) {
  return CLI::Validator(
      [positive](std::string& value) -> std::string {
        absl::Duration d;
        if (!ParseNonNegativeDuration(value, &d)) {
          return absl::StrCat("invalid duration \"", value,
                              "\" (expected e.g. 500ms, 10s, 1m30s, 2h)");
        }
        if (positive && d == absl::ZeroDuration()) return "duration must be greater than 0";
        return "";
      },
      "DURATION");
}

}  // namespace

OutputFormat CliContext::output() const {
  return flags.output == "json" ? OutputFormat::kJson : OutputFormat::kTable;
}

ConnectionOptions CliContext::connection() const {
  ConnectionOptions options;
  options.server = flags.server;
  options.token = flags.token;
  options.tls = tls;
  // Already validated by CLI11; the default stays if it somehow does not parse.
  absl::Duration timeout;
  if (ParseNonNegativeDuration(flags.timeout, &timeout) && timeout > absl::ZeroDuration()) {
    options.timeout = timeout;
  }
  return options;
}

bool ParseNonNegativeDuration(const std::string& text, absl::Duration* out) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) return false;
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration()) return false;
  *out = d;
  return true;
}

CLI::Validator DurationValidator() { return MakeDurationValidator(/*positive=*/false); }
CLI::Validator PositiveDurationValidator() { return MakeDurationValidator(/*positive=*/true); }

CLI::Validator NonNegativeIntValidator() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        int64_t n = 0;
        if (!absl::SimpleAtoi(value, &n) || n < 0 || n > std::numeric_limits<int32_t>::max()) {
          return absl::StrCat("\"", value, "\" is not a non-negative integer");
        }
        return "";
      },
      "NON-NEGATIVE");
}

int LoadTlsFiles(const GlobalFlags& flags, TlsOptions* out, std::string* error) {
  *out = TlsOptions();
  out->enabled = flags.tls || !flags.tls_ca.empty() || !flags.tls_cert.empty() ||
                 !flags.tls_key.empty() || !flags.tls_server_name.empty();
  if (!out->enabled) return kExitOk;
  if (flags.tls_cert.empty() != flags.tls_key.empty()) {
    *error = flags.tls_cert.empty() ? "--tls-key needs --tls-cert" : "--tls-cert needs --tls-key";
    return kExitUsage;
  }
  const std::pair<const std::string*, std::string*> files[] = {
      {&flags.tls_ca, &out->ca_pem}, {&flags.tls_cert, &out->cert_pem},
      {&flags.tls_key, &out->key_pem}};
  const char* const names[] = {"--tls-ca", "--tls-cert", "--tls-key"};
  for (int i = 0; i < 3; ++i) {
    const std::string& path = *files[i].first;
    if (path.empty()) continue;
    errno = 0;
    std::ifstream in(path, std::ios::binary);
    std::stringstream contents;
    if (in) contents << in.rdbuf();
    if (!in || in.bad() || contents.str().empty()) {
      *error = absl::StrCat(names[i], " ", path, ": cannot read",
                            errno != 0 ? absl::StrCat(" (", std::strerror(errno), ")") : "");
      return kExitLocalFailure;
    }
    *files[i].second = contents.str();
  }
  out->server_name = flags.tls_server_name;
  return kExitOk;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const ConnectionOptions& options) {
  if (!options.tls.enabled) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls.ca_pem;
  ssl.pem_private_key = options.tls.key_pem;
  ssl.pem_cert_chain = options.tls.cert_pem;
  return grpc::SslCredentials(ssl);
}

std::shared_ptr<grpc::Channel> CreateChannel(const ConnectionOptions& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  if (options.tls.enabled && !options.tls.server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls.server_name);
  }
  return grpc::CreateCustomChannel(options.server, ChannelCredentialsFor(options), args);
}

void PrepareContext(const ConnectionOptions& options, grpc::ClientContext* context,
                    absl::Duration min_timeout) {
  const absl::Duration timeout = std::max(options.timeout, min_timeout);
  // gRPC deadlines take system_clock time points only.
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            absl::ToChronoNanoseconds(timeout)));
  if (!options.token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options.token));
  }
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: break;
  }
  return absl::StrCat("CODE_", static_cast<int>(code));
}

int ExitCodeForStatus(const grpc::Status& status) {
  if (status.ok()) return kExitOk;
  int code = static_cast<int>(status.error_code());
  if (code < 1 || code > static_cast<int>(grpc::StatusCode::UNAUTHENTICATED)) {
    code = static_cast<int>(grpc::StatusCode::UNKNOWN);
  }
  return kExitRpcBase + code;
}

std::string ErrorInfoReason(const std::string& status_details) {
  // google.rpc.Status { int32 code = 1; string message = 2;
  //                     repeated google.protobuf.Any details = 3; }
  // google.protobuf.Any { string type_url = 1; bytes value = 2; }
  // google.rpc.ErrorInfo { string reason = 1; string domain = 2; map<string,string> metadata = 3; }
  std::vector<WireField> status_fields;
  if (status_details.empty() || !ParseWireFields(status_details, &status_fields)) return "";
  for (const WireField& detail : status_fields) {
    if (detail.number != 3 || detail.wire_type != 2) continue;
    std::vector<WireField> any_fields;
    if (!ParseWireFields(detail.bytes_value, &any_fields)) continue;
    std::string type_url;
    const std::string* value = nullptr;
    for (const WireField& f : any_fields) {
      if (f.wire_type != 2) continue;
      if (f.number == 1) type_url = f.bytes_value;
      if (f.number == 2) value = &f.bytes_value;
    }
    if (type_url != kErrorInfoTypeUrl || value == nullptr) continue;
    std::vector<WireField> info_fields;
    if (!ParseWireFields(*value, &info_fields)) continue;
    for (const WireField& f : info_fields) {
      if (f.number == 1 && f.wire_type == 2) return f.bytes_value;
    }
  }
  return "";
}

std::string FormatRpcError(const grpc::Status& status) {
  std::string message = status.error_message();
  if (message.empty() && status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    // What a server without this RPC (an older retryd) answers, with no message of its own.
    message = "the server does not support this command (an older retryd?)";
  }
  if (message.empty()) message = StatusCodeName(status.error_code());
  std::string out =
      absl::StrCat("Error: ", message, " (code=", StatusCodeName(status.error_code()));
  const std::string reason = ErrorInfoReason(status.error_details());
  if (!reason.empty()) absl::StrAppend(&out, ", reason=", reason);
  out.push_back(')');
  return out;
}

int ReportRpcError(const CliContext& ctx, const grpc::Status& status) {
  *ctx.err << FormatRpcError(status) << std::endl;
  return ExitCodeForStatus(status);
}

int ReportLocalError(const CliContext& ctx, const std::string& message) {
  *ctx.err << "Error: " << message << std::endl;
  return kExitLocalFailure;
}

int ReportUsageError(const CliContext& ctx, const std::string& command,
                     const std::string& message) {
  *ctx.err << "Error: " << message << "\nRun '" << command << " --help' for usage." << std::endl;
  return kExitUsage;
}

bool FormatJson(const google::protobuf::Message& message, std::string* out) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  out->clear();
  if (!google::protobuf::util::MessageToJsonString(message, out, options).ok()) return false;
  // add_whitespace ends the document with a newline; callers add their own.
  while (!out->empty() && out->back() == '\n') out->pop_back();
  return true;
}

int PrintJson(const CliContext& ctx, const google::protobuf::Message& message) {
  std::string json;
  if (!FormatJson(message, &json)) {
    return ReportLocalError(ctx, absl::StrCat("cannot render ", message.GetTypeName(), " as JSON"));
  }
  *ctx.out << json << '\n';
  ctx.out->flush();
  return kExitOk;
}

}  // namespace retryd::cli
