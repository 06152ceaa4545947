// AdminServiceImpl: the operator-facing gRPC service. Reads come from the store's read side and
// the engine's live counts and guards; the dead-letter operations (stats, histogram, groups,
// replay, purge, audit) are in dlq_admin.cc and run through the replay runner and the engine.
// Every handler first asks the Authorizer (OPERATOR tokens only, when tokens are configured).
#ifndef RETRYD_SERVER_RPC_ADMIN_SERVICE_H_
#define RETRYD_SERVER_RPC_ADMIN_SERVICE_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "retryd/v1/admin_service.grpc.pb.h"
#include "server/auth/authorizer.h"
#include "server/core/policy_set.h"
#include "server/dlq/dlq_counters.h"
#include "server/dlq/purge.h"
#include "server/dlq/replay_runner.h"
#include "server/engine/engine.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  // The pointers must outlive the service.
  AdminServiceImpl(Store* store, Engine* engine, const PolicySet* policies, const Clock* clock,
                   const Authorizer* auth)
      : store_(store), engine_(engine), policies_(policies), clock_(clock), auth_(auth) {}

  // The dead-letter operations' runner and counters (must outlive the service). Without them
  // the replay RPCs answer UNAVAILABLE.
  void SetDlq(ReplayRunner* replays, DlqCounters* counters) {
    replays_ = replays;
    dlq_counters_ = counters;
  }

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
  grpc::ServerUnaryReactor* SetCircuitOverride(grpc::CallbackServerContext* ctx,
                                               const v1::SetCircuitOverrideRequest* req,
                                               v1::SetCircuitOverrideResponse* resp) override;

  // Dead-letter operations (dlq_admin.cc).
  grpc::ServerUnaryReactor* GetDeadLetterStats(grpc::CallbackServerContext* ctx,
                                               const v1::GetDeadLetterStatsRequest* req,
                                               v1::GetDeadLetterStatsResponse* resp) override;
  grpc::ServerUnaryReactor* GetDeadLetterHistogram(
      grpc::CallbackServerContext* ctx, const v1::GetDeadLetterHistogramRequest* req,
      v1::GetDeadLetterHistogramResponse* resp) override;
  grpc::ServerUnaryReactor* ListFailureGroups(grpc::CallbackServerContext* ctx,
                                              const v1::ListFailureGroupsRequest* req,
                                              v1::ListFailureGroupsResponse* resp) override;
  grpc::ServerUnaryReactor* PurgeDeadLetters(grpc::CallbackServerContext* ctx,
                                             const v1::PurgeDeadLettersRequest* req,
                                             v1::PurgeDeadLettersResponse* resp) override;
  grpc::ServerUnaryReactor* StartReplay(grpc::CallbackServerContext* ctx,
                                        const v1::StartReplayRequest* req,
                                        v1::Replay* resp) override;
  grpc::ServerUnaryReactor* GetReplay(grpc::CallbackServerContext* ctx,
                                      const v1::GetReplayRequest* req, v1::Replay* resp) override;
  grpc::ServerUnaryReactor* ListReplays(grpc::CallbackServerContext* ctx,
                                        const v1::ListReplaysRequest* req,
                                        v1::ListReplaysResponse* resp) override;
  grpc::ServerUnaryReactor* CancelReplay(grpc::CallbackServerContext* ctx,
                                         const v1::CancelReplayRequest* req,
                                         v1::Replay* resp) override;
  grpc::ServerUnaryReactor* ListAuditEvents(grpc::CallbackServerContext* ctx,
                                            const v1::ListAuditEventsRequest* req,
                                            v1::ListAuditEventsResponse* resp) override;

 private:
  // ListServices' body, once the engine answered the guards' views: the services named after
  // `after` (empty: from the first), at most `limit`, within the response byte budget.
  void FillServices(const std::vector<ServiceCounts>& counts,
                    const std::map<std::string, GuardView>& guards, std::string after,
                    int limit, v1::ListServicesResponse* resp);
  // Shared by ListDeadLetters and ListRetries (state kDeadLettered or kScheduled).
  absl::Status ListEnvelopes(EnvelopeState state, absl::string_view kind, const v1::Filter& filter,
                             int32_t page_size, const std::string& page_token,
                             google::protobuf::RepeatedPtrField<v1::Envelope>* out,
                             std::string* next_page_token);

  Store* const store_;
  Engine* const engine_;
  const PolicySet* const policies_;
  const Clock* const clock_;
  const Authorizer* const auth_;
  ReplayRunner* replays_ = nullptr;
  DlqCounters* dlq_counters_ = nullptr;
  // Purges with a request_id still running, so that a retried call waits for the one it repeats.
  std::shared_ptr<RunningPurges> running_purges_ = std::make_shared<RunningPurges>();
};

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_ADMIN_SERVICE_H_
