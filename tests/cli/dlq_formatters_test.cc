// Golden tests of the dead-letter operation views: stats, failure groups, retries, replays
// (detail, list, progress), purge results and the audit log, as tables and as canonical JSON,
// built from hand-made messages with fixed timestamps.
#include <string>

#include "absl/strings/str_cat.h"

#include "client/cli/audit_cmd.h"
#include "client/cli/common.h"
#include "client/cli/dlq_cmd.h"
#include "client/cli/purge_cmd.h"
#include "client/cli/replay_cmd.h"
#include "client/cli/retries_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd::cli {
namespace {

// 2025-01-02T03:04:05Z
constexpr int64_t kT0 = 1735787045;

void SetTs(google::protobuf::Timestamp* ts, int64_t seconds, int32_t nanos = 0) {
  ts->set_seconds(seconds);
  ts->set_nanos(nanos);
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  EXPECT_TRUE(FormatJson(m, &out));
  return out;
}

// --- dlq stats -----------------------------------------------------------------------------

retryd::v1::GetDeadLetterStatsResponse Stats() {
  retryd::v1::GetDeadLetterStatsResponse s;
  auto* c = s.add_counts();
  c->set_service("billing");
  c->set_reason(retryd::v1::RETRY_EXHAUSTED);
  c->set_count(4812);
  c = s.add_counts();
  c->set_service("billing");
  c->set_reason(retryd::v1::NON_RETRYABLE);
  c->set_count(12);
  c = s.add_counts();
  c->set_service("inventory");
  c->set_reason(retryd::v1::BUDGET_EXHAUSTED);
  c->set_count(3);
  auto* e = s.add_top_error_codes();
  e->set_error_code("UPSTREAM_TIMEOUT");
  e->set_count(4800);
  e = s.add_top_error_codes();
  e->set_error_code("INVALID_SCHEMA");
  e->set_count(12);
  s.mutable_oldest_age()->set_seconds(2 * 86400 + 3600 + 5);
  s.set_dead_lettered_last_hour(40);
  s.set_total(4827);
  s.set_non_retryable_ratio(12.0 / 4827);
  s.set_exhausted_ratio(4812.0 / 4827);
  return s;
}

TEST(DeadLetterStatsTest, Golden) {
  EXPECT_EQ(FormatDeadLetterStats(Stats(), /*headers=*/true),
            R"(Dead letters:      4827
In the last hour:  40
Oldest:            49h5s
Non-retryable:     0.2%
Retry exhausted:   99.7%

By service and reason:
  SERVICE    REASON            COUNT
  billing    RETRY_EXHAUSTED   4812
  billing    NON_RETRYABLE     12
  inventory  BUDGET_EXHAUSTED  3

Top error codes:
  ERROR_CODE        COUNT
  UPSTREAM_TIMEOUT  4800
  INVALID_SCHEMA    12
)");
}

TEST(DeadLetterStatsTest, EmptyShowsZerosAndNoTables) {
  EXPECT_EQ(FormatDeadLetterStats(retryd::v1::GetDeadLetterStatsResponse(), true),
            R"(Dead letters:      0
In the last hour:  0
Oldest:            -
Non-retryable:     0.0%
Retry exhausted:   0.0%
)");
}

TEST(DeadLetterStatsTest, JsonGolden) {
  retryd::v1::GetDeadLetterStatsResponse s;
  auto* c = s.add_counts();
  c->set_service("billing");
  c->set_reason(retryd::v1::NON_RETRYABLE);
  c->set_count(2);
  auto* e = s.add_top_error_codes();
  e->set_error_code("INVALID_SCHEMA");
  e->set_count(2);
  s.mutable_oldest_age()->set_seconds(90);
  s.set_total(2);
  s.set_non_retryable_ratio(1);
  EXPECT_EQ(Json(s), R"({
 "counts": [
  {
   "service": "billing",
   "reason": "NON_RETRYABLE",
   "count": "2"
  }
 ],
 "topErrorCodes": [
  {
   "errorCode": "INVALID_SCHEMA",
   "count": "2"
  }
 ],
 "oldestAge": "90s",
 "total": "2",
 "nonRetryableRatio": 1
})");
}

