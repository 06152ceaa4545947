#include "server/auth/authorizer.h"

#include <grpcpp/security/auth_context.h>

#include <iterator>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/log.h"

namespace retryd {
namespace {

constexpr MethodRule kRules[] = {
    {"/retryd.v1.RetryService/ReportFailure", Access::kWorker},
    {"/retryd.v1.RetryService/Lease", Access::kWorker},
    {"/retryd.v1.RetryService/ReportSuccess", Access::kWorker},
    {"/retryd.v1.RetryService/ExtendLease", Access::kWorker},
    {"/retryd.v1.RetryService/RecordOutcomes", Access::kWorker},
    {"/retryd.v1.RetryService/GetCircuit", Access::kWorker},
    {"/retryd.v1.AdminService/ListServices", Access::kOperator},
    {"/retryd.v1.AdminService/ListRetries", Access::kOperator},
    {"/retryd.v1.AdminService/ListDeadLetters", Access::kOperator},
    {"/retryd.v1.AdminService/GetEnvelope", Access::kOperator},
    {"/retryd.v1.AdminService/GetDeadLetterStats", Access::kOperator},
    {"/retryd.v1.AdminService/GetDeadLetterHistogram", Access::kOperator},
    {"/retryd.v1.AdminService/ListFailureGroups", Access::kOperator},
    {"/retryd.v1.AdminService/StartReplay", Access::kOperator},
    {"/retryd.v1.AdminService/GetReplay", Access::kOperator},
    {"/retryd.v1.AdminService/ListReplays", Access::kOperator},
    {"/retryd.v1.AdminService/CancelReplay", Access::kOperator},
    {"/retryd.v1.AdminService/PurgeDeadLetters", Access::kOperator},
    {"/retryd.v1.AdminService/SetCircuitOverride", Access::kOperator},
    {"/retryd.v1.AdminService/ListAuditEvents", Access::kOperator},
};

constexpr char kBearer[] = "bearer ";
// A service name in a message or log line is cut here (valid names are at most 64 bytes).
constexpr size_t kMaxShownService = 80;

const MethodRule* FindRule(absl::string_view method) {
  for (const MethodRule& r : kRules) {
    if (r.method == method) return &r;
  }
  return nullptr;
}

// The token of the call's one `authorization: Bearer <token>` header; "" when there is none,
// several, or another scheme.
absl::string_view BearerToken(const grpc::ServerContextBase& ctx) {
  const auto& md = ctx.client_metadata();
  auto [begin, end] = md.equal_range("authorization");
  if (begin == end || std::next(begin) != end) return absl::string_view();
  const absl::string_view value(begin->second.data(), begin->second.size());
  if (value.size() <= sizeof(kBearer) - 1 ||
      !absl::StartsWithIgnoreCase(value, kBearer)) {
    return absl::string_view();
  }
  return absl::StripAsciiWhitespace(value.substr(sizeof(kBearer) - 1));
}

std::string Shown(absl::string_view service) {
  if (service.size() <= kMaxShownService) return std::string(service);
  return absl::StrCat(service.substr(0, kMaxShownService), "...");
}

// Logs the denial (never the token) and returns `status`.
absl::Status Denied(const grpc::ServerContextBase& ctx, absl::string_view method,
                    absl::string_view reason, const TokenEntry* token,
                    std::optional<absl::string_view> service, absl::Status status) {
  LogEvent log(LogLevel::kWarn, "auth_denied");
  log.Str("grpc_method", method).Str("reason", reason).Str("peer", ctx.peer());
  if (token != nullptr) log.Str("identity", token->name).Str("role", RoleName(token->role));
  if (service.has_value()) log.Str("service", Shown(*service));
  return status;
}

}  // namespace

absl::Span<const MethodRule> MethodRules() { return kRules; }

absl::StatusOr<Caller> Authorizer::Authorize(const grpc::ServerContextBase& ctx,
                                             absl::string_view method,
                                             std::optional<absl::string_view> service) const {
  const MethodRule* rule = FindRule(method);
  if (rule == nullptr) {
    // A handler without a rule: a bug, refused rather than let through.
    return Denied(ctx, method, "NO_RULE", nullptr, service,
                  absl::PermissionDeniedError(
                      absl::StrCat(method, " has no authorization rule (NO_RULE)")));
  }
  if (tokens_.empty()) return Caller{AnonymousIdentity(ctx), nullptr};

  const TokenEntry* token = tokens_.Find(BearerToken(ctx));
  if (token == nullptr) {
    return Denied(ctx, method, "TOKEN_INVALID", nullptr, service,
                  absl::UnauthenticatedError(
                      "missing or unknown bearer token (TOKEN_INVALID): send "
                      "\"authorization: Bearer <token>\" with a token the server knows"));
  }
  if (rule->access == Access::kOperator && token->role != Role::kOperator) {
    return Denied(ctx, method, "ROLE_REQUIRED", token, service,
                  absl::PermissionDeniedError(absl::StrCat(
                      "token \"", token->name, "\" has role ", RoleName(token->role), "; ",
                      method, " needs an OPERATOR token (ROLE_REQUIRED)")));
  }
  if (service.has_value() && !token->MayActFor(*service)) {
    return Denied(ctx, method, "SERVICE_NOT_ALLOWED", token, service,
                  absl::PermissionDeniedError(absl::StrCat(
                      "token \"", token->name, "\" may not act for service \"",
                      absl::CEscape(Shown(*service)), "\" (SERVICE_NOT_ALLOWED)")));
  }
  return Caller{token->name, token};
}

std::string Authorizer::AnonymousIdentity(const grpc::ServerContextBase& ctx) const {
  if (certificate_identity_) {
    // The SAN (else CN) of a verified client certificate; empty without one.
    const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    if (auth != nullptr && auth->IsPeerAuthenticated()) {
      const std::vector<grpc::string_ref> ids = auth->GetPeerIdentity();
      if (!ids.empty() && ids.front().size() > 0) {
        return std::string(ids.front().data(), ids.front().size());
      }
    }
  }
  return "anonymous";
}

}  // namespace retryd
