// AdminService methods of the dead-letter operations: stats and failure groups (reads), purge,
// replay and the audit log (mutations go through the engine, audited in the same transaction).
#include "absl/strings/str_cat.h"
#include "server/convert/envelope_convert.h"
#include "server/core/fingerprint.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/filter_convert.h"
#include "server/rpc/page_token.h"
#include "server/rpc/status_convert.h"
#include "server/rpc/validation.h"
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
  const int shown = std::min<int>(limit, groups.size());
  for (int i = 0; i < shown; ++i) {
    const FailureGroupRow& g = groups[i];
    v1::FailureGroup* out = resp->add_groups();
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
  }
  if (static_cast<int>(groups.size()) > limit) {
    const FailureGroupRow& last = groups[shown - 1];
    resp->set_next_page_token(
        EncodePageToken("fg", filter_key, PageKey{absl::UnixEpoch(), last.count, last.fingerprint}));
  }
  return absl::OkStatus();
}

}  // namespace

grpc::ServerUnaryReactor* AdminServiceImpl::GetDeadLetterStats(
    grpc::CallbackServerContext* ctx, const v1::GetDeadLetterStatsRequest* req,
    v1::GetDeadLetterStatsResponse* resp) {
  return Finish(ctx, Stats(*store_, *clock_, *req, resp));
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListFailureGroups(
    grpc::CallbackServerContext* ctx, const v1::ListFailureGroupsRequest* req,
    v1::ListFailureGroupsResponse* resp) {
  return Finish(ctx, Groups(*store_, *req, resp));
}

}  // namespace retryd
