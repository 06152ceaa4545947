// Authorizer: who may call which retryd RPC (DESIGN.md "Security").
//
// Every handler of RetryService and AdminService starts with one call:
//
//   absl::StatusOr<Caller> caller = auth_->Authorize(*ctx, kLeaseMethod, req->service());
//   if (!caller.ok()) return FinishNow(ctx, caller.status());
//
// With tokens configured, the call must carry `authorization: Bearer <token>` naming a configured
// token (else UNAUTHENTICATED, reason TOKEN_INVALID, the same for a missing and an unknown
// token); the method's rule (MethodRules()) must admit the token's role (else PERMISSION_DENIED,
// ROLE_REQUIRED); and a WORKER token limited to services must be allowed the service the
// request names (else PERMISSION_DENIED, SERVICE_NOT_ALLOWED). Without tokens every call is
// admitted. grpc.health.v1.Health and server reflection never reach a handler of ours and stay
// open. Denials are logged as `event=auth_denied` (never with the token).
//
// This is a plain call rather than a grpc::AuthMetadataProcessor because processors only run on
// secure channels, and retryd serves tokens over plaintext on loopback too.
#ifndef RETRYD_SERVER_AUTH_AUTHORIZER_H_
#define RETRYD_SERVER_AUTH_AUTHORIZER_H_

#include <optional>
#include <string>
#include <utility>

#include <grpcpp/server_context.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "server/auth/token_table.h"

namespace retryd {

// Who may call a method once authenticated.
enum class Access {
  kWorker,    // WORKER and OPERATOR tokens (RetryService).
  kOperator,  // OPERATOR tokens only (AdminService).
};

// One RPC ("/retryd.v1.RetryService/Lease") and who may call it.
struct MethodRule {
  absl::string_view method;
  Access access;
};

// The rule of every RPC of retryd.v1. authorizer_test checks that it covers the methods of the
// services' descriptors exactly, so a new RPC cannot ship without a rule.
absl::Span<const MethodRule> MethodRules();

// The authenticated caller of one call.
struct Caller {
  // The token's name; without tokens the client certificate's identity (SAN, else CN) when the
  // server asks for one and the client sent one; else "anonymous".
  std::string identity;
  // The token used, or nullptr when auth is off. Points into the Authorizer's table.
  const TokenEntry* token = nullptr;

  // Whether the caller may act for `service` (always true without a restricted token).
  bool MayActFor(absl::string_view service) const {
    return token == nullptr || token->MayActFor(service);
  }
};

class Authorizer {
 public:
  // `tokens` empty = auth off. `certificate_identity`: the server asks clients for certificates
  // (TLS client_auth request/require), so a call without a token may be known by its cert.
  Authorizer(TokenTable tokens, bool certificate_identity)
      : tokens_(std::move(tokens)), certificate_identity_(certificate_identity) {}

  bool enabled() const { return !tokens_.empty(); }

  // Authenticates the call and checks `method`'s rule. `service`: the service the request acts
  // for (checked against a WORKER token's list), or nullopt when it names none. Returns the
  // caller, or UNAUTHENTICATED / PERMISSION_DENIED as described above. A method without a rule
  // is refused (PERMISSION_DENIED, NO_RULE). Thread-safe.
  absl::StatusOr<Caller> Authorize(const grpc::ServerContextBase& ctx, absl::string_view method,
                                   std::optional<absl::string_view> service) const;

 private:
  // The identity of a call without a token: its certificate's, or "anonymous".
  std::string AnonymousIdentity(const grpc::ServerContextBase& ctx) const;

  const TokenTable tokens_;
  const bool certificate_identity_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_AUTH_AUTHORIZER_H_