// --- dlq groups ----------------------------------------------------------------------------

retryd::v1::ListFailureGroupsResponse Groups() {
  retryd::v1::ListFailureGroupsResponse r;
  auto* g = r.add_groups();
  g->set_fingerprint("fp1a2b");
  g->set_service("inventory");
  g->set_error_class(retryd::v1::TRANSIENT);
  g->set_error_code("UPSTREAM_TIMEOUT");
  g->set_normalized_message("timeout after <n>ms calling <url> for order <id>, retried <n> times");
  g->set_count(4812);
  SetTs(g->mutable_first_seen(), kT0);
  SetTs(g->mutable_last_seen(), kT0 + 3600);
  g->set_sample_message("timeout after 3000ms calling http://inv/1 for order 42, retried 5 times");
  g->set_sample_message_id("order-42");
  g = r.add_groups();
  g->set_fingerprint("fp9");
  g->set_service("billing");
  g->set_error_class(retryd::v1::PERMANENT);
  g->set_error_code("INVALID_SCHEMA");
  g->set_normalized_message("missing field\tcustomer_id");
  g->set_count(3);
  SetTs(g->mutable_first_seen(), kT0 + 60);
  SetTs(g->mutable_last_seen(), kT0 + 60);
  return r;
}

TEST(FailureGroupsTableTest, GoldenCutsLongMessages) {
  EXPECT_EQ(
      FormatFailureGroupsTable(Groups(), true),
      "FINGERPRINT  COUNT  SERVICE    CLASS      ERROR_CODE        FIRST_SEEN            "
      "LAST_SEEN             MESSAGE\n"
      "fp1a2b       4812   inventory  TRANSIENT  UPSTREAM_TIMEOUT  2025-01-02T03:04:05Z  "
      "2025-01-02T04:04:05Z  timeout after <n>ms calling <url> for order <id>, retried...\n"
      "fp9          3      billing    PERMANENT  INVALID_SCHEMA    2025-01-02T03:05:05Z  "
      "2025-01-02T03:05:05Z  missing field customer_id\n");
}

TEST(FailureGroupsTableTest, EmptyWithoutHeadersIsEmpty) {
  EXPECT_EQ(FormatFailureGroupsTable(retryd::v1::ListFailureGroupsResponse(), false), "");
}

TEST(FailureGroupsJsonTest, Golden) {
  retryd::v1::ListFailureGroupsResponse r;
  *r.add_groups() = Groups().groups(1);
  r.mutable_groups(0)->set_sample_message("missing field customer_id");
  r.mutable_groups(0)->set_sample_message_id("o-7");
  r.set_next_page_token("next");
  EXPECT_EQ(Json(r), R"({
 "groups": [
  {
   "fingerprint": "fp9",
   "service": "billing",
   "errorClass": "PERMANENT",
   "errorCode": "INVALID_SCHEMA",
   "normalizedMessage": "missing field\tcustomer_id",
   "count": "3",
   "firstSeen": "2025-01-02T03:05:05Z",
   "lastSeen": "2025-01-02T03:05:05Z",
   "sampleMessage": "missing field customer_id",
   "sampleMessageId": "o-7"
  }
 ],
 "nextPageToken": "next"
})");
}

// --- retries list --------------------------------------------------------------------------

