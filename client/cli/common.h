// What every retryctl command shares: the global flags, the streams it writes to, how a channel
// and a call context are made from the flags, and how a gRPC status becomes a message on stderr
// and a process exit code.
//
// Exit codes (documented in `retryctl --help` too):
//   0        success
//   1        local failure (unreadable/unwritable file, bad server answer, unexpected error)
//   2        usage error (every CLI11 ParseError)
//   3        a confirmation prompt was declined (dlq purge, dlq replay)
//   4        `health`: the server answered, but not SERVING
//   5        `--watch`: the replay ended FAILED
//   64 + c   the RPC failed with gRPC status code c (grpcurl's convention):
//            INVALID_ARGUMENT 67, NOT_FOUND 69, FAILED_PRECONDITION 73, UNAVAILABLE 78,
//            UNAUTHENTICATED 80, DEADLINE_EXCEEDED 68, PERMISSION_DENIED 71
#ifndef RETRYD_CLIENT_CLI_COMMON_H_
#define RETRYD_CLIENT_CLI_COMMON_H_

#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"

namespace CLI {
class Validator;
}  // namespace CLI

namespace retryd::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitLocalFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitDeclined = 3;
inline constexpr int kExitNotServing = 4;
inline constexpr int kExitReplayFailed = 5;
inline constexpr int kExitRpcBase = 64;

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";
inline constexpr char kDefaultTimeout[] = "10s";
// Largest response the CLI accepts: above the largest retryd sends (one envelope with a payload
// of up to 64 MiB, limits.max_payload_bytes' maximum, in a GetEnvelope or a Lease, plus its
// headers and history; a Lease budget of up to 64 MiB). The client libraries use the same bound.
inline constexpr int kMaxReceiveMessageBytes = 66 * 1024 * 1024;

enum class OutputFormat { kTable, kJson };

// The global flags as CLI11 binds them (strings are validated by CLI11 before any command runs).
struct GlobalFlags {
  std::string server = kDefaultServer;  // --server, env RETRYD_ADDR
  std::string token;                    // --token, env RETRYD_TOKEN
  std::string timeout = kDefaultTimeout;  // --timeout, an absl duration ("500ms", "10s", "1m")
  std::string output = "table";         // -o/--output: table|json
  bool no_headers = false;              // --no-headers
  bool tls = false;                     // --tls
  std::string tls_ca;                   // --tls-ca (implies --tls)
  std::string tls_cert;                 // --tls-cert (implies --tls; needs --tls-key)
  std::string tls_key;                  // --tls-key
  std::string tls_server_name;          // --tls-server-name (implies --tls)
};

// Transport security of the channel, with the PEM files already read.
struct TlsOptions {
  bool enabled = false;      // false: plaintext
  std::string ca_pem;        // verifies the server; empty = the system roots
  std::string cert_pem;      // client certificate chain (mTLS); empty = none
  std::string key_pem;       // its private key
  std::string server_name;   // checked against the server certificate instead of the host
};

// How to reach the server.
struct ConnectionOptions {
  std::string server = kDefaultServer;
  TlsOptions tls;
  // Sent as `authorization: Bearer <token>` when not empty.
  std::string token;
  // Deadline of every unary call (Lease extends it to cover its long poll).
  absl::Duration timeout = absl::Seconds(10);
};

// What main() knows about the process' terminal. Tests set these to exercise prompts and progress
// bars without a pty.
struct TerminalInfo {
  // A confirmation prompt may read an answer from stdin.
  bool stdin_is_terminal = false;
  // Progress may be redrawn in place ('\r') on stderr.
  bool stderr_is_terminal = false;
};

