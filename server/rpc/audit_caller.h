// The audit record of an operator call: who (the caller's identity from the Authorizer: the token
// name, a client certificate's SAN/CN, or "anonymous"), from where (the gRPC peer), with the
// caller's note and request id. Fill in method, target, filter, counts and time, then append it
// in the same transaction as the mutation:
//
//   AuditRecord audit = CallerAudit(ctx, *caller, req->note(), "");
//   audit.method = "SetCircuitOverride";
//   audit.target = req->service();
//   engine->RunInTransaction([audit](EngineTxn& txn) mutable -> absl::Status {
//     ... the mutation through txn.store() ...
//     audit.time = txn.now();
//     audit.affected_count = 1;
//     audit.result_code = "OK";
//     return txn.store().AppendAudit(&audit);
//   }, done);
//
// Once the call is answered, LogAudit() writes the `event=audit` log line.
#ifndef RETRYD_SERVER_RPC_AUDIT_CALLER_H_
#define RETRYD_SERVER_RPC_AUDIT_CALLER_H_

#include <cstdint>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "server/auth/authorizer.h"
#include "server/store/store.h"
#include "server/util/log.h"

namespace retryd {

inline AuditRecord CallerAudit(grpc::CallbackServerContext* ctx, const Caller& caller,
                               const std::string& note, const std::string& request_id) {
  AuditRecord a;
  a.identity = caller.identity;
  a.peer = ctx->peer();
  a.note = note;
  a.request_id = request_id;
  return a;
}

// The `event=audit` log line of an answered operator mutation: who, from where, what, and the
// outcome (`result` is the call's status; `affected` is logged when not negative).
inline void LogAudit(const AuditRecord& a, absl::string_view method, absl::string_view target,
                     const absl::Status& result, int64_t affected = -1) {
  LogEvent log(LogLevel::kInfo, "audit");
  log.Str("identity", a.identity)
      .Str("peer", a.peer)
      .Str("grpc_method", method)
      .Str("target", target)
      .Bool("dry_run", a.dry_run)
      .Str("result_code", absl::StatusCodeToString(result.code()));
  if (!a.request_id.empty()) log.Str("request_id", a.request_id);
  if (affected >= 0) log.Int("affected_count", affected);
}

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_AUDIT_CALLER_H_
