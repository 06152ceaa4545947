// The /metrics listener of the real retryd: --metrics-addr validation, a taken port failing
// start-up, "off", and a scrape over HTTP after traffic (RPC series by method and code, no
// per-message label values anywhere).
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { RemoveTree(dir_); }

  // Runs retryd to completion (it must exit by itself); returns (exit code, stdout+stderr).
  std::pair<int, std::string> Run(const std::string& args) {
    const std::string out = dir_ + "/run.out";
    const std::string cmd = absl::StrCat("timeout 20 ", getenv("RETRYD_BIN"), " --data-dir ", dir_,
                                         "/data --grpc-addr 127.0.0.1:0 ", args, " >", out,
                                         " 2>&1");
    const int status = std::system(cmd.c_str());
    return {WEXITSTATUS(status), ReadFile(out)};
  }

  std::string dir_;
};

TEST_F(MetricsEndpointTest, RejectsAMalformedAddressNamingTheField) {
  for (const char* bad : {"nonsense", "127.0.0.1:notaport", ":9464", "127.0.0.1:70000"}) {
    auto [code, out] = Run(absl::StrCat("--metrics-addr '", bad, "'"));
    EXPECT_EQ(code, 2) << bad << ": " << out;
    EXPECT_THAT(out, HasSubstr("metrics_addr")) << bad;
  }
  auto [code, out] = Run("--metrics-addr 127.0.0.1:0 --check-config");
  EXPECT_EQ(code, 0) << out;
  std::tie(code, out) = Run("--check-config");
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"metrics_addr\": \"127.0.0.1:9464\""));
}

TEST_F(MetricsEndpointTest, ATakenPortFailsStartUpLoudly) {
  const std::string other_dir = MakeTempDir();
  auto first = ServerProcess::Start(other_dir, "", {});
  ASSERT_TRUE(first.ok()) << first.status();
  auto [code, out] = Run(absl::StrCat("--metrics-addr 127.0.0.1:", (*first)->metrics_port()));
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("\"event\":\"metrics_listen_failed\""));
  EXPECT_THAT(out, Not(HasSubstr("server_started")));
  first->reset();
  RemoveTree(other_dir);
}

TEST_F(MetricsEndpointTest, OffMeansNoListenerAndTheServerStillServes) {
  auto server = ServerProcess::Start(dir_, kFastPolicyConfig, {"--metrics-addr", "off"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->metrics_port(), 0);
  v1::ReportFailureResponse resp;
  EXPECT_TRUE(Report(*(*server)->RetryStub(), FirstFailure("billing", "m-1"), &resp).ok());
}

TEST_F(MetricsEndpointTest, ScrapeAfterTrafficHasRpcSeriesAndNoPerMessageValues) {
  auto server = ServerProcess::Start(dir_, kFastPolicyConfig);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry, FirstFailure("billing", "msg-unique-1234"), &resp).ok());
  v1::ReportFailureRequest bad = FirstFailure("billing", "");
  EXPECT_FALSE(Report(*retry, bad, &resp).ok());
  const v1::LeaseResponse leased = LeaseUntil(*retry, "billing", 1, absl::Seconds(10));
  ASSERT_EQ(leased.envelopes_size(), 1);

  absl::StatusOr<std::string> body = HttpGet((*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("retryd_build_info{version=\"0.1.0\"} 1"));
  EXPECT_THAT(*body, HasSubstr("grpc_code=\"OK\",grpc_method=\"ReportFailure\",grpc_service=\"retryd.v1.RetryService\""));
  EXPECT_THAT(*body, HasSubstr("grpc_code=\"InvalidArgument\",grpc_method=\"ReportFailure\""));
  EXPECT_THAT(*body, HasSubstr("grpc_code=\"OK\",grpc_method=\"Lease\""));
  EXPECT_THAT(*body, HasSubstr("retryd_leased_envelopes{service=\"billing\"} 1"));
  EXPECT_THAT(*body, HasSubstr("retryd_dispatch_lateness_seconds_count{service=\"billing\"} 1"));
  // No message id, trace id or lease token is a label value.
  EXPECT_THAT(*body, Not(HasSubstr("msg-unique-1234")));
  EXPECT_THAT(*body, Not(HasSubstr(leased.envelopes(0).lease_token())));
  EXPECT_THAT(*body, Not(HasSubstr("trace-")));
  // Anything but /metrics is not served.
  EXPECT_FALSE(HttpGet((*server)->metrics_port(), "/").ok());
}

// Base units everywhere: the page holds retryd's families only, not prometheus-cpp's exposer_*
// (exposer_request_latencies is a summary in microseconds). Every family is retryd_*, and every
// duration family says seconds.
TEST_F(MetricsEndpointTest, ThePageHoldsRetrydFamiliesOnlyInBaseUnits) {
  auto server = ServerProcess::Start(dir_, kFastPolicyConfig);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);
  // Two scrapes: the Exposer's own families would hold the first one's latency by the second.
  ASSERT_TRUE(HttpGet((*server)->metrics_port(), "/metrics").ok());
  absl::StatusOr<std::string> body = HttpGet((*server)->metrics_port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, Not(HasSubstr("exposer_")));
  EXPECT_THAT(*body, Not(HasSubstr("microseconds")));
  for (absl::string_view line : absl::StrSplit(*body, '\n')) {
    if (!absl::StartsWith(line, "# TYPE ")) continue;
    const std::string family(line.substr(7, line.find(' ', 7) - 7));
    EXPECT_TRUE(absl::StartsWith(family, "retryd_")) << family;
  }
}

}  // namespace
}  // namespace retryd::testing
