#include "client/cli/app.h"

#include <exception>
#include <istream>
#include <ostream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "client/cli/audit_cmd.h"
#include "client/cli/circuit_cmd.h"
#include "client/cli/dlq_cmd.h"
#include "client/cli/envelope_cmd.h"
#include "client/cli/health_cmd.h"
#include "client/cli/replay_cmd.h"
#include "client/cli/retries_cmd.h"
#include "client/cli/services_cmd.h"
#include "client/cli/version_cmd.h"
#include "client/cli/worker_cmd.h"

#ifndef RETRYCTL_VERSION
#define RETRYCTL_VERSION "0.0.0-dev"
#endif

namespace retryd::cli {
namespace {

constexpr char kFooter[] = R"(Global flags (--server, --token, --tls*, --timeout, -o/--output,
--no-headers) go before or after the command; see 'retryctl --help'.

Environment:
  RETRYD_ADDR    default for --server
  RETRYD_TOKEN   default for --token

Exit codes:
  0       success
  1       local failure (file, bad answer, unexpected error)
  2       usage error (also: a purge or replay of more than 100 dead letters
          without --yes and without a terminal to confirm on)
  3       the confirmation prompt was declined; nothing was changed
  4       health: the server answered but is not SERVING
  5       replay --watch / replay status --watch: the replay ended FAILED
  64+N    the RPC failed with gRPC status code N (INVALID_ARGUMENT 67, NOT_FOUND 69,
          FAILED_PRECONDITION 73, UNAVAILABLE 78, UNAUTHENTICATED 80))";

// "retryctl dlq list": the root and the subcommands selected so far.
std::string CommandPath(const CLI::App* app) {
  std::string path = app->get_name();
  const CLI::App* current = app;
  while (true) {
    const std::vector<CLI::App*> selected = current->get_subcommands();
    if (selected.empty()) break;
    current = selected.front();
    absl::StrAppend(&path, " ", current->get_name());
  }
  return path;
}

std::string UsageFailureMessage(const CLI::App* app, const CLI::Error& e) {
  return absl::StrCat("Error: ", e.what(), "\nRun '", CommandPath(app),
                      " --help' for usage.\n");
}

}  // namespace

std::string RetryctlVersion() { return RETRYCTL_VERSION; }

std::unique_ptr<CLI::App> BuildApp(CliContext* ctx) {
  auto app = std::make_unique<CLI::App>("retryctl: operator CLI for retryd.", "retryctl");
  app->require_subcommand(1);
  // Global flags are accepted after the subcommand too ("retryctl services -o json").
  app->fallthrough();
  app->failure_message(UsageFailureMessage);
  app->footer(kFooter);
  app->set_version_flag("--version", RetryctlVersion(), "Print the version and exit");

  GlobalFlags& flags = ctx->flags;
  app->add_option("--server", flags.server, "retryd gRPC address (host:port)")
      ->envname("RETRYD_ADDR")
      ->capture_default_str();
  app->add_option("--token", flags.token, "Bearer token, sent as 'authorization: Bearer <t>'")
      ->envname("RETRYD_TOKEN");
  app->add_option("--timeout", flags.timeout, "Deadline of each call (500ms, 10s, 1m)")
      ->check(PositiveDurationValidator())
      ->capture_default_str();
  app->add_option("-o,--output", flags.output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app->add_flag("--no-headers", flags.no_headers, "Omit table headers");
  app->add_flag("--tls", flags.tls, "Connect over TLS (server verified with the system roots "
                                    "unless --tls-ca)");
  app->add_option("--tls-ca", flags.tls_ca,
                  "PEM CA bundle that verifies the server (implies --tls)");
  app->add_option("--tls-cert", flags.tls_cert,
                  "PEM client certificate for mTLS (implies --tls; needs --tls-key)");
  app->add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app->add_option("--tls-server-name", flags.tls_server_name,
                  "Name to verify the server certificate against instead of the --server host "
                  "(implies --tls)");

  AddServicesCommands(app.get(), ctx);
  AddEnvelopeCommands(app.get(), ctx);
  AddDlqCommands(app.get(), ctx);
  AddReplayCommands(app.get(), ctx);
  AddRetriesCommands(app.get(), ctx);
  AddAuditCommands(app.get(), ctx);
  AddCircuitCommands(app.get(), ctx);
  AddWorkerCommands(app.get(), ctx);
  AddHealthCommands(app.get(), ctx);
  AddVersionCommands(app.get(), ctx);
  return app;
}

int RunRetryctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, const TerminalInfo& terminal) {
  try {
    CliContext ctx;
    ctx.in = &in;
    ctx.out = &out;
    ctx.err = &err;
    ctx.terminal = terminal;
    std::unique_ptr<CLI::App> app = BuildApp(&ctx);
    std::vector<const char*> argv;
    argv.reserve(args.size() + 1);
    if (args.empty()) argv.push_back("retryctl");
    for (const std::string& arg : args) argv.push_back(arg.c_str());
    try {
      app->parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      // --help and --version are "errors" with exit code 0: print and succeed.
      const int code = app->exit(e, out, err);
      return code == 0 ? kExitOk : kExitUsage;
    }
    if (!ctx.action) {
      err << "Error: no command given\nRun 'retryctl --help' for usage." << std::endl;
      return kExitUsage;
    }
    std::string tls_error;
    const int tls_rc = LoadTlsFiles(ctx.flags, &ctx.tls, &tls_error);
    if (tls_rc != kExitOk) {
      err << "Error: " << tls_error << std::endl;
      return tls_rc;
    }
    return ctx.action();
  } catch (const CLI::Error& e) {
    err << "Error: " << e.what() << std::endl;
    return kExitLocalFailure;
  } catch (const std::exception& e) {
    err << "Error: unexpected failure: " << e.what() << std::endl;
    return kExitLocalFailure;
  }
}

}  // namespace retryd::cli
