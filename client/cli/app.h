// retryctl's command tree and its entry point, separate from main() so tests can run the whole
// CLI in-process with their own streams.
#ifndef RETRYD_CLIENT_CLI_APP_H_
#define RETRYD_CLIENT_CLI_APP_H_

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "CLI/App.hpp"
#include "client/cli/common.h"

namespace retryd::cli {

// The version retryctl reports (the CMake project version).
std::string RetryctlVersion();

// Builds the CLI11 command tree. Options bind into `ctx->flags` and into per-command option
// structs the tree owns; the selected command's callback stores its action in `ctx->action`.
// `ctx` must outlive the returned App.
std::unique_ptr<CLI::App> BuildApp(CliContext* ctx);

// Parses `args` (args[0] is the program name) and runs the selected command. Data goes to `out`,
// errors and hints to `err`; `in` is read by `--payload-file -`. Returns the process exit code
// (see common.h). `terminal` says whether stdin/stderr are terminals (prompts, progress bars).
// Never throws.
int RunRetryctl(const std::vector<std::string>& args, std::istream& in, std::ostream& out,
                std::ostream& err, const TerminalInfo& terminal = TerminalInfo());

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_APP_H_
