// `retryctl version`: the CLI's version and the gRPC/Protobuf it was built with. No server call.
#ifndef RETRYD_CLIENT_CLI_VERSION_CMD_H_
#define RETRYD_CLIENT_CLI_VERSION_CMD_H_

#include <string>

#include "client/cli/common.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

void AddVersionCommands(CLI::App* app, CliContext* ctx);

// "retryctl 0.1.0 (gRPC 1.51.1, protobuf 3.21.12)".
std::string FormatVersion(const std::string& retryctl, const std::string& grpc,
                          const std::string& protobuf);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_VERSION_CMD_H_
