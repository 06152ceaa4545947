// Replays on the real retryd binary: pacing within ±10 % of max_per_second over 10 s (capped by
// policy), cancel, canary stop and pass, kill -9 mid-replay resumes without replaying anything
// twice, dry runs change nothing, blocked schema versions are skipped and counted, limits,
// request_id idempotency, bad inputs.
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"
#include "tests/testing/server_test.h"

namespace retryd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kReplayConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}},
    {"name": "paced", "replay": {"maxPerSecond": 20}},
    {"name": "schemas", "replay": {"blockedSchemaVersions": ["v0"]}},
    {"name": "deadline", "maxRetryDuration": "600s",
     "backoff": {"initial": "0.2s", "multiplier": 1, "max": "1s", "jitter": "NONE"}}
  ]
})json";

class ReplayTest : public StoreServerTest {
 protected:
  void SetUp() override { StartServer(kReplayConfig); }

  // `n` PERMANENT dead letters of `service`, reported from 4 threads.
  void DeadLetters(const std::string& service, int n, const std::string& schema = "v1",
                   const std::string& prefix = "m-") {
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        auto stub = server_->RetryStub();
        for (int i = t; i < n; i += 4) {
          v1::ReportFailureRequest req = FirstFailure(service, absl::StrCat(prefix, i), "BAD");
          req.mutable_envelope()->set_schema_version(schema);
          req.mutable_failure()->set_error_class(v1::PERMANENT);
          v1::ReportFailureResponse resp;
          EXPECT_TRUE(Report(*stub, req, &resp).ok());
        }
      });
    }
    for (auto& t : threads) t.join();
  }

  int CountDead(const std::string& service) {
    int n = 0;
    v1::ListDeadLettersRequest req;
    req.mutable_filter()->set_service(service);
    req.set_page_size(1000);
    while (true) {
      v1::ListDeadLettersResponse resp;
      EXPECT_TRUE(admin_->ListDeadLetters(Context().get(), req, &resp).ok());
      n += resp.dead_letters_size();
      if (resp.next_page_token().empty()) return n;
      req.set_page_token(resp.next_page_token());
    }
  }

  std::vector<v1::Envelope> Retries(const std::string& service) {
    v1::ListRetriesRequest req;
    req.mutable_filter()->set_service(service);
    req.set_page_size(1000);
    v1::ListRetriesResponse resp;
    EXPECT_TRUE(admin_->ListRetries(Context().get(), req, &resp).ok());
    return {resp.retries().begin(), resp.retries().end()};
  }

  v1::Replay Start(v1::StartReplayRequest req) {
    v1::Replay r;
    grpc::Status s = admin_->StartReplay(Context().get(), req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }

  v1::Replay Get(const std::string& name) {
    v1::GetReplayRequest req;
    req.set_name(name);
    v1::Replay r;
    grpc::Status s = admin_->GetReplay(Context().get(), req, &r);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return r;
  }

  // Polls until the replay reaches `state` (or `timeout`); returns its last view.
  v1::Replay WaitFor(const std::string& name, v1::ReplayState state, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    v1::Replay r = Get(name);
    while (r.state() != state && absl::Now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      r = Get(name);
    }
    return r;
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, ReplayTest, testing::AllStoreKinds(), testing::StoreKindName);

TEST_P(ReplayTest, PacedAtThePolicyCapWithinTenPercentThenCancelled) {
  DeadLetters("paced", 400);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("paced");
  req.set_max_per_second(500);  // The policy caps it at 20.
  req.set_note("INC-7 fixed");
  const v1::Replay started = Start(req);
  EXPECT_EQ(started.max_per_second(), 20);
  EXPECT_EQ(started.matched(), 400);
  EXPECT_TRUE(started.reset_attempts());
  ASSERT_THAT(started.name(), HasSubstr("replays/"));

  // Measure between two observations 10 s apart, once it is running.
  v1::Replay r = Get(started.name());
  const absl::Time wait_until = absl::Now() + absl::Seconds(5);
  while (r.replayed() < 5 && absl::Now() < wait_until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    r = Get(started.name());
  }
  const absl::Time t1 = absl::Now();
  const int64_t r1 = r.replayed();
  ASSERT_EQ(r.state(), v1::REPLAY_RUNNING);
  std::this_thread::sleep_until(absl::ToChronoTime(t1 + absl::Seconds(10)));
  const int64_t r2 = Get(started.name()).replayed();
  const double rate = (r2 - r1) / absl::ToDoubleSeconds(absl::Now() - t1);
  EXPECT_NEAR(rate, 20.0, 2.0) << r1 << " -> " << r2;

  v1::CancelReplayRequest cancel;
  cancel.set_name(started.name());
  v1::Replay cancelled;
  ASSERT_TRUE(admin_->CancelReplay(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::REPLAY_CANCELLED);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const v1::Replay after = Get(started.name());
  EXPECT_EQ(after.state(), v1::REPLAY_CANCELLED);
  EXPECT_EQ(after.replayed(), cancelled.replayed()) << "nothing replayed after the cancel";
  EXPECT_EQ(CountDead("paced") + static_cast<int>(Retries("paced").size()), 400);
  EXPECT_EQ(static_cast<int>(Retries("paced").size()), after.replayed());
  // Cancelling again answers the cancelled replay.
  ASSERT_TRUE(admin_->CancelReplay(Context().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.state(), v1::REPLAY_CANCELLED);

  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit).ok());
  ASSERT_EQ(audit.events_size(), 2);
  EXPECT_EQ(audit.events(0).method(), "CancelReplay");
  EXPECT_EQ(audit.events(0).target(), started.name());
  EXPECT_EQ(audit.events(1).method(), "StartReplay");
  EXPECT_EQ(audit.events(1).affected_count(), 400);
  EXPECT_EQ(audit.events(1).note(), "INC-7 fixed");
}

TEST_P(ReplayTest, FailedCanaryStopsTheReplay) {
  DeadLetters("canary", 10);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("canary");
  req.set_canary_count(2);
  const v1::Replay started = Start(req);
  const v1::LeaseResponse leased = LeaseUntil(*retry_, "canary", 2, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 2);
  for (const auto& l : leased.envelopes()) {
    EXPECT_EQ(l.envelope().attempt(), 0) << "reset_attempts defaults to true";
    v1::ReportFailureRequest fail = LeasedFailure(l, "STILL_BAD");
    fail.mutable_failure()->set_error_class(v1::PERMANENT);
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, fail, &resp).ok());
  }
  const v1::Replay r = WaitFor(started.name(), v1::REPLAY_FAILED, absl::Seconds(10));
  EXPECT_EQ(r.state(), v1::REPLAY_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("canary"));
  EXPECT_THAT(r.error(), HasSubstr("STILL_BAD"));
  EXPECT_EQ(r.replayed(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(CountDead("canary"), 10);
  EXPECT_TRUE(Retries("canary").empty());
}

TEST_P(ReplayTest, PassedCanaryLetsTheRestThrough) {
  DeadLetters("canary-ok", 6);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("canary-ok");
  req.set_canary_count(2);
  req.set_reset_attempts(false);
  const v1::Replay started = Start(req);
  const v1::LeaseResponse leased = LeaseUntil(*retry_, "canary-ok", 2, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(Get(started.name()).replayed(), 2) << "the rest waits for the canaries";
  for (const auto& l : leased.envelopes()) {
    EXPECT_EQ(l.envelope().attempt(), 1) << "reset_attempts = false keeps the count";
    ASSERT_TRUE(Succeed(*retry_, l).ok());
  }
  const v1::Replay r = WaitFor(started.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10));
  EXPECT_EQ(r.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(r.replayed(), 6);
  EXPECT_EQ(CountDead("canary-ok"), 0);
}

TEST_P(ReplayTest, LimitBelowTheCanaryCountEndsAfterTheCanaries) {
  DeadLetters("small", 4);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("small");
  req.set_canary_count(3);
  req.set_limit(1);
  const v1::Replay started = Start(req);
  const v1::LeaseResponse leased = LeaseUntil(*retry_, "small", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  ASSERT_TRUE(Succeed(*retry_, leased.envelopes(0)).ok());
  const v1::Replay r = WaitFor(started.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10));
  EXPECT_EQ(r.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(r.replayed(), 1);
  EXPECT_EQ(CountDead("small"), 3);
}

TEST_P(ReplayTest, KillNineMidReplayResumesWithoutReplayingTwice) {
  DeadLetters("restart", 200);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("restart");
  req.set_max_per_second(25);
  const v1::Replay started = Start(req);
  v1::Replay r = Get(started.name());
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (r.replayed() < 40 && absl::Now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r = Get(started.name());
  }
  ASSERT_GE(r.replayed(), 40);
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  ConnectStubs();
  const v1::Replay resumed = Get(started.name());
  EXPECT_GE(resumed.replayed(), r.replayed()) << "acknowledged progress survived";
  EXPECT_LT(resumed.replayed(), 200);
  EXPECT_EQ(resumed.state(), v1::REPLAY_RUNNING);
  const v1::Replay done = WaitFor(started.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(30));
  EXPECT_EQ(done.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(done.replayed(), 200);
  EXPECT_EQ(done.matched(), 200);
  // Every dead letter was re-scheduled exactly once: each is scheduled, none is left dead, and
  // none was touched twice (a second replay would have been counted above 200).
  EXPECT_EQ(CountDead("restart"), 0);
  const std::vector<v1::Envelope> retries = Retries("restart");
  EXPECT_EQ(retries.size(), 200u);
  for (const auto& e : retries) EXPECT_EQ(e.attempt(), 0);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "restart").dead(), 0);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "restart").scheduled(), 200);
}

