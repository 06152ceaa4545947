// ApiRelay: the console's whole backend. A page POSTs a request message as protobuf-JSON to
// /api/<full method name> (e.g. /api/retryd.v1.AdminService/ListDeadLetters); the relay parses
// it into the method's request type, calls retryd's own gRPC service over an in-process channel
// with the operator's bearer token (so the server's authorization, validation and audit apply
// exactly as to retryctl), and returns the response as protobuf-JSON, or the gRPC status as an
// HTTP status with a JSON error. Only the methods of ConsoleMethods() are relayed: the operator
// operations and GetCircuit, never the worker RPCs that change state.
#ifndef RETRYD_SERVER_CONSOLE_API_RELAY_H_
#define RETRYD_SERVER_CONSOLE_API_RELAY_H_

#include <memory>
#include <string>

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "google/protobuf/message.h"

namespace retryd {

// The methods a console page may call, as "retryd.v1.AdminService/ListServices".
absl::Span<const absl::string_view> ConsoleMethods();
bool IsConsoleMethod(absl::string_view method);

// The HTTP status a gRPC status code is shown as (INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// PERMISSION_DENIED 403, NOT_FOUND 404, ALREADY_EXISTS/ABORTED/FAILED_PRECONDITION 409,
// RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504, others 500).
int HttpStatusFor(grpc::StatusCode code);

// {"code": "INVALID_ARGUMENT", "message": "...", "field": "filter.after"}: `field` is the
// message's leading field path when it starts with one ("filter.after: ..."), else absent.
std::string ErrorJson(grpc::StatusCode code, absl::string_view message);

struct RelayResult {
  int http_status = 200;
  std::string json;  // The response message, or ErrorJson().
  grpc::StatusCode code = grpc::StatusCode::OK;
};

class ApiRelay {
 public:
  explicit ApiRelay(std::shared_ptr<grpc::Channel> channel) : channel_(std::move(channel)) {}

  // Calls `method` (one of ConsoleMethods(); else NOT_FOUND, 404) with the request in
  // `request_json` and `bearer_token` (empty: no authorization header). A body that is not the
  // method's request message in protobuf-JSON is INVALID_ARGUMENT (400) and calls nothing.
  // Thread-safe.
  RelayResult Call(absl::string_view method, absl::string_view request_json,
                   absl::string_view bearer_token) const;

  // The same call with messages: `method` must be one of ConsoleMethods() and `request` and
  // `response` of its types.
  grpc::Status Invoke(absl::string_view method, const google::protobuf::Message& request,
                      google::protobuf::Message* response, absl::string_view bearer_token) const;

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_CONSOLE_API_RELAY_H_
