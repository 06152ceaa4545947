// Bearer-token auth against the real retryd: no or a wrong token is UNAUTHENTICATED on every
// RPC, a WORKER token gets RetryService only and only its services (a refused call changes
// nothing), an OPERATOR token gets everything, health stays open, the audit log and the
// `event=audit` line carry the token's name, the config is validated with the field named, and
// no log line ever holds a token.
#include <sys/wait.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/testing/auth_channel.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOpsToken[] = "op-7f3a9c1e-secret";
constexpr char kBillingToken[] = "wk-billing-5d2e8b";
constexpr char kAnyWorkerToken[] = "wk-any-91c4d0";
constexpr char kWrongToken[] = "wrong-0a1b2c3d";

// Three tokens: "ops" (OPERATOR), "billing-worker" (WORKER for billing.* and payments) and
// "any-worker" (WORKER, every service); a fast retry policy.
std::string TokensConfig() {
  return absl::StrCat(R"json({
    "policies": [{"name": "default", "maxAttempts": 5,
                  "backoff": {"initial": "0.1s", "multiplier": 1, "max": "1s", "jitter": "NONE"}}],
    "auth": {"tokens": [
      {"name": "ops", "sha256": ")json", Sha256Hex(kOpsToken), R"json(", "role": "OPERATOR"},
      {"name": "billing-worker", "sha256": ")json", Sha256Hex(kBillingToken), R"json(",
       "role": "WORKER", "services": ["billing.*", "payments"]},
      {"name": "any-worker", "sha256": ")json", Sha256Hex(kAnyWorkerToken), R"json(",
       "role": "WORKER"}]}})json");
}

// Every RPC of retryd.v1's services, as "/package.Service/Method", with its service's name.
std::vector<std::pair<std::string, std::string>> AllMethods() {
  std::vector<std::pair<std::string, std::string>> methods;
  for (const google::protobuf::FileDescriptor* file :
       {v1::LeaseRequest::descriptor()->file(), v1::ListServicesRequest::descriptor()->file()}) {
    for (int s = 0; s < file->service_count(); ++s) {
      const google::protobuf::ServiceDescriptor* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        methods.emplace_back("/" + service->full_name() + "/" + service->method(m)->name(),
                             service->name());
      }
    }
  }
  return methods;
}

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    auto server = ServerProcess::Start(dir_, TokensConfig());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
  }
  void TearDown() override {
    // Whatever the test did, no token (right or wrong) reached the log.
    if (server_ != nullptr) {
      const std::string log = server_->log();
      for (const char* token : {kOpsToken, kBillingToken, kAnyWorkerToken, kWrongToken}) {
        EXPECT_THAT(log, Not(HasSubstr(token)));
      }
    }
    server_.reset();
    RemoveTree(dir_);
  }

  std::unique_ptr<v1::RetryService::Stub> Retry(const std::string& token) {
    return v1::RetryService::NewStub(ChannelWithToken(server_->address(), token));
  }
  std::unique_ptr<v1::AdminService::Stub> Admin(const std::string& token) {
    return v1::AdminService::NewStub(ChannelWithToken(server_->address(), token));
  }
  // An empty request to `method` with `authorization` (may be empty).
  grpc::Status Raw(const std::string& method, const std::string& authorization) {
    std::string response;
    return RawUnaryCall(grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()),
                        method, "", authorization, &response);
  }

  std::string dir_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(AuthTest, NoOrAWrongTokenIsUnauthenticatedOnEveryRpc) {
  const std::vector<std::pair<std::string, std::string>> methods = AllMethods();
  ASSERT_GE(methods.size(), 19u);
  std::string first_message;
  for (const auto& [method, service] : methods) {
    for (const std::string& authorization :
         {std::string(), absl::StrCat("Bearer ", kWrongToken), std::string("Bearer "),
          absl::StrCat("Basic ", kOpsToken), absl::StrCat("Bearer ", kOpsToken, "x"),
          std::string(kOpsToken)}) {
      grpc::Status s = Raw(method, authorization);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << method << " with '" << authorization << "': " << s.error_message();
      // One message for a missing and an unknown token, which never echoes what was sent.
      if (first_message.empty()) first_message = s.error_message();
      EXPECT_EQ(s.error_message(), first_message);
      EXPECT_THAT(s.error_message(), HasSubstr("TOKEN_INVALID"));
    }
  }
  EXPECT_THAT(server_->log(), AllOf(HasSubstr("\"event\":\"auth_denied\""),
                                    HasSubstr("\"reason\":\"TOKEN_INVALID\"")));
}