TEST(RetriesTableTest, Golden) {
  retryd::v1::ListRetriesResponse r;
  auto* e = r.add_retries();
  e->set_service("billing");
  e->set_message_id("order-42");
  e->set_attempt(2);
  e->set_max_attempts(5);
  e->mutable_last_error()->set_error_code("UPSTREAM_TIMEOUT");
  e->mutable_last_error()->set_error_class(retryd::v1::TRANSIENT);
  SetTs(e->mutable_next_retry_at(), kT0 + 6);
  e = r.add_retries();
  e->set_service("orders");
  e->set_message_id("o-1");
  e->set_attempt(1);
  SetTs(e->mutable_next_retry_at(), kT0 + 120);
  EXPECT_EQ(FormatRetriesTable(r, true),
            "SERVICE  MESSAGE_ID  ATTEMPTS  CLASS      ERROR_CODE        NEXT_RETRY_AT\n"
            "billing  order-42    2/5       TRANSIENT  UPSTREAM_TIMEOUT  2025-01-02T03:04:11Z\n"
            "orders   o-1         1         -          -                 2025-01-02T03:06:05Z\n");
  EXPECT_EQ(FormatRetriesTable(r, false),
            "billing  order-42  2/5  TRANSIENT  UPSTREAM_TIMEOUT  2025-01-02T03:04:11Z\n"
            "orders   o-1       1    -          -                 2025-01-02T03:06:05Z\n");
}

TEST(RetriesJsonTest, Golden) {
  retryd::v1::ListRetriesResponse r;
  auto* e = r.add_retries();
  e->set_service("orders");
  e->set_message_id("o-1");
  e->set_attempt(1);
  e->set_state(retryd::v1::SCHEDULED);
  SetTs(e->mutable_next_retry_at(), kT0 + 120);
  EXPECT_EQ(Json(r), R"({
 "retries": [
  {
   "service": "orders",
   "messageId": "o-1",
   "attempt": 1,
   "nextRetryAt": "2025-01-02T03:06:05Z",
   "state": "SCHEDULED"
  }
 ]
})");
}

// --- replays -------------------------------------------------------------------------------

retryd::v1::Replay RunningReplay() {
  retryd::v1::Replay r;
  r.set_name("replays/7");
  r.set_state(retryd::v1::REPLAY_RUNNING);
  r.mutable_filter()->set_service("inventory");
  r.mutable_filter()->add_error_codes("UPSTREAM_TIMEOUT");
  r.mutable_filter()->add_error_classes(retryd::v1::TRANSIENT);
  r.mutable_filter()->add_error_classes(retryd::v1::RECOVERABLE);
  SetTs(r.mutable_filter()->mutable_after(), kT0);
  r.set_max_per_second(50);
  r.set_limit(1000);
  r.set_reset_attempts(true);
  r.set_note("inventory is back (INC-1234)");
  r.set_created_by("alice");
  SetTs(r.mutable_create_time(), kT0 + 7200);
  SetTs(r.mutable_start_time(), kT0 + 7201);
  r.set_matched(4812);
  r.set_replayed(312);
  r.set_skipped_blocked_schema(2);
  r.set_request_id("retryctl-00ff");
  return r;
}

TEST(ReplayDetailTest, RunningGolden) {
  EXPECT_EQ(FormatReplayDetail(RunningReplay(), true),
            R"(Name:                      replays/7
State:                     RUNNING
Filter:                    service=inventory error_code=UPSTREAM_TIMEOUT class=TRANSIENT|RECOVERABLE after=2025-01-02T03:04:05Z
Dry run:                   no
Max per second:            50
Limit:                     1000
Canary:                    none
Reset attempts:            yes
Note:                      inventory is back (INC-1234)
Created by:                alice
Request id:                retryctl-00ff
Created:                   2025-01-02T05:04:05Z
Started:                   2025-01-02T05:04:06Z
Ended:                     -
Matched:                   4812
Replayed:                  312
Skipped (blocked schema):  2
Failed:                    0
)");
}