TEST_P(ReplayTest, DryRunCountsAndSamplesAndChangesNothing) {
  DeadLetters("dry", 5);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("dry");
  req.set_dry_run(true);
  const v1::Replay r = Start(req);
  EXPECT_EQ(r.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_TRUE(r.dry_run());
  EXPECT_EQ(r.matched(), 5);
  EXPECT_EQ(r.sample_size(), 5);
  EXPECT_EQ(r.replayed(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(CountDead("dry"), 5);
  EXPECT_TRUE(Retries("dry").empty());
  EXPECT_EQ(Get(r.name()).sample_size(), 5);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "dry").dead(), 5);
}

TEST_P(ReplayTest, BlockedSchemaVersionsAreSkippedAndCounted) {
  DeadLetters("schemas", 4, "v0", "old-");
  DeadLetters("schemas", 3, "v1", "new-");
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("schemas");
  const v1::Replay r =
      WaitFor(Start(req).name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10));
  EXPECT_EQ(r.state(), v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(r.replayed(), 3);
  EXPECT_EQ(r.skipped_blocked_schema(), 4);
  EXPECT_EQ(CountDead("schemas"), 4);
  for (const auto& e : Retries("schemas")) EXPECT_EQ(e.schema_version(), "v1");
}

TEST_P(ReplayTest, LimitAndRequestIdIdempotency) {
  DeadLetters("idem", 5);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("idem");
  req.set_limit(2);
  req.set_request_id("replay-once");
  // A dry run first (as retryctl does to count), with the same request_id: it does not take the
  // real replay's place, and is itself idempotent.
  v1::StartReplayRequest dry = req;
  dry.set_dry_run(true);
  const v1::Replay counted = Start(dry);
  EXPECT_TRUE(counted.dry_run());
  EXPECT_EQ(Start(dry).name(), counted.name());
  const v1::Replay first = Start(req);
  EXPECT_NE(first.name(), counted.name());
  EXPECT_FALSE(first.dry_run());
  const v1::Replay again = Start(req);
  EXPECT_EQ(again.name(), first.name());
  const v1::Replay r = WaitFor(first.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10));
  EXPECT_EQ(r.replayed(), 2);
  EXPECT_EQ(CountDead("idem"), 3);
  v1::ListReplaysResponse list;
  ASSERT_TRUE(admin_->ListReplays(Context().get(), v1::ListReplaysRequest(), &list).ok());
  ASSERT_EQ(list.replays_size(), 2);
  EXPECT_EQ(list.replays(0).request_id(), "replay-once");
  EXPECT_EQ(list.replays(1).request_id(), "replay-once");
}