TEST_F(AuthTest, TheTokenSchemeIsCaseInsensitive) {
  v1::ReportFailureResponse resp;
  auto retry = v1::RetryService::NewStub(
      ChannelWithAuthorization(server_->address(), absl::StrCat("bearer ", kBillingToken)));
  grpc::Status s = Report(*retry, FirstFailure("billing.invoices", "m-1"), &resp);
  EXPECT_TRUE(s.ok()) << s.error_message();
}

TEST_F(AuthTest, WorkerTokensAreRefusedOnEveryAdminRpc) {
  for (const auto& [method, service] : AllMethods()) {
    for (const char* token : {kBillingToken, kAnyWorkerToken}) {
      grpc::Status s = Raw(method, absl::StrCat("Bearer ", token));
      if (service == "AdminService") {
        EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << method;
        EXPECT_THAT(s.error_message(), HasSubstr("ROLE_REQUIRED")) << method;
      } else {
        // An empty request names no service: refused for the restricted token, answered
        // (INVALID_ARGUMENT or the like) for the other.
        EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
      }
    }
  }
  EXPECT_THAT(server_->log(), AllOf(HasSubstr("\"reason\":\"ROLE_REQUIRED\""),
                                    HasSubstr("\"identity\":\"billing-worker\"")));
}