TEST(ReplayDetailTest, FailedCanaryShowsTheError) {
  retryd::v1::Replay r = RunningReplay();
  r.set_state(retryd::v1::REPLAY_FAILED);
  r.set_canary_count(5);
  r.set_max_per_second(2.5);
  r.set_error("canary: 2 of 5 dead-lettered again");
  const std::string out = FormatReplayDetail(r, true);
  EXPECT_THAT(out, ::testing::HasSubstr("\nState:                     FAILED\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("\nCanary:                    5\n"));
  EXPECT_THAT(out, ::testing::HasSubstr("\nMax per second:            2.5\n"));
  EXPECT_THAT(out, ::testing::EndsWith(
                       "\nError:                     canary: 2 of 5 dead-lettered again\n"));
}

TEST(ReplayDetailTest, DryRunGoldenWithSample) {
  retryd::v1::Replay r;
  r.set_name("replays/8");
  r.set_state(retryd::v1::REPLAY_SUCCEEDED);
  r.set_dry_run(true);
  r.mutable_filter()->add_reasons(retryd::v1::RETRY_EXHAUSTED);
  r.set_max_per_second(100);
  r.set_reset_attempts(true);
  r.set_created_by("anonymous");
  SetTs(r.mutable_create_time(), kT0);
  SetTs(r.mutable_end_time(), kT0);
  r.set_matched(3);
  auto* e = r.add_sample();
  e->set_service("billing");
  e->set_message_id("inv-1");
  e->set_attempt(5);
  e->set_dead_letter_reason(retryd::v1::RETRY_EXHAUSTED);
  e->mutable_last_error()->set_error_code("UPSTREAM_TIMEOUT");
  SetTs(e->mutable_dead_lettered_at(), kT0 - 60);
  EXPECT_EQ(FormatReplayDetail(r, true),
            R"(Name:                      replays/8
State:                     SUCCEEDED
Filter:                    reason=RETRY_EXHAUSTED
Dry run:                   yes
Max per second:            100
Limit:                     none
Canary:                    none
Reset attempts:            yes
Note:                      -
Created by:                anonymous
Request id:                -
Created:                   2025-01-02T03:04:05Z
Started:                   -
Ended:                     2025-01-02T03:04:05Z
Matched:                   3
Replayed:                  0
Skipped (blocked schema):  0
Failed:                    0

Dry run: 3 dead letters would be replayed; nothing was changed.
Sample (1 of 3):
SERVICE  MESSAGE_ID  REASON           ATTEMPTS  ERROR_CODE        DEAD_LETTERED_AT
billing  inv-1       RETRY_EXHAUSTED  5         UPSTREAM_TIMEOUT  2025-01-02T03:03:05Z
)");
}

TEST(ReplayJsonTest, Golden) {
  retryd::v1::Replay r;
  r.set_name("replays/7");
  r.set_state(retryd::v1::REPLAY_RUNNING);
  r.mutable_filter()->set_service("inventory");
  r.mutable_filter()->add_reasons(retryd::v1::RETRY_EXHAUSTED);
  SetTs(r.mutable_filter()->mutable_before(), kT0);
  r.set_max_per_second(12.5);
  r.set_limit(1000);
  r.set_reset_attempts(true);
  r.set_matched(4812);
  r.set_replayed(312);
  r.set_request_id("retryctl-00ff");
  EXPECT_EQ(Json(r), R"({
 "name": "replays/7",
 "state": "REPLAY_RUNNING",
 "filter": {
  "service": "inventory",
  "reasons": [
   "RETRY_EXHAUSTED"
  ],
  "before": "2025-01-02T03:04:05Z"
 },
 "maxPerSecond": 12.5,
 "limit": "1000",
 "resetAttempts": true,
 "matched": "4812",
 "replayed": "312",
 "requestId": "retryctl-00ff"
})");
}

TEST(ReplaysTableTest, Golden) {
  retryd::v1::ListReplaysResponse list;
  *list.add_replays() = RunningReplay();
  auto* dry = list.add_replays();
  dry->set_name("replays/6");
  dry->set_state(retryd::v1::REPLAY_SUCCEEDED);
  dry->set_dry_run(true);
  dry->set_matched(3);
  dry->set_max_per_second(100);
  SetTs(dry->mutable_create_time(), kT0);
  // The filter is cut to 60 characters; 'replay status' shows it whole.
  const std::string cut = "service=inventory error_code=UPSTREAM_TIMEOUT class=TRANS...";
  ASSERT_EQ(cut.size(), 60u);
  EXPECT_EQ(FormatReplaysTable(list, true),
            absl::StrCat("NAME       STATE      DRY_RUN  MATCHED  REPLAYED  SKIPPED  FAILED  RATE  "
                         "CREATED_AT            FILTER", std::string(60 - 6, ' '), "  NOTE\n",
                         "replays/7  RUNNING    no       4812     312       2        0       50    "
                         "2025-01-02T05:04:05Z  ", cut, "  inventory is back (INC-1234)\n",
                         "replays/6  SUCCEEDED  yes      3        0         0        0       100   "
                         "2025-01-02T03:04:05Z  (all)", std::string(60 - 5, ' '), "  -\n"));
}

TEST(ReplayProgressTest, LineGolden) {
  EXPECT_EQ(FormatReplayProgressLine(RunningReplay()),
            "replays/7 RUNNING 314/1000 handled (replayed 312, skipped 2, failed 0)");
  retryd::v1::Replay failed = RunningReplay();
  failed.set_state(retryd::v1::REPLAY_FAILED);
  failed.set_error("canary dead-lettered again");
  EXPECT_EQ(FormatReplayProgressLine(failed),
            "replays/7 FAILED 314/1000 handled (replayed 312, skipped 2, failed 0) error: canary "
            "dead-lettered again");
}

TEST(ReplayProgressTest, BarGolden) {
  // 314 of min(4812, limit 1000): 31 %, 9 of 30 cells; (1000 - 314) / 50 per second = 14 s.
  EXPECT_EQ(FormatReplayProgressBar(RunningReplay(), 30),
            "replays/7 RUNNING [#########---------------------] 31% 314/1000 (replayed 312, "
            "skipped 2, failed 0) ~14s left");
  retryd::v1::Replay pending;
  pending.set_name("replays/9");
  pending.set_state(retryd::v1::REPLAY_PENDING);
  EXPECT_EQ(FormatReplayProgressBar(pending, 10),
            "replays/9 PENDING [----------] 0% 0/0 (replayed 0, skipped 0, failed 0)");
  retryd::v1::Replay done = pending;
  done.set_state(retryd::v1::REPLAY_SUCCEEDED);
  EXPECT_EQ(FormatReplayProgressBar(done, 10),
            "replays/9 SUCCEEDED [##########] 100% 0/0 (replayed 0, skipped 0, failed 0)");
}

TEST(ReplayHelpersTest, NamesTargetsAndFinalStates) {
  EXPECT_EQ(ReplayName("7"), "replays/7");
  EXPECT_EQ(ReplayName("replays/7"), "replays/7");
  EXPECT_EQ(ReplayName("other/7"), "other/7");
  EXPECT_EQ(ReplayName(""), "");
  retryd::v1::Replay r;
  r.set_matched(10);
  EXPECT_EQ(ReplayTarget(r), 10);
  r.set_limit(4);
  EXPECT_EQ(ReplayTarget(r), 4);
  r.set_limit(40);
  EXPECT_EQ(ReplayTarget(r), 10);
  EXPECT_FALSE(IsFinalReplayState(retryd::v1::REPLAY_PENDING));
  EXPECT_FALSE(IsFinalReplayState(retryd::v1::REPLAY_RUNNING));
  EXPECT_TRUE(IsFinalReplayState(retryd::v1::REPLAY_SUCCEEDED));
  EXPECT_TRUE(IsFinalReplayState(retryd::v1::REPLAY_FAILED));
  EXPECT_TRUE(IsFinalReplayState(retryd::v1::REPLAY_CANCELLED));
}

// --- dlq purge -----------------------------------------------------------------------------

TEST(PurgeResultTest, Golden) {
  retryd::v1::Filter filter;
  filter.set_service("billing");
  filter.add_error_codes("INVALID_SCHEMA");
  retryd::v1::PurgeDeadLettersResponse r;
  r.set_count(12);
  EXPECT_EQ(FormatPurgeResult(r, filter, /*dry_run=*/false, true),
            "Purged 12 dead letters (service=billing error_code=INVALID_SCHEMA).\n");
  auto* e = r.add_sample();
  e->set_service("billing");
  e->set_message_id("o-7");
  e->set_attempt(1);
  e->set_dead_letter_reason(retryd::v1::NON_RETRYABLE);
  e->mutable_last_error()->set_error_code("INVALID_SCHEMA");
  SetTs(e->mutable_dead_lettered_at(), kT0);
  EXPECT_EQ(FormatPurgeResult(r, filter, /*dry_run=*/true, true),
            "Dry run: 12 dead letters would be purged (service=billing "
            "error_code=INVALID_SCHEMA); nothing was changed.\n"
            "Sample (1 of 12):\n"
            "SERVICE  MESSAGE_ID  REASON         ATTEMPTS  ERROR_CODE      DEAD_LETTERED_AT\n"
            "billing  o-7         NON_RETRYABLE  1         INVALID_SCHEMA  2025-01-02T03:04:05Z\n");
  EXPECT_EQ(FormatPurgeResult(retryd::v1::PurgeDeadLettersResponse(), retryd::v1::Filter(),
                              /*dry_run=*/true, true),
            "Dry run: 0 dead letters would be purged ((all)); nothing was changed.\n");
}

TEST(PurgeJsonTest, Golden) {
  retryd::v1::PurgeDeadLettersResponse r;
  r.set_count(1);
  auto* e = r.add_sample();
  e->set_service("billing");
  e->set_message_id("o-7");
  EXPECT_EQ(Json(r), R"({
 "count": "1",
 "sample": [
  {
   "service": "billing",
   "messageId": "o-7"
  }
 ]
})");
}

