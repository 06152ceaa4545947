// RpcMetricsInterceptorFactory: a gRPC server interceptor that times every call from its start to
// the status being sent, and records it in Metrics::ObserveRpc by method and status code
// (retryd_grpc_server_handling_seconds). One small object per call; no other work.
#ifndef RETRYD_SERVER_METRICS_RPC_INTERCEPTOR_H_
#define RETRYD_SERVER_METRICS_RPC_INTERCEPTOR_H_

#include <grpcpp/support/server_interceptor.h>

#include <memory>

#include "server/metrics/metrics.h"

namespace retryd {

class RpcMetricsInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // `metrics` must outlive the server.
  explicit RpcMetricsInterceptorFactory(Metrics* metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  Metrics* const metrics_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_METRICS_RPC_INTERCEPTOR_H_
