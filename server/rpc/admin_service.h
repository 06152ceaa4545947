// AdminServiceImpl: the operator-facing gRPC service. Reads come from the store's read side and
// the engine's live counts; methods that later issues complete (replay, purge, stats, groups,
// circuit override, audit) answer UNIMPLEMENTED through the generated base class.
#ifndef RETRYD_SERVER_RPC_ADMIN_SERVICE_H_
#define RETRYD_SERVER_RPC_ADMIN_SERVICE_H_

#include "retryd/v1/admin_service.grpc.pb.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // The pointers must outlive the service.
  AdminServiceImpl(Store* store, Engine* engine, const PolicySet* policies, const Clock* clock)
      : store_(store), engine_(engine), policies_(policies), clock_(clock) {}

  grpc::ServerUnaryReactor* ListServices(grpc::CallbackServerContext* ctx,
                                         const v1::ListServicesRequest* req,
                                         v1::ListServicesResponse* resp) override;
  grpc::ServerUnaryReactor* GetEnvelope(grpc::CallbackServerContext* ctx,
                                        const v1::GetEnvelopeRequest* req,
                                        v1::GetEnvelopeResponse* resp) override;
  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* ctx,
                                            const v1::ListDeadLettersRequest* req,
                                            v1::ListDeadLettersResponse* resp) override;
  grpc::ServerUnaryReactor* ListRetries(grpc::CallbackServerContext* ctx,
                                        const v1::ListRetriesRequest* req,
                                        v1::ListRetriesResponse* resp) override;

  // Dead-letter operations (dlq_admin.cc).
  grpc::ServerUnaryReactor* GetDeadLetterStats(grpc::CallbackServerContext* ctx,
                                               const v1::GetDeadLetterStatsRequest* req,
                                               v1::GetDeadLetterStatsResponse* resp) override;
  grpc::ServerUnaryReactor* ListFailureGroups(grpc::CallbackServerContext* ctx,
                                              const v1::ListFailureGroupsRequest* req,
                                              v1::ListFailureGroupsResponse* resp) override;

 private:
  // Shared by ListDeadLetters and ListRetries (state kDeadLettered or kScheduled).
  absl::Status ListEnvelopes(EnvelopeState state, absl::string_view kind, const v1::Filter& filter,
                             int32_t page_size, const std::string& page_token,
                             google::protobuf::RepeatedPtrField<v1::Envelope>* out,
                             std::string* next_page_token);

  Store* const store_;
  Engine* const engine_;
  const PolicySet* const policies_;
  const Clock* const clock_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_ADMIN_SERVICE_H_