// --- audit ---------------------------------------------------------------------------------

retryd::v1::ListAuditEventsResponse Audit() {
  retryd::v1::ListAuditEventsResponse r;
  auto* e = r.add_events();
  e->set_id(12);
  SetTs(e->mutable_time(), kT0 + 10);
  e->set_identity("alice");
  e->set_peer("ipv4:127.0.0.1:5555");
  e->set_method("PurgeDeadLetters");
  e->set_target("billing");
  e->mutable_filter()->set_service("billing");
  e->mutable_filter()->add_error_codes("INVALID_SCHEMA");
  e->set_affected_count(12);
  e->set_note("bad deploy; payloads unrecoverable, see the incident notes for the details");
  e->set_request_id("retryctl-1");
  e->set_result_code("OK");
  e = r.add_events();
  e->set_id(11);
  SetTs(e->mutable_time(), kT0);
  e->set_identity("anonymous");
  e->set_method("StartReplay");
  e->set_target("replays/7");
  e->set_dry_run(true);
  e->set_affected_count(4812);
  e->set_result_code("OK");
  return r;
}

TEST(AuditTableTest, Golden) {
  EXPECT_EQ(FormatAuditTable(Audit(), true),
            "ID  TIME                  IDENTITY   METHOD            TARGET     DRY_RUN  COUNT  "
            "RESULT  FILTER                                     NOTE\n"
            "12  2025-01-02T03:04:15Z  alice      PurgeDeadLetters  billing    no       12     "
            "OK      service=billing error_code=INVALID_SCHEMA  "
            "bad deploy; payloads unrecoverable, s...\n"
            "11  2025-01-02T03:04:05Z  anonymous  StartReplay       replays/7  yes      4812   "
            "OK      -                                          -\n");
}

TEST(AuditJsonTest, Golden) {
  retryd::v1::ListAuditEventsResponse r;
  *r.add_events() = Audit().events(1);
  r.set_next_page_token("t");
  EXPECT_EQ(Json(r), R"({
 "events": [
  {
   "id": "11",
   "time": "2025-01-02T03:04:05Z",
   "identity": "anonymous",
   "method": "StartReplay",
   "dryRun": true,
   "affectedCount": "4812",
   "target": "replays/7",
   "resultCode": "OK"
  }
 ],
 "nextPageToken": "t"
})");
}

}  // namespace
}  // namespace retryd::cli
