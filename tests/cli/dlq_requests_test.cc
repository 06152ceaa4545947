// What retryctl sends for the dead-letter operations, seen by a recording AdminService in the
// test process: the filter flags in every request, the counting dry run before a confirmed
// mutation, one request id across a retried call, the replay options, and how --watch follows
// a replay to FAILED (exit 5). The real server's behaviour is tested end to end in
// tests/integration/retryctl_dlq_test.cc; this checks the client's side of the contract, which
// a real server cannot observe (e.g. that a retry reuses the request id).
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "client/cli/app.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "retryd/v1/admin_service.grpc.pb.h"

namespace retryd::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Records every request; answers replays that advance `step` per GetReplay up to `matched`, then
// end in `final_state`; purges count `matched`. The first `unavailable` mutating calls fail.
class RecordingAdmin final : public v1::AdminService::CallbackService {
 public:
  int64_t matched = 0;
  int64_t step = 1;
  v1::ReplayState final_state = v1::REPLAY_SUCCEEDED;
  int unavailable = 0;
  // GetReplay calls that fail UNAVAILABLE before it answers again (a restarting server).
  int get_unavailable = 0;

  std::vector<v1::StartReplayRequest> starts() {
    absl::MutexLock lock(&mu_);
    return starts_;
  }
  std::vector<v1::PurgeDeadLettersRequest> purges() {
    absl::MutexLock lock(&mu_);
    return purges_;
  }
  std::vector<v1::Filter> list_filters() {
    absl::MutexLock lock(&mu_);
    return list_filters_;
  }
  int get_replays() {
    absl::MutexLock lock(&mu_);
    return get_replays_;
  }

