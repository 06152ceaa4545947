// AdminService methods of the dead-letter operations: stats and failure groups (reads), purge,
// replay and the audit log (mutations go through the engine, audited in the same transaction).
#include <cmath>
#include <memory>

#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/core/fingerprint.h"
#include "server/dlq/purge.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/audit_caller.h"
#include "server/rpc/dead_letter_histogram.h"
#include "server/rpc/filter_convert.h"
#include "server/rpc/page_token.h"
#include "server/rpc/response_budget.h"
#include "server/rpc/status_convert.h"
#include "server/rpc/validation.h"
#include "server/util/log.h"
#include "server/util/status_macros.h"
#include "server/util/time_conversion.h"

namespace retryd {
namespace {

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx, const absl::Status& s) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

absl::Status Stats(Store& store, const Clock& clock, const v1::GetDeadLetterStatsRequest& req,
                   v1::GetDeadLetterStatsResponse* resp) {
  if (!req.service().empty()) RETURN_IF_ERROR(ValidateService("service", req.service()));
  const absl::Time now = clock.Now();
  ASSIGN_OR_RETURN(DeadLetterStatsRow row, store.DeadLetterStats(req.service(), now - absl::Hours(1)));
  int64_t non_retryable = 0;
  int64_t exhausted = 0;
  for (const auto& c : row.counts) {
    v1::DeadLetterCount* out = resp->add_counts();
    out->set_service(c.service);
    out->set_reason(static_cast<v1::DeadLetterReason>(c.reason));
    out->set_count(c.count);
    if (c.reason == DeadLetterReason::kNonRetryable) non_retryable += c.count;
    if (c.reason == DeadLetterReason::kRetryExhausted) exhausted += c.count;
  }
  for (const auto& [code, count] : row.top_error_codes) {
    v1::ErrorCodeCount* out = resp->add_top_error_codes();
    out->set_error_code(code);
    out->set_count(count);
  }
  if (row.oldest != absl::InfinitePast()) {
    DurationToProto(std::max(absl::ZeroDuration(), now - row.oldest), resp->mutable_oldest_age());
  }
  resp->set_dead_lettered_last_hour(row.since_count);
  resp->set_total(row.total);
  if (row.total > 0) {
    resp->set_non_retryable_ratio(static_cast<double>(non_retryable) / row.total);
    resp->set_exhausted_ratio(static_cast<double>(exhausted) / row.total);
  }
  return absl::OkStatus();
}

absl::Status Groups(Store& store, const v1::ListFailureGroupsRequest& req,
                    v1::ListFailureGroupsResponse* resp) {
  int limit = 0;
  RETURN_IF_ERROR(ValidatePageSize(req.page_size(), &limit));
  GroupQuery query;
  ASSIGN_OR_RETURN(query.filter, FilterFromProto(req.filter(), "filter"));
  const std::string filter_key = CanonicalFilterKey(query.filter);
  if (!req.page_token().empty()) {
    ASSIGN_OR_RETURN(PageKey key, DecodePageToken("fg", filter_key, req.page_token()));
    if (!IsFingerprint(key.text) || key.id < 1) {
      return absl::InvalidArgumentError("page_token: is not a valid page token");
    }
    query.after = GroupKey{key.id, key.text};
  }
  query.limit = limit + 1;
  ASSIGN_OR_RETURN(std::vector<FailureGroupRow> groups, store.ListFailureGroups(query));
  const int rows = std::min<int>(limit, groups.size());
  ResponseBudget budget;
  int shown = 0;
  for (; shown < rows; ++shown) {
    const FailureGroupRow& g = groups[shown];
    v1::FailureGroup item;
    v1::FailureGroup* out = &item;
    out->set_fingerprint(g.fingerprint);
    out->set_service(g.sample.service);
    out->set_error_class(static_cast<v1::ErrorClass>(g.sample.last_error_class));
    out->set_error_code(g.sample.last_error.error_code);
    out->set_normalized_message(NormalizeErrorMessage(g.sample.last_error.message));
    out->set_count(g.count);
    TimeToProto(g.first_seen, out->mutable_first_seen());
    TimeToProto(g.last_seen, out->mutable_last_seen());
    out->set_sample_message(g.sample.last_error.message);
    out->set_sample_message_id(g.sample.message_id);
    if (!budget.Take(static_cast<int64_t>(item.ByteSizeLong()))) break;
    resp->add_groups()->Swap(&item);
  }
  if (static_cast<int>(groups.size()) > shown) {
    const FailureGroupRow& last = groups[shown - 1];
    resp->set_next_page_token(
        EncodePageToken("fg", filter_key, PageKey{absl::UnixEpoch(), last.count, last.fingerprint}));
  }
  return absl::OkStatus();
}

constexpr size_t kMaxNoteBytes = 1024;
constexpr size_t kMaxRequestIdBytes = 128;
constexpr int kSampleSize = 100;
constexpr int kMaxCanaryCount = 1000;

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckNoteAndRequestId(const std::string& note, const std::string& request_id) {
  if (note.size() > kMaxNoteBytes) {
    return Invalid("note", absl::StrCat("must be at most ", kMaxNoteBytes, " bytes, got ",
                                        note.size()));
  }
  if (request_id.size() > kMaxRequestIdBytes) {
    return Invalid("request_id", absl::StrCat("must be at most ", kMaxRequestIdBytes,
                                              " bytes, got ", request_id.size()));
  }
  return absl::OkStatus();
}

absl::Status ValidateStartReplay(const v1::StartReplayRequest& req) {
  RETURN_IF_ERROR(FilterFromProto(req.filter(), "filter").status());
  if (!std::isfinite(req.max_per_second()) || req.max_per_second() < 0) {
    return Invalid("max_per_second", "must be a finite number >= 0 (0 = the policy's cap)");
  }
  if (req.limit() < 0) return Invalid("limit", "must be >= 0 (0 = no limit)");
  if (req.canary_count() < 0 || req.canary_count() > kMaxCanaryCount) {
    return Invalid("canary_count", absl::StrCat("must be between 0 and ", kMaxCanaryCount));
  }
  return CheckNoteAndRequestId(req.note(), req.request_id());
}

void AuditToProto(const AuditRecord& r, v1::AuditEvent* out) {
  out->set_id(r.id);
  TimeToProto(r.time, out->mutable_time());
  out->set_identity(r.identity);
  out->set_peer(r.peer);
  out->set_method(r.method);
  if (!r.filter.empty()) out->mutable_filter()->ParseFromString(r.filter);
  out->set_dry_run(r.dry_run);
  out->set_affected_count(r.affected_count);
  out->set_note(r.note);
  out->set_request_id(r.request_id);
  out->set_target(r.target);
  out->set_result_code(r.result_code);
  out->set_detail(r.detail);
}

// The filters of ListAuditEvents as a store query (INVALID_ARGUMENT naming the field), and
// `key`, a canonical form of them that binds page tokens to their filters.
absl::Status AuditQueryFromRequest(const v1::ListAuditEventsRequest& req, AuditQuery* query,
                                   std::string* key) {
  RETURN_IF_ERROR(FilterStrings("methods", req.methods(), 1, 128, &query->methods));
  RETURN_IF_ERROR(FilterStrings("identities", req.identities(), 1, 256, &query->identities));
  RETURN_IF_ERROR(FilterStrings("targets", req.targets(), 1, 256, &query->targets));
  RETURN_IF_ERROR(
      FilterStrings("result_codes", req.result_codes(), 1, 64, &query->result_codes));
  if (req.has_since()) {
    RETURN_IF_ERROR(TimestampFromProtoChecked("since", req.since(), &query->since));
  }
  if (req.has_until()) {
    RETURN_IF_ERROR(TimestampFromProtoChecked("until", req.until(), &query->until));
  }
  if (req.has_since() && req.has_until() && query->since >= query->until) {
    return absl::InvalidArgumentError("until: must be after since");
  }
  // No filter: the key of the tokens issued before filters existed. Else each value
  // length-prefixed, so that no two different filters share a key.
  if (query->methods.empty() && query->identities.empty() && query->targets.empty() &&
      query->result_codes.empty() && !req.has_since() && !req.has_until()) {
    return absl::OkStatus();
  }
  auto add = [key](absl::string_view name, const std::vector<std::string>& values) {
    absl::StrAppend(key, name, values.size(), ":");
    for (const std::string& v : values) absl::StrAppend(key, v.size(), ":", v);
  };
  add("m", query->methods);
  add("i", query->identities);
  add("t", query->targets);
  add("r", query->result_codes);
  absl::StrAppend(key, "s", ToStoredMicros(query->since), "u",
                  query->until == absl::InfiniteFuture() ? INT64_MAX
                                                         : ToStoredMicros(query->until));
  return absl::OkStatus();
}

absl::Status AuditEvents(Store& store, const v1::ListAuditEventsRequest& req,
                         v1::ListAuditEventsResponse* resp) {
  int limit = 0;
  RETURN_IF_ERROR(ValidatePageSize(req.page_size(), &limit));
  AuditQuery query;
  std::string key;
  RETURN_IF_ERROR(AuditQueryFromRequest(req, &query, &key));
  if (!req.page_token().empty()) {
    ASSIGN_OR_RETURN(PageKey page_key, DecodePageToken("au", key, req.page_token()));
    query.before_id = page_key.id;
  }
  query.limit = limit + 1;  // One more tells whether another page exists.
  ASSIGN_OR_RETURN(std::vector<AuditRecord> page, store.ListAudit(query));
  const int rows = std::min<int>(limit, page.size());
  ResponseBudget budget;
  int shown = 0;
  for (; shown < rows; ++shown) {
    v1::AuditEvent item;
    AuditToProto(page[shown], &item);
    if (!budget.Take(static_cast<int64_t>(item.ByteSizeLong()))) break;
    resp->add_events()->Swap(&item);
  }
  if (static_cast<int>(page.size()) > shown) {
    resp->set_next_page_token(
        EncodePageToken("au", key, PageKey{absl::UnixEpoch(), page[shown - 1].id, ""}));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::PurgeDeadLetters(
    grpc::CallbackServerContext* ctx, const v1::PurgeDeadLettersRequest* req,
    v1::PurgeDeadLettersResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/PurgeDeadLetters", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  absl::StatusOr<EnvelopeFilter> filter = FilterFromProto(req->filter(), "filter");
  if (!filter.ok()) return Finish(ctx, filter.status());
  absl::Status valid = CheckNoteAndRequestId(req->note(), req->request_id());
  if (!valid.ok()) return Finish(ctx, valid);
  if (filter->empty() && !req->all()) {
    return Finish(ctx, Invalid("filter", "is empty; set all = true to purge every dead letter"));
  }
  AuditRecord audit = CallerAudit(ctx, *caller, req->note(), req->request_id());
  audit.method = "PurgeDeadLetters";
  audit.filter = req->filter().SerializeAsString();
  audit.dry_run = req->dry_run();
  audit.target = filter->service.empty() ? "*" : filter->service;
  audit.result_code = "OK";
  if (req->dry_run()) {
    // Count and sample on the read side; only the audit record is written.
    absl::StatusOr<int64_t> count = store_->CountDeadLetters(*filter);
    if (!count.ok()) return Finish(ctx, count.status());
    ListQuery q;
    q.filter = *filter;
    q.limit = kSampleSize;
    absl::StatusOr<ListPage> page = store_->List(q);
    if (!page.ok()) return Finish(ctx, page.status());
    resp->set_count(*count);
    for (const Envelope& e : page->envelopes) EnvelopeToProto(e, false, resp->add_sample());
    audit.affected_count = *count;
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (req->dry_run()) {
    engine_->RunInTransaction(
        [audit](EngineTxn& txn) mutable -> absl::Status {
          audit.time = txn.now();
          return txn.store().AppendAudit(&audit);
        },
        [reactor, audit](absl::Status s) {
          LogAudit(audit, audit.method, audit.target, s, audit.affected_count);
          reactor->Finish(ToGrpcStatus(s));
        });
    return reactor;
  }
  // Dead letters already there when the call arrived (the microsecond of "now" included).
  const absl::Time started = clock_->Now() + absl::Microseconds(1);
  AuditRecord logged = audit;
  logged.filter.clear();  // Not logged; no need to keep a copy.
  // The replays' claims are the process's (chosen with the store); without a runner, SQLite's.
  JobClaims* claims = replays_ != nullptr ? &replays_->claims() : nullptr;
  PurgeInChunks(engine_, *filter, started, std::move(audit), dlq_counters_, running_purges_,
                claims,
                [reactor, resp, logged](absl::StatusOr<int64_t> purged) {
                  LogAudit(logged, logged.method, logged.target, purged.status(),
                           purged.ok() ? *purged : -1);
                  if (purged.ok()) resp->set_count(*purged);
                  reactor->Finish(ToGrpcStatus(purged.status()));
                });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::StartReplay(grpc::CallbackServerContext* ctx,
                                                        const v1::StartReplayRequest* req,
                                                        v1::Replay* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/StartReplay", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  if (replays_ == nullptr) return Finish(ctx, absl::UnavailableError("replays are not running"));
  absl::Status valid = ValidateStartReplay(*req);
  if (!valid.ok()) return Finish(ctx, valid);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  AuditRecord audit = CallerAudit(ctx, *caller, req->note(), req->request_id());
  audit.dry_run = req->dry_run();
  replays_->StartReplay(*req, audit,
                        [reactor, resp, audit](absl::StatusOr<v1::Replay> r) {
                          LogAudit(audit, "StartReplay", r.ok() ? r->name() : "", r.status(),
                                   r.ok() ? r->matched() : -1);
                          if (r.ok()) *resp = std::move(*r);
                          reactor->Finish(ToGrpcStatus(r.status()));
                        });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetReplay(grpc::CallbackServerContext* ctx,
                                                      const v1::GetReplayRequest* req,
                                                      v1::Replay* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/GetReplay", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  if (replays_ == nullptr) return Finish(ctx, absl::UnavailableError("replays are not running"));
  absl::StatusOr<int64_t> id = ParseReplayName("name", req->name());
  if (!id.ok()) return Finish(ctx, id.status());
  absl::StatusOr<v1::Replay> r = replays_->GetReplay(*id);
  if (r.ok()) *resp = std::move(*r);
  return Finish(ctx, r.status());
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListReplays(grpc::CallbackServerContext* ctx,
                                                        const v1::ListReplaysRequest* req,
                                                        v1::ListReplaysResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListReplays", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  if (replays_ == nullptr) return Finish(ctx, absl::UnavailableError("replays are not running"));
  int limit = 0;
  absl::Status s = ValidatePageSize(req->page_size(), &limit);
  if (!s.ok()) return Finish(ctx, s);
  int64_t before = 0;
  if (!req->page_token().empty()) {
    absl::StatusOr<PageKey> key = DecodePageToken("rp", "", req->page_token());
    if (!key.ok()) return Finish(ctx, key.status());
    before = key->id;
  }
  absl::StatusOr<std::vector<v1::Replay>> page = replays_->ListReplays(before, limit + 1);
  if (!page.ok()) return Finish(ctx, page.status());
  const int rows = std::min<int>(limit, page->size());
  ResponseBudget budget;
  int shown = 0;
  for (; shown < rows; ++shown) {
    if (!budget.Take(static_cast<int64_t>((*page)[shown].ByteSizeLong()))) break;
    resp->add_replays()->Swap(&(*page)[shown]);
  }
  if (static_cast<int>(page->size()) > shown) {
    absl::StatusOr<int64_t> last = ParseReplayName("name", resp->replays(shown - 1).name());
    if (last.ok()) {
      resp->set_next_page_token(EncodePageToken("rp", "", PageKey{absl::UnixEpoch(), *last, ""}));
    }
  }
  return Finish(ctx, absl::OkStatus());
}

grpc::ServerUnaryReactor* AdminServiceImpl::CancelReplay(grpc::CallbackServerContext* ctx,
                                                         const v1::CancelReplayRequest* req,
                                                         v1::Replay* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/CancelReplay", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  if (replays_ == nullptr) return Finish(ctx, absl::UnavailableError("replays are not running"));
  absl::StatusOr<int64_t> id = ParseReplayName("name", req->name());
  if (!id.ok()) return Finish(ctx, id.status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  AuditRecord audit = CallerAudit(ctx, *caller, "", "");
  replays_->CancelReplay(*id, audit, [reactor, resp, audit, name = req->name()](
                                         absl::StatusOr<v1::Replay> r) {
    LogAudit(audit, "CancelReplay", name, r.status());
    if (r.ok()) *resp = std::move(*r);
    reactor->Finish(ToGrpcStatus(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListAuditEvents(
    grpc::CallbackServerContext* ctx, const v1::ListAuditEventsRequest* req,
    v1::ListAuditEventsResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListAuditEvents", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  return Finish(ctx, AuditEvents(*store_, *req, resp));
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetDeadLetterStats(
    grpc::CallbackServerContext* ctx, const v1::GetDeadLetterStatsRequest* req,
    v1::GetDeadLetterStatsResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/GetDeadLetterStats", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  return Finish(ctx, Stats(*store_, *clock_, *req, resp));
}

grpc::ServerUnaryReactor* AdminServiceImpl::GetDeadLetterHistogram(
    grpc::CallbackServerContext* ctx, const v1::GetDeadLetterHistogramRequest* req,
    v1::GetDeadLetterHistogramResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/GetDeadLetterHistogram", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  return Finish(ctx, DeadLetterHistogram(*store_, clock_->Now(), *req, resp));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListFailureGroups(
    grpc::CallbackServerContext* ctx, const v1::ListFailureGroupsRequest* req,
    v1::ListFailureGroupsResponse* resp) {
  absl::StatusOr<Caller> caller =
      auth_->Authorize(*ctx, "/retryd.v1.AdminService/ListFailureGroups", std::nullopt);
  if (!caller.ok()) return Finish(ctx, caller.status());
  return Finish(ctx, Groups(*store_, *req, resp));
}

}  // namespace retryd