// The same request_id with a different request is refused, naming request_id and the fields
// that differ, and starts nothing; the same request again answers the first replay.
TEST_P(ReplayTest, RequestIdReusedForAnotherRequestIsRefused) {
  DeadLetters("reuse", 4);
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("reuse");
  req.set_limit(1);
  req.set_max_per_second(5);
  req.set_note("INC-1");
  req.set_request_id("replay-reused");
  const v1::Replay first = Start(req);
  ASSERT_FALSE(first.name().empty());

  struct Change {
    void (*apply)(v1::StartReplayRequest*);
    const char* field;
  };
  const Change changes[] = {
      {[](v1::StartReplayRequest* r) { r->mutable_filter()->set_service("other"); }, "filter"},
      {[](v1::StartReplayRequest* r) { r->set_limit(2); }, "limit"},
      {[](v1::StartReplayRequest* r) { r->set_max_per_second(6); }, "max_per_second"},
      {[](v1::StartReplayRequest* r) { r->set_canary_count(1); }, "canary_count"},
      {[](v1::StartReplayRequest* r) { r->set_reset_attempts(false); }, "reset_attempts"},
      {[](v1::StartReplayRequest* r) { r->set_note("INC-2"); }, "note"},
  };
  for (const Change& change : changes) {
    v1::StartReplayRequest other = req;
    change.apply(&other);
    v1::Replay r;
    grpc::Status s = admin_->StartReplay(Context().get(), other, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS) << change.field;
    EXPECT_THAT(s.error_message(), HasSubstr("request_id")) << change.field;
    EXPECT_THAT(s.error_message(), HasSubstr(change.field));
    EXPECT_THAT(s.error_message(), HasSubstr(first.name()));
  }
  // reset_attempts unset means true: the same request.
  v1::StartReplayRequest explicit_reset = req;
  explicit_reset.set_reset_attempts(true);
  EXPECT_EQ(Start(explicit_reset).name(), first.name());
  EXPECT_EQ(Start(req).name(), first.name());
  v1::ListReplaysResponse list;
  ASSERT_TRUE(admin_->ListReplays(Context().get(), v1::ListReplaysRequest(), &list).ok());
  EXPECT_EQ(list.replays_size(), 1);
}

