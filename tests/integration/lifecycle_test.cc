// The server process's life: restart keeps everything, leases expired while it was down are
// expired at start-up, SIGTERM drains and exits 0, health and reflection are served, and the
// config file is parsed strictly.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir(); }
  void TearDown() override { RemoveTree(dir_); }
  std::string dir_;
};

TEST_F(LifecycleTest, RestartKeepsScheduledLeasedAndDeadEnvelopes) {
  auto server = ServerProcess::Start(dir_, R"json({"policies": [{"name": "default",
      "backoff": {"initial": "0.1s", "jitter": "NONE"}}]})json");
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(Report(*retry, FirstFailure("keep", "s-" + std::to_string(i)), &resp).ok());
  }
  v1::ReportFailureRequest permanent = FirstFailure("keep", "dead-1");
  permanent.mutable_failure()->set_http_status(422);
  ASSERT_TRUE(Report(*retry, permanent, &resp).ok());
  v1::LeaseResponse leased = LeaseUntil(*retry, "keep", 1, absl::Seconds(5), absl::Minutes(10));
  ASSERT_EQ(leased.envelopes_size(), 1);

  auto before = ServiceSummaryOf(*(*server)->AdminStub(), "keep");
  EXPECT_EQ(before.scheduled(), 3);
  EXPECT_EQ(before.leased(), 1);
  EXPECT_EQ(before.dead(), 1);

  absl::StatusOr<int> code = (*server)->Terminate(absl::Seconds(25));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->log();

  auto admin = (*server)->AdminStub();
  auto after = ServiceSummaryOf(*admin, "keep");
  EXPECT_EQ(after.scheduled(), 3);
  EXPECT_EQ(after.leased(), 1);
  EXPECT_EQ(after.dead(), 1);
  v1::Envelope e;
  ASSERT_TRUE(GetEnvelope(*admin, "keep", "dead-1", &e).ok());
  EXPECT_EQ(e.state(), v1::DEAD_LETTERED);
  EXPECT_EQ(e.dead_letter_reason(), v1::NON_RETRYABLE);
  // The lease taken before the restart is still valid.
  retry = (*server)->RetryStub();
  EXPECT_TRUE(Succeed(*retry, leased.envelopes(0)).ok());
  // The rebuilt schedule hands out the other three.
  EXPECT_EQ(LeaseUntil(*retry, "keep", 3, absl::Seconds(5)).envelopes_size(), 3);
}

TEST_F(LifecycleTest, LeaseThatExpiredWhileDownIsExpiredAtStartup) {
  auto server = ServerProcess::Start(dir_, kFastPolicyConfig);
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry, FirstFailure("down", "l-1"), &resp).ok());
  v1::LeaseResponse leased = LeaseUntil(*retry, "down", 1, absl::Seconds(5), absl::Seconds(1));
  ASSERT_EQ(leased.envelopes_size(), 1);
  (*server)->Kill();
  absl::SleepFor(absl::Milliseconds(1500));
  ASSERT_TRUE((*server)->Restart().ok());
  v1::Envelope e;
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  do {
    ASSERT_TRUE(GetEnvelope(*(*server)->AdminStub(), "down", "l-1", &e).ok());
  } while (e.state() == v1::LEASED && absl::Now() < deadline);
  EXPECT_NE(e.state(), v1::LEASED);
  EXPECT_EQ(e.attempt(), 2);
  ASSERT_EQ(e.history_size(), 2);
  EXPECT_EQ(e.history(1).error_code(), "LEASE_EXPIRED");
}

TEST_F(LifecycleTest, SigtermAnswersParkedLongPollsAndExitsZero) {
  auto server = ServerProcess::Start(dir_);
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  grpc::Status poll_status;
  absl::Time poll_answered;
  std::thread poller([&] {
    v1::LeaseResponse resp;
    poll_status = LeaseSome(*retry, "idle", 1, absl::Seconds(15), &resp);
    poll_answered = absl::Now();
    // Hang up, as a worker told to stop does: an idle connection that stays open holds gRPC's
    // drain until its backup poll (~5 s), which the 5 s bound below is not about.
    retry.reset();
  });
  absl::SleepFor(absl::Milliseconds(300));  // Let the poll park.
  const absl::Time sent = absl::Now();
  absl::StatusOr<int> code = (*server)->Terminate(absl::Seconds(10));
  poller.join();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_LT(absl::Now() - sent, absl::Seconds(5));
  EXPECT_TRUE(poll_status.ok()) << poll_status.error_message();
  EXPECT_LT(poll_answered - sent, absl::Seconds(3));
  EXPECT_THAT((*server)->log(), HasSubstr("\"event\":\"server_stopped\""));
}

