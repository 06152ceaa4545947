#include "server/rpc/retry_service.h"

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "server/convert/envelope_convert.h"
#include "server/rpc/status_convert.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

// A long-poll answers this long before the caller's deadline, so the empty answer arrives.
constexpr absl::Duration kDeadlineMargin = absl::Milliseconds(250);

// Time left before the call's deadline (InfiniteDuration when it has none).
absl::Duration Remaining(const grpc::CallbackServerContext* ctx) {
  const auto left = ctx->deadline() - std::chrono::system_clock::now();
  if (left > std::chrono::hours(24 * 365)) return absl::InfiniteDuration();
  return absl::FromChrono(std::chrono::duration_cast<std::chrono::microseconds>(left));
}

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* RetryServiceImpl::ReportFailure(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportFailureRequest* req,
                                                          v1::ReportFailureResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/ReportFailure", req->envelope().service());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateReportFailure(*req, limits_, clock_->Now());
  if (!valid.ok()) return FinishNow(ctx, valid);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  engine_->ReportFailure(WorkerEnvelopeFromProto(req->envelope()),
                         FailureFromProto(req->failure()), req->lease_token(),
                         [reactor, resp](absl::StatusOr<Decision> decision) {
                           if (!decision.ok()) {
                             reactor->Finish(ToGrpcStatus(decision.status()));
                             return;
                           }
                           DecisionToProto(*decision, resp->mutable_decision());
                           reactor->Finish(grpc::Status::OK);
                         });
  return reactor;
}

grpc::ServerUnaryReactor* RetryServiceImpl::Lease(grpc::CallbackServerContext* ctx,
                                                  const v1::LeaseRequest* req,
                                                  v1::LeaseResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/Lease", req->service());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateLease(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  LeaseArgs args;
  args.service = req->service();
  args.max_messages = std::clamp(req->max_messages(), 1, kMaxLeaseMessages);
  if (req->has_visibility_timeout()) {
    args.visibility_timeout = DurationFromProto(req->visibility_timeout());
  }
  const absl::Time now = clock_->Now();
  absl::Duration wait = req->has_wait_time() ? DurationFromProto(req->wait_time())
                                             : absl::ZeroDuration();
  wait = std::min(wait, Remaining(ctx) - kDeadlineMargin);
  args.wait_until = wait > absl::ZeroDuration() ? now + wait : absl::InfinitePast();
  // The context lives until the reactor finishes, which the engine does after the last check.
  args.cancelled = [ctx] { return ctx->IsCancelled(); };
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Engine* engine = engine_;
  engine_->Lease(std::move(args),
                 [reactor, resp, engine, service = req->service()](
                     absl::StatusOr<std::vector<LeasedItem>> items) {
                   if (!items.ok()) {
                     reactor->Finish(ToGrpcStatus(items.status()));
                     return;
                   }
                   for (const LeasedItem& item : *items) {
                     v1::LeasedEnvelope* out = resp->add_envelopes();
                     EnvelopeToProto(item.envelope, /*with_payload=*/true,
                                     out->mutable_envelope());
                     out->set_lease_token(item.lease_token);
                     TimeToProto(item.lease_expires_at, out->mutable_lease_expires_at());
                   }
                   // Written by the batch that just answered: OPEN when nothing was handed out
                   // for that reason.
                   resp->set_circuit_state(static_cast<v1::CircuitState>(
                       engine->Circuit(service).state));
                   reactor->Finish(grpc::Status::OK);
                 });
  return reactor;
}

grpc::ServerUnaryReactor* RetryServiceImpl::ReportSuccess(grpc::CallbackServerContext* ctx,
                                                          const v1::ReportSuccessRequest* req,
                                                          v1::ReportSuccessResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/ReportSuccess", req->service());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateReportSuccess(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  engine_->ReportSuccess(req->service(), req->lease_token(),
                         [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* RetryServiceImpl::ExtendLease(grpc::CallbackServerContext* ctx,
                                                        const v1::ExtendLeaseRequest* req,
                                                        v1::ExtendLeaseResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/ExtendLease", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateExtendLease(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  const absl::Duration visibility = req->has_visibility_timeout()
                                        ? DurationFromProto(req->visibility_timeout())
                                        : kDefaultVisibilityTimeout;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // The request names no service: a WORKER token limited to services may extend only leases of
  // those, which the engine checks against the leased envelope.
  Engine::ServiceCheck may_act_for;
  if (caller->token != nullptr && caller->token->restricted()) {
    may_act_for = [token = caller->token](const std::string& service) {
      return token->MayActFor(service);
    };
  }
  engine_->ExtendLease(req->lease_token(), visibility, std::move(may_act_for),
                       [reactor, resp](absl::StatusOr<absl::Time> expires) {
                         if (!expires.ok()) {
                           reactor->Finish(ToGrpcStatus(expires.status()));
                           return;
                         }
                         TimeToProto(*expires, resp->mutable_lease_expires_at());
                         reactor->Finish(grpc::Status::OK);
                       });
  return reactor;
}

grpc::ServerUnaryReactor* RetryServiceImpl::RecordOutcomes(grpc::CallbackServerContext* ctx,
                                                           const v1::RecordOutcomesRequest* req,
                                                           v1::RecordOutcomesResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/RecordOutcomes", req->service());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateRecordOutcomes(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  engine_->RecordOutcomes(req->service(), req->successes(), req->failures(),
                          [reactor](absl::Status s) { reactor->Finish(ToGrpcStatus(s)); });
  return reactor;
}

grpc::ServerUnaryReactor* RetryServiceImpl::GetCircuit(grpc::CallbackServerContext* ctx,
                                                       const v1::GetCircuitRequest* req,
                                                       v1::GetCircuitResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.RetryService/GetCircuit", req->service());
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateService("service", req->service());
  if (!valid.ok()) return FinishNow(ctx, valid);
  const CircuitView v = engine_->Circuit(req->service());
  resp->set_state(static_cast<v1::CircuitState>(v.state));
  TimeToProto(v.since, resp->mutable_since());
  if (v.next_probe_at != absl::InfinitePast()) {
    TimeToProto(v.next_probe_at, resp->mutable_next_probe_at());
  }
  resp->set_failure_rate(v.failure_rate);
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace retryd