// A replay (reset_attempts, the default) starts a new retry life: max_retry_duration counts from
// the replay, so the first failure after it is scheduled, not dead-lettered at once as
// DEADLINE_EXCEEDED; first_seen_at stays as it was, retry_life_started_at tells the new start,
// and both survive a kill -9. Without reset_attempts the old life (and its deadline) goes on.
TEST_P(ReplayTest, ReplayStartsANewRetryLifeForTheDeadline) {
  const absl::Time first_seen = absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now())) -
                                absl::Hours(1);
  for (const char* id : {"life-1", "life-2"}) {
    v1::ReportFailureRequest req = FirstFailure("deadline", id);
    TimeToProto(first_seen, req.mutable_envelope()->mutable_first_seen_at());
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
    ASSERT_EQ(resp.decision().reason(), v1::DEADLINE_EXCEEDED);  // An hour old, 10 min allowed.
  }
  v1::StartReplayRequest req;
  req.mutable_filter()->set_service("deadline");
  req.mutable_filter()->add_message_ids("life-1");
  const absl::Time replayed_after = absl::Now() - absl::Seconds(1);
  const v1::Replay replay = Start(req);
  ASSERT_EQ(WaitFor(replay.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10)).replayed(), 1);

  v1::LeaseResponse leased = LeaseUntil(*retry_, "deadline", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  EXPECT_EQ(leased.envelopes(0).envelope().attempt(), 0);
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, LeasedFailure(leased.envelopes(0)), &resp).ok());
  EXPECT_EQ(resp.decision().kind(), v1::DECISION_SCHEDULED) << resp.decision().DebugString();
  EXPECT_EQ(resp.decision().attempt(), 1);

  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "deadline", "life-1", &stored).ok());
  EXPECT_EQ(ToTime(stored.first_seen_at()), first_seen);
  const absl::Time life = ToTime(stored.retry_life_started_at());
  EXPECT_GE(life, replayed_after);
  EXPECT_LE(life, absl::Now());
  // Never replayed: its retry life started when it was first seen.
  v1::Envelope other;
  ASSERT_TRUE(GetEnvelope(*admin_, "deadline", "life-2", &other).ok());
  EXPECT_EQ(ToTime(other.retry_life_started_at()), first_seen);

  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  ConnectStubs();
  ASSERT_TRUE(GetEnvelope(*admin_, "deadline", "life-1", &stored).ok());
  EXPECT_EQ(ToTime(stored.retry_life_started_at()), life);
  EXPECT_EQ(ToTime(stored.first_seen_at()), first_seen);
  leased = LeaseUntil(*retry_, "deadline", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  ASSERT_TRUE(Report(*retry_, LeasedFailure(leased.envelopes(0)), &resp).ok());
  EXPECT_EQ(resp.decision().kind(), v1::DECISION_SCHEDULED) << resp.decision().DebugString();
  EXPECT_EQ(resp.decision().attempt(), 2);

  // reset_attempts = false: the envelope goes on with its old life, deadline included.
  v1::StartReplayRequest keep;
  keep.mutable_filter()->set_service("deadline");
  keep.mutable_filter()->add_message_ids("life-2");
  keep.set_reset_attempts(false);
  const v1::Replay kept = Start(keep);
  ASSERT_EQ(WaitFor(kept.name(), v1::REPLAY_SUCCEEDED, absl::Seconds(10)).replayed(), 1);
  leased = LeaseUntil(*retry_, "deadline", 2, absl::Seconds(5));
  bool seen = false;
  for (const v1::LeasedEnvelope& item : leased.envelopes()) {
    if (item.envelope().message_id() != "life-2") continue;
    seen = true;
    EXPECT_EQ(item.envelope().attempt(), 1);
    ASSERT_TRUE(Report(*retry_, LeasedFailure(item), &resp).ok());
    EXPECT_EQ(resp.decision().reason(), v1::DEADLINE_EXCEEDED);
  }
  EXPECT_TRUE(seen);
}