TEST_F(LifecycleTest, ServesHealthAndReflection) {
  auto server = ServerProcess::Start(dir_);
  ASSERT_TRUE(server.ok()) << server.status();
  for (const std::string service : {"", "retryd.v1.RetryService", "retryd.v1.AdminService"}) {
    std::string request;  // HealthCheckRequest{service}: field 1, length-delimited.
    if (!service.empty()) request = std::string("\x0a", 1) + char(service.size()) + service;
    std::string response;
    grpc::Status s = RawUnaryCall((*server)->address(), "/grpc.health.v1.Health/Check", request,
                             &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(response, std::string("\x08\x01", 2)) << "status SERVING for '" << service << "'";
  }
  // Reflection: a bidi stream; send list_services (field 7) and read the answer.
  auto channel = grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::CompletionQueue cq;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::Slice slice(std::string("\x3a\x00", 2));
  grpc::ByteBuffer req(&slice, 1);
  call->Write(req, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer resp;
  call->Read(&resp, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_THAT(bytes, HasSubstr("retryd.v1.RetryService"));
  EXPECT_THAT(bytes, HasSubstr("retryd.v1.AdminService"));
  ctx.TryCancel();
  call->Finish(nullptr, reinterpret_cast<void*>(4));
  grpc::Status finish;
  call->Finish(&finish, reinterpret_cast<void*>(5));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(LifecycleTest, ConfigIsParsedStrictlyAndFlagsOverrideIt) {
  WriteFile(dir_ + "/typo.json", R"json({"policies": [{"name": "default", "maxAttempt": 3}]})json");
  auto [code, out] = RunRetryd(dir_, {"--config", dir_ + "/typo.json", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("maxAttempt"));

  WriteFile(dir_ + "/range.json",
            R"json({"policies": [{"name": "default", "backoff": {"initial": "0s"}}]})json");
  std::tie(code, out) = RunRetryd(dir_, {"--config", dir_ + "/range.json", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("policies[0].backoff.initial"));

  WriteFile(dir_ + "/ok.json", R"json({"grpcAddr": "127.0.0.1:6000", "dataDir": "/tmp/x",
      "policies": [{"name": "billing.*", "maxAttempts": 7}]})json");
  std::tie(code, out) = RunRetryd(
      dir_, {"--config", dir_ + "/ok.json", "--grpc-addr", "127.0.0.1:7000", "--check-config"});
  EXPECT_EQ(code, 0) << out;
  EXPECT_THAT(out, HasSubstr("\"grpc_addr\": \"127.0.0.1:7000\""));
  EXPECT_THAT(out, HasSubstr("\"data_dir\": \"/tmp/x\""));
  EXPECT_THAT(out, HasSubstr("billing.*"));

  std::tie(code, out) = RunRetryd(dir_, {"--grpc-addr", "0.0.0.0:7000", "--check-config"});
  EXPECT_EQ(code, 2);
  EXPECT_THAT(out, HasSubstr("--insecure-allow-remote"));
  std::tie(code, out) = RunRetryd(
      dir_, {"--grpc-addr", "0.0.0.0:7000", "--insecure-allow-remote", "--check-config"});
  EXPECT_EQ(code, 0) << out;

  std::tie(code, out) = RunRetryd(dir_, {"--no-such-flag"});
  EXPECT_EQ(code, 2);
}

TEST_F(LifecycleTest, PoliciesResolveByExactNameThenPrefixThenDefault) {
  auto server = ServerProcess::Start(dir_, R"json({"policies": [
      {"name": "default", "maxAttempts": 4},
      {"name": "billing.*", "maxAttempts": 6},
      {"name": "billing.refunds", "maxAttempts": 2}]})json");
  ASSERT_TRUE(server.ok()) << server.status();
  auto retry = (*server)->RetryStub();
  auto admin = (*server)->AdminStub();
  const std::pair<std::string, int> cases[] = {
      {"billing.refunds", 2}, {"billing.invoices", 6}, {"billing", 4}, {"shipping", 4}};
  for (const auto& [service, max_attempts] : cases) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry, FirstFailure(service, "p-1"), &resp).ok());
    v1::Envelope e;
    ASSERT_TRUE(GetEnvelope(*admin, service, "p-1", &e).ok());
    EXPECT_EQ(e.max_attempts(), max_attempts) << service;
  }
  EXPECT_EQ(ServiceSummaryOf(*admin, "billing.invoices").policy_name(), "billing.*");
  EXPECT_EQ(ServiceSummaryOf(*admin, "shipping").policy_name(), "default");
}

}  // namespace
}  // namespace retryd::testing
