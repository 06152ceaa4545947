// ApiRelay against a real retryd with tokens: protobuf-JSON in and out, gRPC status as HTTP
// status with the field named, the allow-list, and the caller's own token deciding.
#include "server/console/api_relay.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/auth/token_table.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;

constexpr char kOps[] = "ops-secret";
constexpr char kWorker[] = "worker-secret";

std::string Hex(absl::string_view token) {
  const Sha256Digest d = Sha256(token);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

class ApiRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    auto server = testing::ServerProcess::Start(
        dir_, absl::StrCat(R"({"auth": {"tokens": [{"name": "ops", "sha256": ")", Hex(kOps),
                           R"(", "role": "OPERATOR"}, {"name": "w", "sha256": ")", Hex(kWorker),
                           R"(", "role": "WORKER"}]}})"));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    relay_ = std::make_unique<ApiRelay>(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_.reset();
    testing::RemoveTree(dir_);
  }
  std::string dir_;
  std::unique_ptr<testing::ServerProcess> server_;
  std::unique_ptr<ApiRelay> relay_;
};

TEST_F(ApiRelayTest, RelaysJsonBothWays) {
  RelayResult r = relay_->Call("retryd.v1.AdminService/ListDeadLetters",
                               R"({"filter": {"service": "billing"}, "page_size": 10})", kOps);
  EXPECT_EQ(r.http_status, 200) << r.json;
  const nlohmann::json j = nlohmann::json::parse(r.json);
  EXPECT_TRUE(j.contains("dead_letters"));
  EXPECT_TRUE(j.contains("next_page_token"));  // Defaults are printed.
}

TEST_F(ApiRelayTest, InvalidArgumentIs400NamingTheField) {
  RelayResult r = relay_->Call("retryd.v1.AdminService/ListDeadLetters", R"({"page_size": -1})",
                               kOps);
  EXPECT_EQ(r.http_status, 400);
  const nlohmann::json j = nlohmann::json::parse(r.json);
  EXPECT_EQ(j["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(j["field"], "page_size");
}

TEST_F(ApiRelayTest, BodyThatIsNotTheRequestMessageIs400AndCallsNothing) {
  for (const char* body : {"{\"no_such_field\": 1}", "not json", "{\"page_size\": \"x\"}"}) {
    RelayResult r = relay_->Call("retryd.v1.AdminService/ListDeadLetters", body, kOps);
    EXPECT_EQ(r.http_status, 400) << body;
    EXPECT_THAT(r.json, HasSubstr("\"field\":\"body\"")) << r.json;
  }
}

TEST_F(ApiRelayTest, WorkerTokenIsRefusedByTheServerAndWorkerRpcsAreNotRelayed) {
  RelayResult r = relay_->Call("retryd.v1.AdminService/ListServices", "{}", kWorker);
  EXPECT_EQ(r.http_status, 403);
  EXPECT_EQ(relay_->Call("retryd.v1.AdminService/ListServices", "{}", "nope").http_status, 401);
  for (const char* m : {"retryd.v1.RetryService/Lease", "retryd.v1.RetryService/ReportFailure",
                        "retryd.v1.RetryService/ReportSuccess", "grpc.health.v1.Health/Check",
                        "retryd.v1.AdminService/NoSuch"}) {
    RelayResult denied = relay_->Call(m, "{}", kOps);
    EXPECT_EQ(denied.http_status, 404) << m;
    EXPECT_THAT(denied.json, HasSubstr("does not relay")) << m;
  }
}

TEST(ApiRelayStaticTest, EveryAllowedMethodIsAnOperatorOperationOrGetCircuit) {
  for (absl::string_view m : ConsoleMethods()) {
    EXPECT_TRUE(absl::StartsWith(m, "retryd.v1.AdminService/") ||
                m == "retryd.v1.RetryService/GetCircuit")
        << m;
  }
}

TEST(ApiRelayStaticTest, ErrorJsonNamesTheLeadingFieldOnly) {
  EXPECT_EQ(nlohmann::json::parse(ErrorJson(grpc::StatusCode::INVALID_ARGUMENT,
                                            "filter.error_codes[0]: too long"))["field"],
            "filter.error_codes[0]");
  EXPECT_FALSE(nlohmann::json::parse(ErrorJson(grpc::StatusCode::INTERNAL, "disk says: no"))
                   .contains("field"));
  // Invalid UTF-8 in a message is replaced, not an exception.
  EXPECT_THAT(ErrorJson(grpc::StatusCode::INVALID_ARGUMENT, "x: \xff\xfe"), HasSubstr("x: "));
  EXPECT_EQ(HttpStatusFor(grpc::StatusCode::FAILED_PRECONDITION), 409);
  EXPECT_EQ(HttpStatusFor(grpc::StatusCode::UNAUTHENTICATED), 401);
}

}  // namespace
}  // namespace retryd
