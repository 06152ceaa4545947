// RetryServiceImpl: the worker-facing gRPC service. Validates each request at the door, then hands
// it to the Engine, whose callback finishes the call after the change is committed. Uses the
// callback API, so a parked long-poll holds no thread. Every handler first asks the Authorizer
// (a WORKER token limited to services may only name those; for ExtendLease, whose request names
// no service, the engine checks the service of the lease).
#ifndef RETRYD_SERVER_RPC_RETRY_SERVICE_H_
#define RETRYD_SERVER_RPC_RETRY_SERVICE_H_

#include "absl/time/time.h"
#include "server/auth/authorizer.h"
#include "retryd/v1/retry_service.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/rpc/validation.h"
#include "server/util/clock.h"

namespace retryd {

class RetryServiceImpl final : public v1::RetryService::CallbackService {
 public:
  // `engine`, `clock` and `auth` must outlive the service.
  RetryServiceImpl(Engine* engine, const Clock* clock, RequestLimits limits,
                   const Authorizer* auth)
      : engine_(engine),
        clock_(clock),
        limits_(limits),
        auth_(auth),
        started_at_(clock->Now()) {}

  grpc::ServerUnaryReactor* ReportFailure(grpc::CallbackServerContext* ctx,
                                          const v1::ReportFailureRequest* req,
                                          v1::ReportFailureResponse* resp) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx, const v1::LeaseRequest* req,
                                  v1::LeaseResponse* resp) override;
  grpc::ServerUnaryReactor* ReportSuccess(grpc::CallbackServerContext* ctx,
                                          const v1::ReportSuccessRequest* req,
                                          v1::ReportSuccessResponse* resp) override;
  grpc::ServerUnaryReactor* ExtendLease(grpc::CallbackServerContext* ctx,
                                        const v1::ExtendLeaseRequest* req,
                                        v1::ExtendLeaseResponse* resp) override;
  grpc::ServerUnaryReactor* RecordOutcomes(grpc::CallbackServerContext* ctx,
                                           const v1::RecordOutcomesRequest* req,
                                           v1::RecordOutcomesResponse* resp) override;
  grpc::ServerUnaryReactor* GetCircuit(grpc::CallbackServerContext* ctx,
                                       const v1::GetCircuitRequest* req,
                                       v1::GetCircuitResponse* resp) override;

 private:
  Engine* const engine_;
  const Clock* const clock_;
  const RequestLimits limits_;
  const Authorizer* const auth_;
  const absl::Time started_at_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_RETRY_SERVICE_H_