// Everything a command needs from the process. Owned by RunRetryctl(); commands get a reference.
struct CliContext {
  GlobalFlags flags;
  std::istream* in = nullptr;
  std::ostream* out = nullptr;  // data only
  std::ostream* err = nullptr;  // errors, hints, progress
  TerminalInfo terminal;
  // How `--watch` waits between polls; tests may replace it.
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  // Set by the callback of the subcommand CLI11 selected; run after parsing succeeded.
  std::function<int()> action;
  // From the --tls* flags by LoadTlsFiles(), after parsing.
  TlsOptions tls;

  OutputFormat output() const;
  bool headers() const { return !flags.no_headers; }
  ConnectionOptions connection() const;
};

// --- durations -----------------------------------------------------------------------------

// Parses an absl duration ("500ms", "10s", "1m30s", "0"). Rejects negative and infinite values.
bool ParseNonNegativeDuration(const std::string& text, absl::Duration* out);

// CLI11 validator for a non-negative duration flag (an invalid value is a usage error).
CLI::Validator DurationValidator();
// CLI11 validator for a strictly positive duration flag.
CLI::Validator PositiveDurationValidator();
// CLI11 validator for an integer flag in 0..INT32_MAX (with a readable message, unlike
// CLI::NonNegativeNumber's).
CLI::Validator NonNegativeIntValidator();

// --- channels and calls --------------------------------------------------------------------

// Resolves the --tls* flags into `out`, reading the PEM files. Returns kExitOk, or sets `error`
// naming the flag and returns kExitUsage ("--tls-cert needs --tls-key") or kExitLocalFailure
// ("--tls-ca /x/ca.pem: cannot read (No such file or directory)").
int LoadTlsFiles(const GlobalFlags& flags, TlsOptions* out, std::string* error);

// Credentials for the channel: SSL credentials when options.tls.enabled, else plaintext.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const ConnectionOptions& options);

// A channel to options.server that accepts responses up to kMaxReceiveMessageBytes.
std::shared_ptr<grpc::Channel> CreateChannel(const ConnectionOptions& options);

// Sets the deadline (now + max(options.timeout, min_timeout)) and the bearer token on `context`.
void PrepareContext(const ConnectionOptions& options, grpc::ClientContext* context,
                    absl::Duration min_timeout = absl::ZeroDuration());

// --- errors and exit codes -----------------------------------------------------------------

// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND; "CODE_<n>" for a number gRPC does not define.
std::string StatusCodeName(grpc::StatusCode code);

// 0 for OK, otherwise 64 + the status code (codes outside 1..16 count as UNKNOWN).
int ExitCodeForStatus(const grpc::Status& status);

// The `reason` of the google.rpc.ErrorInfo in a status' binary details (grpc-status-details-bin),
// or "" when there is none or the details do not parse.
std::string ErrorInfoReason(const std::string& status_details);

// "Error: <message> (code=NOT_FOUND)" or "... (code=NOT_FOUND, reason=ENVELOPE_NOT_FOUND)".
std::string FormatRpcError(const grpc::Status& status);

// Writes FormatRpcError(status) and a newline to ctx.err; returns ExitCodeForStatus(status).
int ReportRpcError(const CliContext& ctx, const grpc::Status& status);

// Writes "Error: <message>" and a newline to ctx.err; returns kExitLocalFailure.
int ReportLocalError(const CliContext& ctx, const std::string& message);

// A usage error found after parsing (flags that parse but do not fit together): writes
// "Error: <message>\nRun '<command> --help' for usage." to ctx.err; returns kExitUsage.
int ReportUsageError(const CliContext& ctx, const std::string& command,
                     const std::string& message);

// --- output --------------------------------------------------------------------------------

// Protobuf canonical JSON (lowerCamel names, defaults omitted), indented, no trailing newline.
// Returns false (and leaves `out` unspecified) if the message cannot be rendered.
bool FormatJson(const google::protobuf::Message& message, std::string* out);

// Writes FormatJson(message) and a newline to ctx.out. Returns kExitOk or kExitLocalFailure.
int PrintJson(const CliContext& ctx, const google::protobuf::Message& message);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_COMMON_H_
