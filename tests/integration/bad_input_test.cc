// Every bad input gets the right status code, a message naming the field, and changes nothing.
#include <grpcpp/grpcpp.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_stores.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

struct BadReport {
  std::string name;
  std::function<void(v1::ReportFailureRequest*)> mutate;
  grpc::StatusCode code;
  std::string field;  // Must appear in the error message.
};

// One server per store, started by the first test of the suite that needs it.
class BadInputTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
    ServerProcess*& server = (*servers_)[GetParam()];
    if (server == nullptr) {
      std::vector<std::string> args;
      if (GetParam() == StoreKind::kPostgres) {
        absl::StatusOr<StoreLocation> where = NewStoreLocation(GetParam());
        ASSERT_TRUE(where.ok()) << where.status();
        args = StoreFlags(*where);
      }
      auto started = ServerProcess::Start(*dir_, kFastPolicyConfig, args);
      ASSERT_TRUE(started.ok()) << started.status();
      server = started->release();
    }
    server_ = server;
  }
  static void SetUpTestSuite() {
    dir_ = new std::string(MakeTempDir());
    servers_ = new std::map<StoreKind, ServerProcess*>();
  }
  static void TearDownTestSuite() {
    for (auto& [kind, server] : *servers_) delete server;
    delete servers_;
    RemoveTree(*dir_);
    delete dir_;
  }

  // Nothing was stored: no service known, no envelope.
  void ExpectStoreUnchanged() {
    auto admin = server_->AdminStub();
    v1::ListServicesResponse services;
    ASSERT_TRUE(admin->ListServices(Context().get(), v1::ListServicesRequest(), &services).ok());
    for (const auto& s : services.services()) {
      EXPECT_EQ(s.scheduled() + s.leased() + s.dead(), 0) << s.service();
    }
  }

  static std::string* dir_;
  static std::map<StoreKind, ServerProcess*>* servers_;
  ServerProcess* server_ = nullptr;
};

std::string* BadInputTest::dir_ = nullptr;
std::map<StoreKind, ServerProcess*>* BadInputTest::servers_ = nullptr;

INSTANTIATE_TEST_SUITE_P(Stores, BadInputTest, AllStoreKinds(), StoreKindName);

