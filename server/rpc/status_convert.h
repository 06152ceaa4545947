// absl::Status -> grpc::Status. The code numbers are the same by design.
#ifndef RETRYD_SERVER_RPC_STATUS_CONVERT_H_
#define RETRYD_SERVER_RPC_STATUS_CONVERT_H_

#include <string>

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace retryd {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_STATUS_CONVERT_H_
