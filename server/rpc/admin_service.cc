#include "server/rpc/admin_service.h"

#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/config/config.h"
#include "server/convert/envelope_convert.h"
#include "server/rpc/audit_caller.h"
#include "server/rpc/filter_convert.h"
#include "server/rpc/page_token.h"
#include "server/rpc/response_budget.h"
#include "server/rpc/status_convert.h"
#include "server/rpc/validation.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

// ListServices without a page size answers up to this many services (the largest page).
constexpr int kMaxServicesPage = 1000;

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::ListServices(grpc::CallbackServerContext* ctx,
                                                         const v1::ListServicesRequest* req,
                                                         v1::ListServicesResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListServices", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  // Without a page size, every service (up to the largest page), as before paging existed.
  int limit = kMaxServicesPage;
  if (req->page_size() != 0) {
    absl::Status valid = ValidatePageSize(req->page_size(), &limit);
    if (!valid.ok()) return FinishNow(ctx, valid);
  }
  std::string after;
  if (!req->page_token().empty()) {
    absl::StatusOr<PageKey> key = DecodePageToken("sv", "", req->page_token());
    if (!key.ok()) return FinishNow(ctx, key.status());
    after = key->text;
  }
  absl::StatusOr<std::vector<ServiceCounts>> counts = store_->CountByService();
  if (!counts.ok()) return FinishNow(ctx, counts.status());
  // Budgets and circuits live on the engine's writer thread: ask it, then answer. The store is
  // read first; the callback runs on the engine's syncer thread once the views' batch is durable
  // (or on this thread when the engine refuses the request).
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto stored = std::make_shared<std::vector<ServiceCounts>>(std::move(*counts));
  engine_->GuardViews([this, reactor, resp, stored, after, limit](
                          absl::StatusOr<std::map<std::string, GuardView>> guards) {
    if (!guards.ok()) {
      // Without the engine's views there is no true circuit or budget to show: say so, rather
      // than answer every circuit CLOSED with a full budget.
      reactor->Finish(ToGrpcStatus(absl::Status(
          guards.status().code(),
          absl::StrCat("circuits and budgets cannot be read: ", guards.status().message()))));
      return;
    }
    FillServices(*stored, *guards, after, limit, resp);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

void AdminServiceImpl::FillServices(const std::vector<ServiceCounts>& counts,
                                    const std::map<std::string, GuardView>& guards,
                                    std::string after, int limit,
                                    v1::ListServicesResponse* resp) {
  const absl::flat_hash_map<std::string, ServiceStats> live = engine_->Stats();
  const absl::Time now = clock_->Now();
  // Services seen in traffic or with a stored circuit, plus those an exact-name policy names.
  std::map<std::string, const ServiceCounts*> names;
  for (const ServiceCounts& c : counts) names[c.service] = &c;
  for (const auto& [name, unused] : live) names.emplace(name, nullptr);
  for (const auto& [name, unused] : guards) names.emplace(name, nullptr);
  for (const Policy& p : policies_->policies()) {
    if (IsValidServiceName(p.name) && p.name != "default") names.emplace(p.name, nullptr);
  }
  ResponseBudget budget;
  int shown = 0;
  for (auto next = names.upper_bound(after); next != names.end(); ++next) {
    const auto& [name, stored] = *next;
    if (shown == limit) {
      resp->set_next_page_token(EncodePageToken("sv", "", PageKey{absl::UnixEpoch(), 0, after}));
      break;
    }
    v1::ServiceSummary summary;
    v1::ServiceSummary* s = &summary;
    s->set_service(name);
    const Policy& policy = policies_->Resolve(name);
    s->set_policy_name(policy.name);
    PolicyToProto(policy, s->mutable_policy());
    auto it = live.find(name);
    if (it != live.end()) {
      s->set_scheduled(it->second.scheduled);
      s->set_leased(it->second.leased);
      s->set_dead(it->second.dead);
    } else if (stored != nullptr) {
      s->set_scheduled(stored->scheduled);
      s->set_leased(stored->leased);
      s->set_dead(stored->dead);
    }
    if (stored != nullptr && stored->oldest_dead_lettered_at != absl::InfinitePast()) {
      DurationToProto(std::max(absl::ZeroDuration(), now - stored->oldest_dead_lettered_at),
                      s->mutable_oldest_dead_age());
      TimeToProto(stored->oldest_dead_lettered_at, s->mutable_oldest_dead_lettered_at());
    }
    auto guard = guards.find(name);
    if (guard != guards.end()) {
      s->set_circuit_state(static_cast<v1::CircuitState>(guard->second.circuit.state));
      s->set_circuit_override(
          static_cast<v1::CircuitOverride>(guard->second.circuit.override_mode));
      s->set_budget_remaining(guard->second.budget_remaining);
    } else {
      // Not in the engine's (complete) views: the engine never used this service's guards, so
      // its circuit is CLOSED, not overridden, and its budget untouched.
      s->set_circuit_state(v1::CLOSED);
      s->set_circuit_override(v1::AUTO);
      s->set_budget_remaining(policy.budget.enabled ? policy.budget.min_retries_per_window : -1);
    }
    if (!budget.Take(static_cast<int64_t>(summary.ByteSizeLong()))) {
      resp->set_next_page_token(EncodePageToken("sv", "", PageKey{absl::UnixEpoch(), 0, after}));
      break;
    }
    resp->add_services()->Swap(&summary);
    after = name;
    ++shown;
  }
}

grpc::ServerUnaryReactor* AdminServiceImpl::SetCircuitOverride(
    grpc::CallbackServerContext* ctx, const v1::SetCircuitOverrideRequest* req,
    v1::SetCircuitOverrideResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/SetCircuitOverride", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateSetCircuitOverride(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const CircuitOverride mode = static_cast<CircuitOverride>(req->override());
  // The override and its audit event are committed together.
  AuditRecord audit = CallerAudit(ctx, *caller, req->note(), /*request_id=*/"");
  engine_->SetCircuitOverride(
      req->service(), mode, audit,
      [reactor, resp, audit, service = req->service()](absl::StatusOr<CircuitView> view) {
        LogAudit(audit, "SetCircuitOverride", service, view.status(), view.ok() ? 1 : -1);
        if (!view.ok()) {
          reactor->Finish(ToGrpcStatus(view.status()));
          return;
        }
        resp->set_state(static_cast<v1::CircuitState>(view->state));
        resp->set_override(static_cast<v1::CircuitOverride>(view->override_mode));
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetEnvelope(grpc::CallbackServerContext* ctx,
                                                        const v1::GetEnvelopeRequest* req,
                                                        v1::GetEnvelopeResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/GetEnvelope", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  absl::Status valid = ValidateGetEnvelope(*req);
  if (!valid.ok()) return FinishNow(ctx, valid);
  absl::StatusOr<std::optional<Envelope>> found = store_->Get(req->service(), req->message_id());
  if (!found.ok()) return FinishNow(ctx, found.status());
  if (!found->has_value()) {
    return FinishNow(ctx, absl::NotFoundError(absl::StrCat(
                              "envelope ", req->service(), "/", req->message_id(),
                              " not found (ENVELOPE_NOT_FOUND)")));
  }
  EnvelopeToProto(**found, /*with_payload=*/true, resp->mutable_envelope());
  return FinishNow(ctx, absl::OkStatus());
}

absl::Status AdminServiceImpl::ListEnvelopes(
    EnvelopeState state, absl::string_view kind, const v1::Filter& filter, int32_t page_size,
    const std::string& page_token, google::protobuf::RepeatedPtrField<v1::Envelope>* out,
    std::string* next_page_token) {
  int limit = 0;
  RETURN_IF_ERROR(ValidatePageSize(page_size, &limit));
  ListQuery query;
  ASSIGN_OR_RETURN(query.filter, FilterFromProto(filter, "filter"));
  if (state != EnvelopeState::kDeadLettered) {
    // Only dead letters have a reason and a fingerprint; a retry listing asked for them would
    // always be empty, which is more likely a mistake than a wish.
    if (!query.filter.reasons.empty()) {
      return absl::InvalidArgumentError("filter.reasons: only dead letters have a reason");
    }
    if (!query.filter.fingerprints.empty()) {
      return absl::InvalidArgumentError(
          "filter.fingerprints: only dead letters have a failure fingerprint");
    }
  }
  const std::string filter_key = CanonicalFilterKey(query.filter);
  query.state = state;
  query.limit = limit + 1;  // One more tells whether another page exists.
  query.max_bytes = kMaxListResponseBytes;
  if (!page_token.empty()) {
    ASSIGN_OR_RETURN(PageKey key, DecodePageToken(kind, filter_key, page_token));
    query.after_time = key.time;
    query.after_id = key.id;
  }
  ASSIGN_OR_RETURN(ListPage page, store_->List(query));
  const int rows = std::min<int>(limit, page.envelopes.size());
  ResponseBudget budget;
  int shown = 0;
  for (; shown < rows; ++shown) {
    v1::Envelope item;
    EnvelopeToProto(page.envelopes[shown], /*with_payload=*/false, &item);
    if (!budget.Take(static_cast<int64_t>(item.ByteSizeLong()))) break;
    out->Add()->Swap(&item);
  }
  if (static_cast<int>(page.envelopes.size()) > shown || page.budget_reached) {
    *next_page_token = EncodePageToken(
        kind, filter_key, PageKey{page.keys[shown - 1].time, page.keys[shown - 1].id, ""});
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListDeadLetters(grpc::CallbackServerContext* ctx,
                                                            const v1::ListDeadLettersRequest* req,
                                                            v1::ListDeadLettersResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListDeadLetters", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  return FinishNow(ctx, ListEnvelopes(EnvelopeState::kDeadLettered, "dl", req->filter(),
                                      req->page_size(), req->page_token(),
                                      resp->mutable_dead_letters(),
                                      resp->mutable_next_page_token()));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListRetries(grpc::CallbackServerContext* ctx,
                                                        const v1::ListRetriesRequest* req,
                                                        v1::ListRetriesResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListRetries", std::nullopt);
  if (!caller.ok()) return FinishNow(ctx, caller.status());
  return FinishNow(ctx, ListEnvelopes(EnvelopeState::kScheduled, "rt", req->filter(),
                                      req->page_size(), req->page_token(),
                                      resp->mutable_retries(), resp->mutable_next_page_token()));
}

}  // namespace retryd
