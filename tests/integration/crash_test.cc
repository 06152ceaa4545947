// Durability across kill -9: 32 concurrent clients submit first failures; the server is killed
// mid-stream; after a restart every acknowledged envelope is there, and sending it again is a
// duplicate (the keys of recent envelopes live in memory and are read back from their rows).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_stores.h"

namespace retryd::testing {
namespace {

class CrashTest : public ::testing::TestWithParam<StoreKind> {};

INSTANTIATE_TEST_SUITE_P(Stores, CrashTest, AllStoreKinds(), StoreKindName);

TEST_P(CrashTest, EveryAcknowledgedEnvelopeSurvivesKill9) {
  RETRYD_SKIP_IF_NO_POSTGRES(GetParam());
  const std::string dir = MakeTempDir();
  std::vector<std::string> store_args;
  if (GetParam() == StoreKind::kPostgres) {
    absl::StatusOr<StoreLocation> where = NewStoreLocation(GetParam());
    ASSERT_TRUE(where.ok()) << where.status();
    store_args = StoreFlags(*where);
  }
  auto server = ServerProcess::Start(dir, "", store_args);
  ASSERT_TRUE(server.ok()) << server.status();

  constexpr int kClients = 32;
  std::vector<std::vector<std::string>> acked(kClients);
  std::atomic<int64_t> total_acked{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  const std::string address = (*server)->address();
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::RetryService::NewStub(
          grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
      for (int n = 0; !stop; ++n) {
        const std::string id = "c" + std::to_string(c) + "-" + std::to_string(n);
        v1::ReportFailureResponse resp;
        grpc::Status s = stub->ReportFailure(Context(absl::Seconds(5)).get(),
                                             FirstFailure("crash", id), &resp);
        if (!s.ok()) return;  // The server is gone.
        acked[c].push_back(id);
        ++total_acked;
      }
    });
  }
  // Let a few thousand land, then kill mid-stream.
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (total_acked < 2000 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  (*server)->Kill();
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GT(total_acked.load(), 0);

  ASSERT_TRUE((*server)->Restart().ok()) << (*server)->log();
  auto admin = (*server)->AdminStub();
  int64_t found = 0;
  int64_t missing = 0;
  for (const auto& ids : acked) {
    for (const std::string& id : ids) {
      v1::Envelope e;
      grpc::Status s = GetEnvelope(*admin, "crash", id, &e);
      if (s.ok() && e.state() == v1::SCHEDULED && e.attempt() == 1) {
        ++found;
      } else {
        ++missing;
        ADD_FAILURE() << "acknowledged envelope " << id << " lost: " << s.error_message();
      }
    }
  }
  const int64_t stored = ServiceSummaryOf(*admin, "crash").scheduled();
  std::printf("crash test: clients=%d acknowledged=%lld found_after_restart=%lld missing=%lld "
              "stored=%lld (stored - acknowledged = committed but unanswered at the kill)\n",
              kClients, static_cast<long long>(total_acked.load()),
              static_cast<long long>(found), static_cast<long long>(missing),
              static_cast<long long>(stored));
  EXPECT_EQ(missing, 0);
  EXPECT_GE(stored, total_acked.load());
  // Whatever was committed but unanswered is at most one batch per client.
  EXPECT_LE(stored, total_acked.load() + kClients);

  auto stub = v1::RetryService::NewStub(
      grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
  int64_t not_duplicate = 0;
  for (const auto& ids : acked) {
    for (const std::string& id : ids) {
      v1::ReportFailureResponse resp;
      grpc::Status s =
          stub->ReportFailure(Context(absl::Seconds(5)).get(), FirstFailure("crash", id), &resp);
      if (!s.ok() || !resp.decision().duplicate()) {
        ++not_duplicate;
        ADD_FAILURE() << "re-sent " << id << " after restart: " << s.error_message()
                      << " duplicate=" << resp.decision().duplicate();
      }
    }
  }
  EXPECT_EQ(not_duplicate, 0);
  EXPECT_EQ(ServiceSummaryOf(*admin, "crash").scheduled(), stored);
  server->reset();
  RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
