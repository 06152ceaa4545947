// The audit record of an operator call: who (no auth exists yet, so "anonymous"), from where
// (the gRPC peer), with the caller's note and request id. Fill in method, target, filter, counts
// and time, then append it in the same transaction as the mutation:
//
//   AuditRecord audit = CallerAudit(ctx, req->note(), "");
//   audit.method = "SetCircuitOverride";
//   audit.target = req->service();
//   engine->RunInTransaction([audit](EngineTxn& txn) mutable -> absl::Status {
//     ... the mutation through txn.store() ...
//     audit.time = txn.now();
//     audit.affected_count = 1;
//     audit.result_code = "OK";
//     return txn.store().AppendAudit(&audit);
//   }, done);
#ifndef RETRYD_SERVER_RPC_AUDIT_CALLER_H_
#define RETRYD_SERVER_RPC_AUDIT_CALLER_H_

#include <string>

#include <grpcpp/grpcpp.h>

#include "server/store/store.h"

namespace retryd {

inline AuditRecord CallerAudit(grpc::CallbackServerContext* ctx, const std::string& note,
                               const std::string& request_id) {
  AuditRecord a;
  a.identity = "anonymous";
  a.peer = ctx->peer();
  a.note = note;
  a.request_id = request_id;
  return a;
}

}  // namespace retryd

#endif  // RETRYD_SERVER_RPC_AUDIT_CALLER_H_
