#include "server/metrics/rpc_interceptor.h"

#include <chrono>

#include "absl/time/time.h"

namespace retryd {
namespace {

using grpc::experimental::InterceptionHookPoints;

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(Metrics* metrics, const char* method)
      : metrics_(metrics), method_(method), start_(std::chrono::steady_clock::now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const auto elapsed = std::chrono::steady_clock::now() - start_;
      metrics_->ObserveRpc(method_ != nullptr ? method_ : "",
                           static_cast<int>(methods->GetSendStatus().error_code()),
                           absl::FromChrono(elapsed));
    }
    methods->Proceed();
  }

 private:
  Metrics* const metrics_;
  const char* const method_;  // Owned by the call's ServerRpcInfo, which outlives us.
  const std::chrono::steady_clock::time_point start_;
};

}  // namespace

grpc::experimental::Interceptor* RpcMetricsInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(metrics_, info->method());
}

}  // namespace retryd