TEST_F(AuthTest, TheOperatorTokenPassesAuthOnEveryRpc) {
  for (const auto& [method, service] : AllMethods()) {
    grpc::Status s = Raw(method, absl::StrCat("Bearer ", kOpsToken));
    // Empty requests are answered by validation or succeed; never refused by auth (a handler
    // with a mistyped method name would be: NO_RULE).
    EXPECT_NE(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << method;
    EXPECT_NE(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << method << ": " << s.error_message();
  }
}

TEST_F(AuthTest, HealthAndReflectionNeedNoToken) {
  std::string response;
  grpc::Status s = RawUnaryCall(server_->address(), "/grpc.health.v1.Health/Check", "", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(response, std::string("\x08\x01", 2));  // SERVING.
  // Reflection's list_services (field 7) as one message of its stream.
  s = RawUnaryCall(server_->address(),
                   "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                   std::string("\x3a\x00", 2), &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(response, HasSubstr("retryd.v1.AdminService"));
}

TEST_F(AuthTest, AWorkerActsOnlyForItsServicesAndARefusedCallChangesNothing) {
  auto billing = Retry(kBillingToken);
  v1::ReportFailureResponse resp;
  for (const char* service : {"billing.invoices", "billing.eu.refunds", "payments"}) {
    grpc::Status s = Report(*billing, FirstFailure(service, "m-1"), &resp);
    EXPECT_TRUE(s.ok()) << service << ": " << s.error_message();
  }
  for (const char* service : {"shipping", "billing", "payments.eu", "billingx.a"}) {
    grpc::Status s = Report(*billing, FirstFailure(service, "m-2"), &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << service;
    EXPECT_THAT(s.error_message(), AllOf(HasSubstr("SERVICE_NOT_ALLOWED"),
                                         HasSubstr("billing-worker"), HasSubstr(service)));
  }
  // Nothing of the refused reports was stored.
  auto ops = Admin(kOpsToken);
  v1::Envelope stored;
  EXPECT_TRUE(GetEnvelope(*ops, "billing.invoices", "m-1", &stored).ok());
  for (const char* service : {"shipping", "billing", "payments.eu", "billingx.a"}) {
    EXPECT_EQ(GetEnvelope(*ops, service, "m-2", &stored).error_code(),
              grpc::StatusCode::NOT_FOUND)
        << service;
  }

  // The other RPCs that name a service.
  v1::LeaseResponse leased;
  EXPECT_EQ(LeaseSome(*billing, "shipping", 1, absl::ZeroDuration(), &leased).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::RecordOutcomesRequest outcomes;
  outcomes.set_service("shipping");
  outcomes.set_successes(1);
  v1::RecordOutcomesResponse outcomes_resp;
  EXPECT_EQ(billing->RecordOutcomes(Context().get(), outcomes, &outcomes_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::GetCircuitRequest circuit;
  circuit.set_service("shipping");
  v1::GetCircuitResponse circuit_resp;
  EXPECT_EQ(billing->GetCircuit(Context().get(), circuit, &circuit_resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  circuit.set_service("payments");
  EXPECT_TRUE(billing->GetCircuit(Context().get(), circuit, &circuit_resp).ok());
  EXPECT_THAT(server_->log(), HasSubstr("\"reason\":\"SERVICE_NOT_ALLOWED\""));
}

TEST_F(AuthTest, AWorkerCannotUseTheLeaseOfAServiceItMayNotActFor) {
  auto any = Retry(kAnyWorkerToken);
  auto billing = Retry(kBillingToken);
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*any, FirstFailure("shipping", "s-1"), &resp).ok());
  ASSERT_TRUE(Report(*billing, FirstFailure("billing.invoices", "b-1"), &resp).ok());
  const v1::LeaseResponse shipping = LeaseUntil(*any, "shipping", 1, absl::Seconds(10));
  ASSERT_EQ(shipping.envelopes_size(), 1);
  const v1::LeaseResponse invoices = LeaseUntil(*billing, "billing.invoices", 1, absl::Seconds(10));
  ASSERT_EQ(invoices.envelopes_size(), 1);

  // ExtendLease names no service: the engine checks the lease's.
  v1::ExtendLeaseRequest extend;
  extend.set_lease_token(shipping.envelopes(0).lease_token());
  extend.mutable_visibility_timeout()->set_seconds(600);
  v1::ExtendLeaseResponse extended;
  grpc::Status s = billing->ExtendLease(Context().get(), extend, &extended);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("SERVICE_NOT_ALLOWED"));
  EXPECT_THAT(s.error_message(), Not(HasSubstr(shipping.envelopes(0).lease_token())));
  // The refused extension did not move the lease.
  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*Admin(kOpsToken), "shipping", "s-1", &stored).ok());
  EXPECT_EQ(ToTime(stored.lease_expires_at()),
            ToTime(shipping.envelopes(0).lease_expires_at()));
  // Its own lease, and any lease for an unrestricted worker.
  extend.set_lease_token(invoices.envelopes(0).lease_token());
  EXPECT_TRUE(billing->ExtendLease(Context().get(), extend, &extended).ok());
  extend.set_lease_token(shipping.envelopes(0).lease_token());
  EXPECT_TRUE(any->ExtendLease(Context().get(), extend, &extended).ok());

  // ReportSuccess / ReportFailure name the service, which must be the lease's: an allowed name
  // with a foreign lease is a mismatch, the lease's own name is refused by auth.
  v1::LeasedEnvelope foreign = shipping.envelopes(0);
  foreign.mutable_envelope()->set_service("billing.invoices");
  EXPECT_EQ(Succeed(*billing, foreign).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Succeed(*billing, shipping.envelopes(0)).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Report(*billing, LeasedFailure(shipping.envelopes(0)), &resp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(Succeed(*any, shipping.envelopes(0)).ok());
  EXPECT_TRUE(Succeed(*billing, invoices.envelopes(0)).ok());
}

TEST_F(AuthTest, TheOperatorDoesEverythingAndTheAuditSaysWho) {
  auto retry = Retry(kOpsToken);
  auto admin = Admin(kOpsToken);
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry, FirstFailure("orders", "o-1"), &resp).ok());
  const v1::LeaseResponse leased = LeaseUntil(*retry, "orders", 1, absl::Seconds(10));
  ASSERT_EQ(leased.envelopes_size(), 1);
  ASSERT_TRUE(Succeed(*retry, leased.envelopes(0)).ok());
  v1::ListServicesResponse services;
  ASSERT_TRUE(admin->ListServices(Context().get(), v1::ListServicesRequest(), &services).ok());

  v1::SetCircuitOverrideRequest set;
  set.set_service("orders");
  set.set_override(v1::FORCE_OPEN);
  set.set_note("incident 42");
  v1::SetCircuitOverrideResponse set_resp;
  grpc::Status s = admin->SetCircuitOverride(Context().get(), set, &set_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  v1::PurgeDeadLettersRequest purge;
  purge.set_all(true);
  purge.set_dry_run(true);
  purge.set_request_id("purge-1");
  v1::PurgeDeadLettersResponse purge_resp;
  s = admin->PurgeDeadLetters(Context().get(), purge, &purge_resp);
  ASSERT_TRUE(s.ok()) << s.error_message();

  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(admin->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit).ok());
  ASSERT_EQ(audit.events_size(), 2);
  for (const v1::AuditEvent& e : audit.events()) {
    EXPECT_EQ(e.identity(), "ops") << e.method();
  }
  const std::string log = server_->log();
  EXPECT_THAT(log, HasSubstr(R"("event":"audit","identity":"ops")"));
  EXPECT_THAT(log, HasSubstr(R"("grpc_method":"SetCircuitOverride","target":"orders")"));
  EXPECT_THAT(log, HasSubstr(R"("grpc_method":"PurgeDeadLetters")"));
  EXPECT_THAT(log, HasSubstr(R"("request_id":"purge-1")"));
}

TEST_F(AuthTest, StartsWithoutTheNoAuthWarningAndListsItsTokens) {
  const std::string log = server_->log();
  EXPECT_THAT(log, Not(HasSubstr("auth_disabled")));
  EXPECT_THAT(log, HasSubstr("\"auth_tokens\":3"));
}

TEST(AuthConfigTest, WithoutTokensEveryoneIsAnonymousAndTheServerSaysSo) {
  const std::string dir = MakeTempDir();
  auto server = ServerProcess::Start(dir);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT((*server)->log(), AllOf(HasSubstr("\"level\":\"warn\",\"event\":\"auth_disabled\""),
                                      HasSubstr("loopback only")));
  // A token is ignored, not refused, when auth is off.
  auto admin = v1::AdminService::NewStub(ChannelWithToken((*server)->address(), kWrongToken));
  v1::SetCircuitOverrideRequest set;
  set.set_service("orders");
  set.set_override(v1::FORCE_CLOSED);
  v1::SetCircuitOverrideResponse set_resp;
  ASSERT_TRUE(admin->SetCircuitOverride(Context().get(), set, &set_resp).ok());
  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(admin->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit).ok());
  ASSERT_EQ(audit.events_size(), 1);
  EXPECT_EQ(audit.events(0).identity(), "anonymous");
  EXPECT_THAT((*server)->log(), Not(HasSubstr(kWrongToken)));
  server->reset();
  RemoveTree(dir);
}

// An --auth-file with one OPERATOR token, "ops" (kOpsToken).
void WriteOpsTokenFile(const std::string& path) {
  WriteFile(path, absl::StrCat(R"({"tokens": [{"name": "ops", "sha256": ")",
                               Sha256Hex(kOpsToken), R"(", "role": "OPERATOR"}]})"));
}

TEST(AuthConfigTest, TokensComeFromAnAuthFileToo) {
  const std::string dir = MakeTempDir();
  WriteOpsTokenFile(dir + "/tokens.json");
  auto server = ServerProcess::Start(dir, "", {"--auth-file", dir + "/tokens.json"});
  ASSERT_TRUE(server.ok()) << server.status();
  v1::ListServicesResponse services;
  auto anonymous = (*server)->AdminStub();
  EXPECT_EQ(anonymous->ListServices(Context().get(), v1::ListServicesRequest(), &services)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  auto ops = v1::AdminService::NewStub(ChannelWithToken((*server)->address(), kOpsToken));
  EXPECT_TRUE(ops->ListServices(Context().get(), v1::ListServicesRequest(), &services).ok());
  server->reset();
  RemoveTree(dir);
}

TEST(AuthConfigTest, BadTokensAreRefusedAtStartUpWithTheFieldNamed) {
  const std::string dir = MakeTempDir();
  const std::string good = absl::StrCat(R"({"name": "ops", "sha256": ")", Sha256Hex(kOpsToken),
                                        R"(", "role": "OPERATOR"})");
  struct Case {
    std::string token;
    std::string error;
  };
  const Case cases[] = {
      {R"({"name": "w", "sha256": "abc", "role": "WORKER"})", "auth.tokens[1].sha256: must be"},
      {absl::StrCat(R"({"name": "ops", "sha256": ")", Sha256Hex("x"), R"(", "role": "WORKER"})"),
       "auth.tokens[1].name: duplicate token name"},
      {absl::StrCat(R"({"name": "w", "sha256": ")", Sha256Hex("x"), R"("})"),
       "auth.tokens[1].role: must be WORKER or OPERATOR"},
      {absl::StrCat(R"({"name": "w", "sha256": ")", Sha256Hex("x"),
                    R"(", "role": "WORKER", "services": ["Bad Name"]})"),
       "auth.tokens[1].services[0]: must be a service name"},
  };
  for (const Case& c : cases) {
    WriteFile(dir + "/cfg.json",
              absl::StrCat(R"({"auth": {"tokens": [)", good, ", ", c.token, "]}}"));
    auto [code, out] = RunRetryd(dir, {"--config", dir + "/cfg.json", "--check-config"});
    EXPECT_EQ(code, 2) << c.token;
    EXPECT_THAT(out, HasSubstr(c.error)) << c.token;
  }
  // The same checks for --auth-file, whose path is named.
  WriteFile(dir + "/tokens.json",
            absl::StrCat(R"({"tokens": [)", good, ", ", cases[0].token, "]}"));
  auto [code, out] = RunRetryd(dir, {"--auth-file", dir + "/tokens.json", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr(absl::StrCat("--auth-file ", dir,
                                          "/tokens.json: auth.tokens[1].sha256: must be")));
  WriteFile(dir + "/cfg.json", absl::StrCat(R"({"auth": {"tokens": [)", good, "]}}"));
  std::tie(code, out) = RunRetryd(
      dir, {"--config", dir + "/cfg.json", "--auth-file", dir + "/tokens.json", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("keep the tokens in one place"));
  std::tie(code, out) = RunRetryd(dir, {"--auth-file", dir + "/missing.json", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr(dir + "/missing.json: cannot open auth file"));
  RemoveTree(dir);
}

TEST(AuthConfigTest, ANonLoopbackAddressNeedsTokensOrTheInsecureFlag) {
  const std::string dir = MakeTempDir();
  WriteOpsTokenFile(dir + "/tokens.json");
  auto [code, out] = RunRetryd(dir, {"--grpc-addr", "0.0.0.0:7000", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, AllOf(HasSubstr("no auth is configured"), HasSubstr("--insecure-allow-remote")));
  std::tie(code, out) = RunRetryd(dir, {"--grpc-addr", "0.0.0.0:7000", "--auth-file",
                                        dir + "/tokens.json", "--check-config"});
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = RunRetryd(
      dir, {"--grpc-addr", "0.0.0.0:7000", "--insecure-allow-remote", "--check-config"});
  EXPECT_EQ(code, 0) << out;
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
