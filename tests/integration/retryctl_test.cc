// retryctl against the real retryd: the README's walk-through, JSON output, and exit codes.
#include <sys/wait.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class RetryctlTest : public ServerTest {
 protected:
  void SetUp() override {
    if (getenv("RETRYCTL_BIN") == nullptr) GTEST_SKIP() << "RETRYCTL_BIN is not set";
    StartServer(kFastPolicyConfig);
  }

  // Runs retryctl against the test server (unless args name another --server).
  Result Run(std::vector<std::string> args, bool with_server = true) {
    std::string cmd = getenv("RETRYCTL_BIN");
    if (with_server) cmd += " --server " + server_->address();
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " >" + dir_ + "/out 2>" + dir_ + "/err </dev/null";
    const int rc = std::system(cmd.c_str());
    return Result{WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, ReadFile(dir_ + "/out"),
                  ReadFile(dir_ + "/err")};
  }
};

TEST_F(RetryctlTest, WalkThroughFromTheReadme) {
  Result r = Run({"report-failure", "--service", "billing", "--message-id", "order-42",
                  "--error-code", "UPSTREAM_TIMEOUT", "--message", "inventory timed out",
                  "--payload", "{\"order\":42}"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SCHEDULED"));

  r = Run({"-o", "json", "report-failure", "--service", "billing", "--message-id", "order-42",
           "--error-code", "UPSTREAM_TIMEOUT"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"duplicate\": true"));

  r = Run({"report-failure", "--service", "billing", "--message-id", "order-43", "--http-status",
           "422", "--error-code", "INVALID_SCHEMA", "--message", "missing field customer_id"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("DEAD_LETTERED"));
  EXPECT_THAT(r.out, HasSubstr("NON_RETRYABLE"));

  r = Run({"-o", "json", "lease", "--service", "billing", "--wait", "5s"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::LeaseResponse leased;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &leased).ok()) << r.out;
  ASSERT_EQ(leased.envelopes_size(), 1);
  EXPECT_EQ(leased.envelopes(0).envelope().message_id(), "order-42");
  EXPECT_EQ(leased.envelopes(0).envelope().payload(), "{\"order\":42}");

  r = Run({"success", "--service", "billing", "--lease-token", leased.envelopes(0).lease_token()});
  ASSERT_EQ(r.code, 0) << r.err;

  r = Run({"services"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("billing"));
  EXPECT_THAT(r.out, HasSubstr("SCHEDULED"));  // The header row.

  r = Run({"dlq", "list", "--service", "billing"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("order-43"));
  EXPECT_THAT(r.out, Not(HasSubstr("order-42")));

  r = Run({"-o", "json", "get", "billing", "order-43"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::GetEnvelopeResponse got;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &got).ok()) << r.out;
  EXPECT_EQ(got.envelope().state(), v1::DEAD_LETTERED);
  EXPECT_EQ(got.envelope().last_error().http_status(), 422);

  r = Run({"get", "billing", "order-43"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("INVALID_SCHEMA"));
  EXPECT_THAT(r.out, HasSubstr("missing field customer_id"));
}

TEST_F(RetryctlTest, ServerErrorsBecomeExitCodesAndMessages) {
  Result r = Run({"get", "billing", "nope"});
  EXPECT_EQ(r.code, 64 + 5);  // NOT_FOUND.
  EXPECT_THAT(r.err, HasSubstr("Error:"));
  EXPECT_THAT(r.err, HasSubstr("not found"));
  EXPECT_THAT(r.err, HasSubstr("code=NOT_FOUND"));

  r = Run({"report-failure", "--service", "Bad Service", "--message-id", "x"});
  EXPECT_EQ(r.code, 64 + 3);  // INVALID_ARGUMENT.
  EXPECT_THAT(r.err, HasSubstr("envelope.service"));

  r = Run({"success", "--service", "billing", "--lease-token", "1.0.feed"});
  EXPECT_EQ(r.code, 64 + 9);  // FAILED_PRECONDITION.
  EXPECT_THAT(r.err, HasSubstr("lease_token"));

  r = Run({"health"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SERVING"));

  server_->Kill();
  r = Run({"--timeout", "2s", "services"});
  EXPECT_EQ(r.code, 64 + 14);  // UNAVAILABLE.
  EXPECT_THAT(r.err, HasSubstr("Error:"));
}

TEST_F(RetryctlTest, ServerAddressComesFromTheEnvironment) {
  const std::string cmd = std::string("RETRYD_ADDR=") + server_->address() + " " +
                          getenv("RETRYCTL_BIN") + " health >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
}

TEST_F(RetryctlTest, CircuitCommandsShowAndOverride) {
  Result r = Run({"report-failure", "--service", "orders", "--message-id", "o-1",
                  "--error-code", "UPSTREAM_TIMEOUT"});
  ASSERT_EQ(r.code, 0) << r.err;

  r = Run({"circuit", "get", "orders"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("FAILURE_RATE"));
  EXPECT_THAT(r.out, HasSubstr("CLOSED"));
  EXPECT_THAT(r.out, HasSubstr("100.0%"));  // One TRANSIENT failure, no success.

  r = Run({"circuit", "open", "orders", "--note", "payments provider down"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("OPEN"));
  EXPECT_THAT(r.out, HasSubstr("FORCE_OPEN"));

  r = Run({"-o", "json", "circuit", "get", "orders"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::GetCircuitResponse circuit;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &circuit).ok()) << r.out;
  EXPECT_EQ(circuit.state(), v1::OPEN);

  r = Run({"circuit", "list"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("BUDGET_LEFT"));
  EXPECT_THAT(r.out, HasSubstr("OPEN"));
  // The policy has no budget block: no budget.
  EXPECT_THAT(r.out, HasSubstr("unlimited"));

  r = Run({"services"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("BUDGET_LEFT"));
  EXPECT_THAT(r.out, HasSubstr("OPEN"));
  EXPECT_THAT(r.out, HasSubstr("unlimited"));

  r = Run({"-o", "json", "services"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::ListServicesResponse services;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &services).ok()) << r.out;
  ASSERT_EQ(services.services_size(), 1);
  EXPECT_EQ(services.services(0).circuit_state(), v1::OPEN);
  EXPECT_EQ(services.services(0).budget_remaining(), -1);

  r = Run({"circuit", "close", "orders", "--note", "back"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("FORCE_CLOSED"));
  r = Run({"-o", "json", "circuit", "auto", "orders"});
  ASSERT_EQ(r.code, 0) << r.err;
  v1::SetCircuitOverrideResponse set;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &set).ok()) << r.out;
  EXPECT_EQ(set.override(), v1::AUTO);
  EXPECT_EQ(set.state(), v1::CLOSED);  // The fast policy leaves the breaker off.

  r = Run({"circuit", "open", "Bad Name"});
  EXPECT_EQ(r.code, 64 + 3);  // INVALID_ARGUMENT.
  EXPECT_THAT(r.err, HasSubstr("service"));
  r = Run({"circuit", "open", "orders", "--note", std::string(1025, 'n')});
  EXPECT_EQ(r.code, 64 + 3);
  EXPECT_THAT(r.err, HasSubstr("note"));
  r = Run({"circuit", "get", "orders", "extra"});
  EXPECT_EQ(r.code, 2);  // Usage.

  server_->Kill();
  r = Run({"--timeout", "2s", "circuit", "get", "orders"});
  EXPECT_EQ(r.code, 64 + 14);  // UNAVAILABLE.
}

}  // namespace
}  // namespace retryd::testing
