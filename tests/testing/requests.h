// Builders for the requests integration tests send, and small call wrappers.
#ifndef RETRYD_TESTS_TESTING_REQUESTS_H_
#define RETRYD_TESTS_TESTING_REQUESTS_H_

#include <string>

#include "absl/time/time.h"
#include "retryd/v1/admin_service.grpc.pb.h"
#include "retryd/v1/retry_service.grpc.pb.h"
#include "server/util/time_conversion.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {

// A first failure of `message_id` with a transient error and a small payload.
inline v1::ReportFailureRequest FirstFailure(const std::string& service,
                                             const std::string& message_id,
                                             const std::string& error_code = "UPSTREAM_TIMEOUT") {
  v1::ReportFailureRequest req;
  v1::Envelope* e = req.mutable_envelope();
  e->set_service(service);
  e->set_message_id(message_id);
  e->set_trace_id("trace-" + message_id);
  e->set_payload("{\"order\": \"" + message_id + "\"}");
  e->set_content_type("application/json");
  e->set_schema_version("v1");
  e->set_source("orders-topic");
  (*e->mutable_headers())["tenant"] = "acme";
  req.mutable_failure()->set_error_code(error_code);
  req.mutable_failure()->set_message("upstream timed out after 30s");
  return req;
}

// The failure of a leased retry.
inline v1::ReportFailureRequest LeasedFailure(const v1::LeasedEnvelope& leased,
                                              const std::string& error_code = "UPSTREAM_TIMEOUT") {
  v1::ReportFailureRequest req;
  req.mutable_envelope()->set_service(leased.envelope().service());
  req.mutable_envelope()->set_message_id(leased.envelope().message_id());
  req.mutable_failure()->set_error_code(error_code);
  req.mutable_failure()->set_message("still failing");
  req.set_lease_token(leased.lease_token());
  return req;
}

inline grpc::Status Report(v1::RetryService::Stub& stub, const v1::ReportFailureRequest& req,
                           v1::ReportFailureResponse* resp) {
  return stub.ReportFailure(Context().get(), req, resp);
}

// Leases with a long-poll of `wait`.
inline grpc::Status LeaseSome(v1::RetryService::Stub& stub, const std::string& service, int max,
                              absl::Duration wait, v1::LeaseResponse* resp,
                              absl::Duration visibility = absl::Seconds(30)) {
  v1::LeaseRequest req;
  req.set_service(service);
  req.set_max_messages(max);
  DurationToProto(wait, req.mutable_wait_time());
  DurationToProto(visibility, req.mutable_visibility_timeout());
  return stub.Lease(Context(wait + absl::Seconds(10)).get(), req, resp);
}

// Polls Lease until `count` envelopes were taken or `timeout` passed.
inline v1::LeaseResponse LeaseUntil(v1::RetryService::Stub& stub, const std::string& service,
                                    int count, absl::Duration timeout,
                                    absl::Duration visibility = absl::Seconds(30)) {
  v1::LeaseResponse all;
  const absl::Time deadline = absl::Now() + timeout;
  while (all.envelopes_size() < count && absl::Now() < deadline) {
    v1::LeaseResponse resp;
    if (!LeaseSome(stub, service, count - all.envelopes_size(), absl::Seconds(1), &resp,
                   visibility)
             .ok()) {
      break;
    }
    for (const auto& e : resp.envelopes()) *all.add_envelopes() = e;
  }
  return all;
}

inline grpc::Status Succeed(v1::RetryService::Stub& stub, const v1::LeasedEnvelope& leased) {
  v1::ReportSuccessRequest req;
  req.set_service(leased.envelope().service());
  req.set_lease_token(leased.lease_token());
  v1::ReportSuccessResponse resp;
  return stub.ReportSuccess(Context().get(), req, &resp);
}

inline grpc::Status GetEnvelope(v1::AdminService::Stub& stub, const std::string& service,
                                const std::string& message_id, v1::Envelope* out) {
  v1::GetEnvelopeRequest req;
  req.set_service(service);
  req.set_message_id(message_id);
  v1::GetEnvelopeResponse resp;
  grpc::Status s = stub.GetEnvelope(Context().get(), req, &resp);
  *out = resp.envelope();
  return s;
}

// ListServices' entry for `service` (an empty summary if absent).
inline v1::ServiceSummary ServiceSummaryOf(v1::AdminService::Stub& stub,
                                           const std::string& service) {
  v1::ListServicesResponse resp;
  grpc::Status s = stub.ListServices(Context().get(), v1::ListServicesRequest(), &resp);
  for (const auto& summary : resp.services()) {
    if (summary.service() == service) return summary;
  }
  return v1::ServiceSummary();
}

inline absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

// A fast policy for tests: 3 attempts, 200 ms then 400 ms, no jitter.
inline constexpr char kFastPolicyConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}}
  ]
})json";

}  // namespace retryd::testing

#endif  // RETRYD_TESTS_TESTING_REQUESTS_H_