TEST_P(ReplayTest, ListReplaysNewestFirstPaginated) {
  DeadLetters("many", 2);
  std::vector<std::string> names;
  for (int i = 0; i < 3; ++i) {
    v1::StartReplayRequest req;
    req.mutable_filter()->set_service("many");
    req.set_dry_run(true);
    names.push_back(Start(req).name());
  }
  v1::ListReplaysRequest req;
  req.set_page_size(2);
  v1::ListReplaysResponse page;
  ASSERT_TRUE(admin_->ListReplays(Context().get(), req, &page).ok());
  ASSERT_EQ(page.replays_size(), 2);
  EXPECT_EQ(page.replays(0).name(), names[2]);
  EXPECT_EQ(page.replays(1).name(), names[1]);
  ASSERT_FALSE(page.next_page_token().empty());
  req.set_page_token(page.next_page_token());
  ASSERT_TRUE(admin_->ListReplays(Context().get(), req, &page).ok());
  ASSERT_EQ(page.replays_size(), 1);
  EXPECT_EQ(page.replays(0).name(), names[0]);
  EXPECT_TRUE(page.next_page_token().empty());
}

TEST_P(ReplayTest, BadInputsAreRefusedNamingTheFieldAndChangeNothing) {
  DeadLetters("bad", 2);
  struct Case {
    std::function<void(v1::StartReplayRequest*)> set;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::StartReplayRequest* r) { r->set_max_per_second(-1); }, "max_per_second"},
      {[](v1::StartReplayRequest* r) { r->set_max_per_second(std::nan("")); }, "max_per_second"},
      {[](v1::StartReplayRequest* r) { r->set_limit(-1); }, "limit"},
      {[](v1::StartReplayRequest* r) { r->set_canary_count(-1); }, "canary_count"},
      {[](v1::StartReplayRequest* r) { r->set_note(std::string(1025, 'x')); }, "note"},
      {[](v1::StartReplayRequest* r) { r->set_request_id(std::string(129, 'x')); }, "request_id"},
      {[](v1::StartReplayRequest* r) {
         r->mutable_filter()->add_error_classes(static_cast<v1::ErrorClass>(9));
       },
       "filter.error_classes[0]"},
  };
  for (const Case& c : cases) {
    v1::StartReplayRequest req;
    req.mutable_filter()->set_service("bad");
    c.set(&req);
    v1::Replay r;
    grpc::Status s = admin_->StartReplay(Context().get(), req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field + ":"));
  }
  for (const char* name : {"", "foo", "replays/", "replays/x", "replays/-1"}) {
    v1::GetReplayRequest get;
    get.set_name(name);
    v1::Replay r;
    grpc::Status s = admin_->GetReplay(Context().get(), get, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(s.error_message(), HasSubstr("name:"));
    v1::CancelReplayRequest cancel;
    cancel.set_name(name);
    s = admin_->CancelReplay(Context().get(), cancel, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
  }
  v1::GetReplayRequest unknown;
  unknown.set_name("replays/999");
  v1::Replay r;
  EXPECT_EQ(admin_->GetReplay(Context().get(), unknown, &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::CancelReplayRequest cancel_unknown;
  cancel_unknown.set_name("replays/999");
  EXPECT_EQ(admin_->CancelReplay(Context().get(), cancel_unknown, &r).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::ListReplaysRequest bad_page;
  bad_page.set_page_size(-1);
  v1::ListReplaysResponse list;
  EXPECT_EQ(admin_->ListReplays(Context().get(), bad_page, &list).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  bad_page.set_page_size(0);
  bad_page.set_page_token("garbage");
  EXPECT_EQ(admin_->ListReplays(Context().get(), bad_page, &list).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // Nothing changed.
  bad_page.clear_page_token();
  ASSERT_TRUE(admin_->ListReplays(Context().get(), bad_page, &list).ok());
  EXPECT_EQ(list.replays_size(), 0);
  EXPECT_EQ(CountDead("bad"), 2);
  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(admin_->ListAuditEvents(Context().get(), v1::ListAuditEventsRequest(), &audit).ok());
  EXPECT_EQ(audit.events_size(), 0);
}

}  // namespace
}  // namespace retryd::testing
