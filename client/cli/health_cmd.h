// `retryctl health`: grpc.health.v1.Health/Check.
//
// Debian 12 installs no grpc/health/v1/health.proto (/usr/share/grpc-proto is not there and the
// project does not depend on a package that ships it), so the call goes through
// grpc::GenericStub with the two tiny messages encoded by hand (wire.h):
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2,
//                                                      SERVICE_UNKNOWN 3
#ifndef RETRYD_CLIENT_CLI_HEALTH_CMD_H_
#define RETRYD_CLIENT_CLI_HEALTH_CMD_H_

#include <string>

#include "client/cli/common.h"

namespace CLI {
class App;
}  // namespace CLI

namespace retryd::cli {

inline constexpr char kHealthCheckMethod[] = "/grpc.health.v1.Health/Check";
inline constexpr int kHealthServing = 1;

void AddHealthCommands(CLI::App* app, CliContext* ctx);

// Serialized HealthCheckRequest{service}.
std::string EncodeHealthCheckRequest(const std::string& service);

// Reads HealthCheckResponse.status from its serialized form. False if it does not parse.
bool DecodeHealthCheckResponse(const std::string& data, int* status);

// "UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN", or the number.
std::string HealthStatusName(int status);

}  // namespace retryd::cli

#endif  // RETRYD_CLIENT_CLI_HEALTH_CMD_H_