  grpc::ServerUnaryReactor* StartReplay(grpc::CallbackServerContext* ctx,
                                        const v1::StartReplayRequest* req,
                                        v1::Replay* resp) override {
    absl::MutexLock lock(&mu_);
    starts_.push_back(*req);
    if (unavailable > 0) {
      --unavailable;
      return Finish(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "try again"));
    }
    replay_.Clear();
    replay_.set_name(req->dry_run() ? "replays/1" : "replays/2");
    *replay_.mutable_filter() = req->filter();
    replay_.set_dry_run(req->dry_run());
    replay_.set_limit(req->limit());
    replay_.set_matched(matched);
    replay_.set_request_id(req->request_id());
    replay_.set_state(req->dry_run() ? v1::REPLAY_SUCCEEDED : v1::REPLAY_PENDING);
    *resp = replay_;
    return Finish(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* GetReplay(grpc::CallbackServerContext* ctx,
                                      const v1::GetReplayRequest* req,
                                      v1::Replay* resp) override {
    absl::MutexLock lock(&mu_);
    ++get_replays_;
    if (get_unavailable > 0) {
      --get_unavailable;
      return Finish(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting"));
    }
    if (req->name() != replay_.name()) {
      return Finish(ctx, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such replay"));
    }
    replay_.set_state(v1::REPLAY_RUNNING);
    replay_.set_replayed(std::min(replay_.matched(), replay_.replayed() + step));
    if (replay_.replayed() == replay_.matched()) {
      replay_.set_state(final_state);
      if (final_state == v1::REPLAY_FAILED) replay_.set_error("canary: 1 of 1 dead-lettered again");
    }
    *resp = replay_;
    return Finish(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* PurgeDeadLetters(grpc::CallbackServerContext* ctx,
                                             const v1::PurgeDeadLettersRequest* req,
                                             v1::PurgeDeadLettersResponse* resp) override {
    absl::MutexLock lock(&mu_);
    purges_.push_back(*req);
    if (unavailable > 0) {
      --unavailable;
      return Finish(ctx, grpc::Status(grpc::StatusCode::UNAVAILABLE, "try again"));
    }
    resp->set_count(matched);
    return Finish(ctx, grpc::Status::OK);
  }

  grpc::ServerUnaryReactor* ListDeadLetters(grpc::CallbackServerContext* ctx,
                                            const v1::ListDeadLettersRequest* req,
                                            v1::ListDeadLettersResponse*) override {
    return Record(ctx, req->filter());
  }
  grpc::ServerUnaryReactor* ListRetries(grpc::CallbackServerContext* ctx,
                                        const v1::ListRetriesRequest* req,
                                        v1::ListRetriesResponse*) override {
    return Record(ctx, req->filter());
  }
  grpc::ServerUnaryReactor* ListFailureGroups(grpc::CallbackServerContext* ctx,
                                              const v1::ListFailureGroupsRequest* req,
                                              v1::ListFailureGroupsResponse*) override {
    return Record(ctx, req->filter());
  }

 private:
  static grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* ctx,
                                          const grpc::Status& status) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(status);
    return reactor;
  }
  grpc::ServerUnaryReactor* Record(grpc::CallbackServerContext* ctx, const v1::Filter& filter) {
    absl::MutexLock lock(&mu_);
    list_filters_.push_back(filter);
    return Finish(ctx, grpc::Status::OK);
  }

  absl::Mutex mu_;
  std::vector<v1::StartReplayRequest> starts_;
  std::vector<v1::PurgeDeadLettersRequest> purges_;
  std::vector<v1::Filter> list_filters_;
  int get_replays_ = 0;
  v1::Replay replay_;
};

struct Result {
  int code = -1;
  std::string out;
  std::string err;
};

class DlqRequestsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  Result Run(std::vector<std::string> args, const std::string& answer = "",
             bool terminal = false) {
    args.insert(args.begin(),
                {"retryctl", "--server", "127.0.0.1:" + std::to_string(port_), "--timeout", "5s"});
    std::istringstream in(answer);
    std::ostringstream out;
    std::ostringstream err;
    TerminalInfo info;
    info.stdin_is_terminal = terminal;
    Result r;
    r.code = RunRetryctl(args, in, out, err, info);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  RecordingAdmin admin_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(DlqRequestsTest, EveryFilterFlagReachesTheRequest) {
  const std::vector<std::string> flags = {
      "--service", "billing", "--error-code", "A", "--error-code", "B", "--class", "transient",
      "--class", "RECOVERABLE", "--reason", "non_retryable", "--schema-version", "v1",
      "--message-id", "m 1", "--fingerprint", "fp", "--after", "2025-01-02T03:04:05Z",
      "--before", "2025-01-02T04:04:05.5+01:00"};
  v1::Filter expected;
  expected.set_service("billing");
  expected.add_error_codes("A");
  expected.add_error_codes("B");
  expected.add_error_classes(v1::TRANSIENT);
  expected.add_error_classes(v1::RECOVERABLE);
  expected.add_reasons(v1::NON_RETRYABLE);
  expected.add_schema_versions("v1");
  expected.add_message_ids("m 1");
  expected.add_fingerprints("fp");
  expected.mutable_after()->set_seconds(1735787045);
  expected.mutable_before()->set_seconds(1735787045);
  expected.mutable_before()->set_nanos(500000000);
  for (const char* command : {"list", "groups"}) {
    std::vector<std::string> args = {"dlq", command};
    args.insert(args.end(), flags.begin(), flags.end());
    const Result r = Run(args);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  // Retries have no reason and no fingerprint: those flags are dead-letter only.
  std::vector<std::string> args = {"retries", "list"};
  for (size_t i = 0; i < flags.size(); i += 2) {
    if (flags[i] == "--reason" || flags[i] == "--fingerprint") continue;
    args.push_back(flags[i]);
    args.push_back(flags[i + 1]);
  }
  const Result r = Run(args);
  EXPECT_EQ(r.code, 0) << r.err;
  const std::vector<v1::Filter> seen = admin_.list_filters();
  ASSERT_EQ(seen.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(seen[i], expected))
        << seen[i].DebugString();
  }
  v1::Filter retries_expected = expected;
  retries_expected.clear_reasons();
  retries_expected.clear_fingerprints();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(seen[2], retries_expected))
      << seen[2].DebugString();
  EXPECT_EQ(Run({"retries", "list", "--fingerprint", "fp"}).code, 2);
}

TEST_F(DlqRequestsTest, ReplayCountsWithADryRunThenStartsWithTheSameRequestId) {
  admin_.matched = 3;
  const Result r = Run({"-o", "json", "dlq", "replay", "--error-code", "X", "--max-per-second",
                        "12.5", "--limit", "500", "--canary", "2", "--note", "why",
                        "--request-id", "op-7"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<v1::StartReplayRequest> starts = admin_.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_TRUE(starts[0].dry_run());
  EXPECT_EQ(starts[0].request_id(), "op-7-dry-run");
  EXPECT_FALSE(starts[1].dry_run());
  EXPECT_EQ(starts[1].request_id(), "op-7");
  for (const v1::StartReplayRequest& s : starts) {
    EXPECT_THAT(s.filter().error_codes(), ::testing::ElementsAre("X"));
    EXPECT_DOUBLE_EQ(s.max_per_second(), 12.5);
    EXPECT_EQ(s.limit(), 500);
    EXPECT_EQ(s.canary_count(), 2);
    EXPECT_EQ(s.note(), "why");
    ASSERT_TRUE(s.has_reset_attempts());
    EXPECT_TRUE(s.reset_attempts());
  }
  EXPECT_THAT(r.out, HasSubstr("\"name\": \"replays/2\""));
  EXPECT_THAT(r.err, HasSubstr("retryctl replay status replays/2 --watch"));
}

TEST_F(DlqRequestsTest, ADryRunNeverUsesTheRealRequestId) {
  admin_.matched = 3;
  const Result r = Run({"dlq", "replay", "--dry-run", "--request-id", "op-8"});
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(admin_.starts().size(), 1u);
  EXPECT_TRUE(admin_.starts()[0].dry_run());
  EXPECT_EQ(admin_.starts()[0].request_id(), "op-8-dry-run");
}

TEST_F(DlqRequestsTest, ReplayWithYesOrASmallLimitSkipsTheDryRun) {
  admin_.matched = 1000;
  Result r = Run({"dlq", "replay", "--yes", "--no-reset-attempts"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run({"dlq", "replay", "--limit", "100"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<v1::StartReplayRequest> starts = admin_.starts();
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_FALSE(starts[0].dry_run());
  EXPECT_FALSE(starts[0].reset_attempts());
  EXPECT_THAT(starts[0].request_id(), StartsWith("retryctl-"));
  EXPECT_FALSE(starts[1].dry_run());
  EXPECT_NE(starts[0].request_id(), starts[1].request_id());
}

TEST_F(DlqRequestsTest, ReplayAboveTheThresholdWithoutATerminalOnlyCounts) {
  admin_.matched = 101;
  Result r = Run({"dlq", "replay", "--service", "s"});
  EXPECT_EQ(r.code, 2);
  ASSERT_EQ(admin_.starts().size(), 1u);
  EXPECT_TRUE(admin_.starts()[0].dry_run());
  // Declined on a terminal: still only the dry run.
  r = Run({"dlq", "replay", "--service", "s"}, "n\n", /*terminal=*/true);
  EXPECT_EQ(r.code, 3);
  ASSERT_EQ(admin_.starts().size(), 2u);
  EXPECT_TRUE(admin_.starts()[1].dry_run());
  // A limit above the threshold is what is counted.
  admin_.matched = 100000;
  r = Run({"dlq", "replay", "--service", "s", "--limit", "150"}, "n\n", /*terminal=*/true);
  EXPECT_EQ(r.code, 3);
  EXPECT_THAT(r.err, HasSubstr("Replay 150 dead letters matching service=s? [y/N] "));
}

TEST_F(DlqRequestsTest, AnUnavailableStartIsRetriedWithTheSameRequestId) {
  admin_.matched = 5;
  admin_.unavailable = 2;
  const Result r = Run({"dlq", "replay", "--yes"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<v1::StartReplayRequest> starts = admin_.starts();
  ASSERT_EQ(starts.size(), 3u);
  EXPECT_EQ(starts[0].request_id(), starts[1].request_id());
  EXPECT_EQ(starts[1].request_id(), starts[2].request_id());
}

TEST_F(DlqRequestsTest, WatchPrintsLinesAndExitsFiveWhenTheReplayFails) {
  admin_.matched = 3;
  admin_.final_state = v1::REPLAY_FAILED;
  const Result r = Run({"dlq", "replay", "--yes", "--watch", "--interval", "10ms"});
  EXPECT_EQ(r.code, 5) << r.err;
  EXPECT_EQ(admin_.get_replays(), 3);
  EXPECT_THAT(r.err,
              AllOf(HasSubstr("replays/2 PENDING 0/3 handled (replayed 0, skipped 0, failed 0)\n"
                              "replays/2 RUNNING 1/3 handled (replayed 1, skipped 0, failed 0)\n"
                              "replays/2 RUNNING 2/3 handled (replayed 2, skipped 0, failed 0)\n"
                              "replays/2 FAILED 3/3 handled (replayed 3, skipped 0, failed 0) "
                              "error: canary: 1 of 1 dead-lettered again\n"),
                    HasSubstr("Error: replays/2 FAILED: canary: 1 of 1 dead-lettered again\n")));
  EXPECT_THAT(r.out, HasSubstr("State:                     FAILED"));
}

TEST_F(DlqRequestsTest, WatchKeepsPollingThroughAnUnavailableServer) {
  admin_.matched = 2;
  admin_.get_unavailable = 3;
  const Result r = Run({"dlq", "replay", "--yes", "--watch", "--interval", "10ms"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(admin_.get_replays(), 3 + 2);
  EXPECT_THAT(r.err, HasSubstr("replays/2 SUCCEEDED 2/2 handled"));
}

TEST_F(DlqRequestsTest, WatchingASucceededReplayExitsZero) {
  admin_.matched = 2;
  admin_.step = 5;
  Result r = Run({"-o", "json", "dlq", "replay", "--yes", "--watch", "--interval", "10ms"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, AllOf(StartsWith("{"), HasSubstr("\"state\": \"REPLAY_SUCCEEDED\"")));
  r = Run({"replay", "status", "2", "--watch", "--interval", "10ms"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Run({"replay", "status", "replays/99"});
  EXPECT_EQ(r.code, 69) << r.err;
}

TEST_F(DlqRequestsTest, PurgeRequests) {
  admin_.matched = 7;
  Result r = Run({"dlq", "purge", "--reason", "NON_RETRYABLE", "--note", "n", "--request-id",
                  "p-1"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run({"dlq", "purge", "--all-services", "--yes"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Run({"dlq", "purge", "--service", "s", "--dry-run", "--request-id", "p-2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("Dry run: 7 dead letters would be purged (service=s)"));
  const std::vector<v1::PurgeDeadLettersRequest> purges = admin_.purges();
  ASSERT_EQ(purges.size(), 4u);
  // Counted first, then purged, the same filter and note.
  EXPECT_TRUE(purges[0].dry_run());
  EXPECT_EQ(purges[0].request_id(), "p-1-dry-run");
  EXPECT_FALSE(purges[1].dry_run());
  EXPECT_EQ(purges[1].request_id(), "p-1");
  for (int i : {0, 1}) {
    EXPECT_THAT(purges[i].filter().reasons(), ::testing::ElementsAre(v1::NON_RETRYABLE));
    EXPECT_EQ(purges[i].note(), "n");
    EXPECT_FALSE(purges[i].all());
  }
  // --all-services: an empty filter with all = true, and --yes needs no count.
  EXPECT_FALSE(purges[2].dry_run());
  EXPECT_TRUE(purges[2].all());
  EXPECT_EQ(purges[2].filter().ByteSizeLong(), 0u);
  EXPECT_TRUE(purges[3].dry_run());
  EXPECT_EQ(purges[3].filter().service(), "s");
  // A dry run never carries the real call's id (the server would answer the real call from it).
  EXPECT_EQ(purges[3].request_id(), "p-2-dry-run");
}

TEST_F(DlqRequestsTest, AnUnavailablePurgeIsRetriedWithTheSameRequestId) {
  admin_.matched = 1;
  admin_.unavailable = 1;
  const Result r = Run({"dlq", "purge", "--service", "s", "--yes"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::vector<v1::PurgeDeadLettersRequest> purges = admin_.purges();
  ASSERT_EQ(purges.size(), 2u);
  EXPECT_EQ(purges[0].request_id(), purges[1].request_id());
}

}  // namespace
}  // namespace retryd::cli