TEST_P(BadInputTest, ReportFailureRejectsEachBadField) {
  const std::vector<BadReport> cases = {
      {"no envelope", [](auto* r) { r->clear_envelope(); }, grpc::INVALID_ARGUMENT, "envelope"},
      {"no failure", [](auto* r) { r->clear_failure(); }, grpc::INVALID_ARGUMENT, "failure"},
      {"empty service", [](auto* r) { r->mutable_envelope()->set_service(""); },
       grpc::INVALID_ARGUMENT, "envelope.service"},
      {"upper-case service", [](auto* r) { r->mutable_envelope()->set_service("Billing"); },
       grpc::INVALID_ARGUMENT, "envelope.service"},
      {"service starting with a dot", [](auto* r) { r->mutable_envelope()->set_service(".x"); },
       grpc::INVALID_ARGUMENT, "envelope.service"},
      {"service of 65 chars",
       [](auto* r) { r->mutable_envelope()->set_service(std::string(65, 'a')); },
       grpc::INVALID_ARGUMENT, "envelope.service"},
      {"service with a space", [](auto* r) { r->mutable_envelope()->set_service("a b"); },
       grpc::INVALID_ARGUMENT, "envelope.service"},
      {"empty message id", [](auto* r) { r->mutable_envelope()->set_message_id(""); },
       grpc::INVALID_ARGUMENT, "envelope.message_id"},
      {"message id of 257 bytes",
       [](auto* r) { r->mutable_envelope()->set_message_id(std::string(257, 'm')); },
       grpc::INVALID_ARGUMENT, "envelope.message_id"},
      {"negative attempt", [](auto* r) { r->mutable_envelope()->set_attempt(-1); },
       grpc::INVALID_ARGUMENT, "envelope.attempt"},
      {"attempt over 1000", [](auto* r) { r->mutable_envelope()->set_attempt(1001); },
       grpc::INVALID_ARGUMENT, "envelope.attempt"},
      {"first_seen_at far in the future",
       [](auto* r) {
         r->mutable_envelope()->mutable_first_seen_at()->set_seconds(absl::ToUnixSeconds(
             absl::Now() + absl::Hours(2)));
       },
       grpc::INVALID_ARGUMENT, "envelope.first_seen_at"},
      {"first_seen_at with bad nanos",
       [](auto* r) { r->mutable_envelope()->mutable_first_seen_at()->set_nanos(-5); },
       grpc::INVALID_ARGUMENT, "envelope.first_seen_at"},
      {"payload over 1 MiB",
       [](auto* r) { r->mutable_envelope()->set_payload(std::string((1 << 20) + 1, 'x')); },
       grpc::RESOURCE_EXHAUSTED, "envelope.payload"},
      {"schema version of 65 bytes",
       [](auto* r) { r->mutable_envelope()->set_schema_version(std::string(65, 'v')); },
       grpc::INVALID_ARGUMENT, "envelope.schema_version"},
      {"65 headers",
       [](auto* r) {
         for (int i = 0; i < 65; ++i) {
           (*r->mutable_envelope()->mutable_headers())["h" + std::to_string(i)] = "v";
         }
       },
       grpc::INVALID_ARGUMENT, "envelope.headers"},
      {"empty header key", [](auto* r) { (*r->mutable_envelope()->mutable_headers())[""] = "v"; },
       grpc::INVALID_ARGUMENT, "envelope.headers"},
      {"error code of 129 bytes",
       [](auto* r) { r->mutable_failure()->set_error_code(std::string(129, 'E')); },
       grpc::INVALID_ARGUMENT, "failure.error_code"},
      {"unknown error class",
       [](auto* r) { r->mutable_failure()->set_error_class(static_cast<v1::ErrorClass>(42)); },
       grpc::INVALID_ARGUMENT, "failure.error_class"},
      {"message over 4096 bytes",
       [](auto* r) { r->mutable_failure()->set_message(std::string(4097, 'm')); },
       grpc::INVALID_ARGUMENT, "failure.message"},
      {"http status 99", [](auto* r) { r->mutable_failure()->set_http_status(99); },
       grpc::INVALID_ARGUMENT, "failure.http_status"},
      {"http status 600", [](auto* r) { r->mutable_failure()->set_http_status(600); },
       grpc::INVALID_ARGUMENT, "failure.http_status"},
      {"negative retry_after",
       [](auto* r) { r->mutable_failure()->mutable_retry_after()->set_seconds(-1); },
       grpc::INVALID_ARGUMENT, "failure.retry_after"},
      {"retry_after over 30 days",
       [](auto* r) { r->mutable_failure()->mutable_retry_after()->set_seconds(31 * 86400); },
       grpc::INVALID_ARGUMENT, "failure.retry_after"},
      {"unknown lease token", [](auto* r) { r->set_lease_token("7.0.deadbeef"); },
       grpc::FAILED_PRECONDITION, "lease_token"},
      {"garbage lease token", [](auto* r) { r->set_lease_token("not a token"); },
       grpc::FAILED_PRECONDITION, "lease_token"},
      {"lease token of 257 bytes", [](auto* r) { r->set_lease_token(std::string(257, 't')); },
       grpc::INVALID_ARGUMENT, "lease_token"},
  };
  auto stub = server_->RetryStub();
  for (const BadReport& c : cases) {
    SCOPED_TRACE(c.name);
    v1::ReportFailureRequest req = FirstFailure("billing", "bad-1");
    c.mutate(&req);
    v1::ReportFailureResponse resp;
    grpc::Status s = stub->ReportFailure(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), c.code) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  ExpectStoreUnchanged();
  v1::Envelope e;
  EXPECT_EQ(GetEnvelope(*server_->AdminStub(), "billing", "bad-1", &e).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_P(BadInputTest, LeaseRejectsEachBadField) {
  struct Case {
    std::string name;
    std::function<void(v1::LeaseRequest*)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"no service", [](auto* r) { r->set_service(""); }, "service"},
      {"bad service", [](auto* r) { r->set_service("BAD!"); }, "service"},
      {"negative max", [](auto* r) { r->set_max_messages(-1); }, "max_messages"},
      {"visibility 5ms", [](auto* r) { r->mutable_visibility_timeout()->set_nanos(5000000); },
       "visibility_timeout"},
      {"visibility 13h", [](auto* r) { r->mutable_visibility_timeout()->set_seconds(13 * 3600); },
       "visibility_timeout"},
      {"wait 21s", [](auto* r) { r->mutable_wait_time()->set_seconds(21); }, "wait_time"},
      {"negative wait", [](auto* r) { r->mutable_wait_time()->set_seconds(-1); }, "wait_time"},
  };
  auto stub = server_->RetryStub();
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    v1::LeaseRequest req;
    req.set_service("billing");
    req.set_max_messages(1);
    c.mutate(&req);
    v1::LeaseResponse resp;
    grpc::Status s = stub->Lease(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  ExpectStoreUnchanged();
}

TEST_P(BadInputTest, OtherWorkerCallsRejectBadFields) {
  auto stub = server_->RetryStub();
  {
    v1::ReportSuccessRequest req;
    req.set_service("billing");
    v1::ReportSuccessResponse resp;
    grpc::Status s = stub->ReportSuccess(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("lease_token"));
    req.set_lease_token("1.0.abc");
    s = stub->ReportSuccess(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("lease_token"));
  }
  {
    v1::ExtendLeaseRequest req;
    v1::ExtendLeaseResponse resp;
    grpc::Status s = stub->ExtendLease(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    req.set_lease_token("1.0.abc");
    req.mutable_visibility_timeout()->set_seconds(100000);
    s = stub->ExtendLease(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("visibility_timeout"));
  }
  {
    v1::RecordOutcomesRequest req;
    req.set_service("billing");
    req.set_successes(-3);
    v1::RecordOutcomesResponse resp;
    grpc::Status s = stub->RecordOutcomes(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("successes"));
  }
  {
    v1::GetCircuitRequest req;
    v1::GetCircuitResponse resp;
    EXPECT_EQ(stub->GetCircuit(Context().get(), req, &resp).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  ExpectStoreUnchanged();
}

TEST_P(BadInputTest, AdminCallsRejectBadFields) {
  auto admin = server_->AdminStub();
  v1::GetEnvelopeRequest get;
  get.set_service("billing");
  v1::GetEnvelopeResponse got;
  grpc::Status s = admin->GetEnvelope(Context().get(), get, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("message_id"));
  get.set_message_id("nope");
  EXPECT_EQ(admin->GetEnvelope(Context().get(), get, &got).error_code(),
            grpc::StatusCode::NOT_FOUND);

  v1::ListDeadLettersRequest list;
  list.set_page_size(-1);
  v1::ListDeadLettersResponse listed;
  s = admin->ListDeadLetters(Context().get(), list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_size"));
  list.set_page_size(10);
  list.set_page_token("tampered!");
  s = admin->ListDeadLetters(Context().get(), list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
  list.clear_page_token();
  list.mutable_filter()->set_service("NOT VALID");
  s = admin->ListDeadLetters(Context().get(), list, &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("filter.service"));
}

TEST_P(BadInputTest, GarbageBytesDoNotCrashTheServer) {
  // A request body that is not a valid message at all.
  for (const std::string method : {"/retryd.v1.RetryService/ReportFailure",
                                   "/retryd.v1.RetryService/Lease",
                                   "/retryd.v1.AdminService/GetEnvelope"}) {
    std::string response;
    grpc::Status status =
        RawUnaryCall(server_->address(), method, "\xff\xff\xff\xff\x0f garbage", &response);
    EXPECT_FALSE(status.ok()) << method;
  }
  // Still serving.
  v1::ListServicesResponse services;
  EXPECT_TRUE(
      server_->AdminStub()->ListServices(Context().get(), v1::ListServicesRequest(), &services).ok());
}

}  // namespace
}  // namespace retryd::testing
