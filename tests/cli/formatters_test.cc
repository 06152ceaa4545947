// Golden tests of the pure proto -> text formatters: tables, detail views and canonical JSON,
// built from hand-made messages with fixed timestamps.
#include <string>

#include "client/cli/common.h"
#include "client/cli/dlq_cmd.h"
#include "client/cli/envelope_cmd.h"
#include "client/cli/filter_flags.h"
#include "client/cli/services_cmd.h"
#include "client/cli/version_cmd.h"
#include "client/cli/worker_cmd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace retryd::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// 2025-01-02T03:04:05Z
constexpr int64_t kT0 = 1735787045;

void SetTs(google::protobuf::Timestamp* ts, int64_t seconds, int32_t nanos = 0) {
  ts->set_seconds(seconds);
  ts->set_nanos(nanos);
}

void SetDur(google::protobuf::Duration* d, int64_t seconds, int32_t nanos = 0) {
  d->set_seconds(seconds);
  d->set_nanos(nanos);
}

std::string Json(const google::protobuf::Message& m) {
  std::string out;
  EXPECT_TRUE(FormatJson(m, &out));
  return out;
}

retryd::v1::ListServicesResponse Services() {
  retryd::v1::ListServicesResponse r;
  auto* billing = r.add_services();
  billing->set_service("billing");
  billing->set_policy_name("billing.*");
  billing->set_scheduled(3);
  billing->set_leased(1);
  billing->set_dead(12);
  SetDur(billing->mutable_oldest_dead_age(), 5400 + 7, 250000000);
  billing->set_circuit_state(retryd::v1::CLOSED);
  billing->set_budget_remaining(-1);
  auto* orders = r.add_services();
  orders->set_service("orders");
  orders->set_policy_name("default");
  orders->set_circuit_state(retryd::v1::OPEN);
  return r;
}

retryd::v1::Envelope DeadLetter() {
  retryd::v1::Envelope e;
  e.set_service("billing");
  e.set_message_id("inv-2025-0001");
  e.set_trace_id("trace-abc");
  e.set_attempt(5);
  e.set_max_attempts(5);
  e.set_content_type("application/json");
  e.set_schema_version("v2");
  e.set_source("kafka://invoices");
  (*e.mutable_headers())["tenant"] = "acme";
  (*e.mutable_headers())["region"] = "eu-west-1";
  SetTs(e.mutable_first_seen_at(), kT0);
  SetTs(e.mutable_created_at(), kT0 + 1, 500000000);
  SetTs(e.mutable_updated_at(), kT0 + 80);
  e.set_state(retryd::v1::DEAD_LETTERED);
  e.set_dead_letter_reason(retryd::v1::RETRY_EXHAUSTED);
  SetTs(e.mutable_dead_lettered_at(), kT0 + 80);
  auto* last = e.mutable_last_error();
  last->set_error_code("UPSTREAM_TIMEOUT");
  last->set_error_class(retryd::v1::TRANSIENT);
  last->set_message("upstream timed out after 30s\ncalling https://pay.example/charge");
  last->set_http_status(504);
  SetDur(last->mutable_retry_after(), 30);
  const int64_t delays[] = {2, 6, 18, 54, 0};
  for (int i = 0; i < 5; ++i) {
    auto* h = e.add_history();
    h->set_attempt(i + 1);
    SetTs(h->mutable_failed_at(), kT0 + i * 20);
    h->set_error_code(i == 0 ? "CONN_RESET" : "UPSTREAM_TIMEOUT");
    h->set_error_class(retryd::v1::TRANSIENT);
    h->set_message(i == 0 ? "connection reset by peer" : "upstream timed out after 30s");
    SetDur(h->mutable_delay(), delays[i]);
  }
  e.set_payload("{\"invoice\": 1}");
  return e;
}

TEST(ServicesTableTest, Golden) {
  EXPECT_EQ(FormatServicesTable(Services(), /*headers=*/true),
            "SERVICE  POLICY     SCHEDULED  LEASED  DEAD  OLDEST_DEAD  CIRCUIT  BUDGET_LEFT\n"
            "billing  billing.*  3          1       12    1h30m7s      CLOSED   unlimited\n"
            "orders   default    0          0       0     -            OPEN     0\n");
}

TEST(ServicesTableTest, NoHeaders) {
  EXPECT_EQ(FormatServicesTable(Services(), /*headers=*/false),
            "billing  billing.*  3  1  12  1h30m7s  CLOSED  unlimited\n"
            "orders   default    0  0  0   -        OPEN    0\n");
}

TEST(ServicesTableTest, EmptyShowsOnlyTheHeader) {
  EXPECT_EQ(FormatServicesTable(retryd::v1::ListServicesResponse(), true),
            "SERVICE  POLICY  SCHEDULED  LEASED  DEAD  OLDEST_DEAD  CIRCUIT  BUDGET_LEFT\n");
  EXPECT_EQ(FormatServicesTable(retryd::v1::ListServicesResponse(), false), "");
}

TEST(ServicesJsonTest, GoldenCanonicalLowerCamel) {
  EXPECT_EQ(Json(Services()), R"({
 "services": [
  {
   "service": "billing",
   "policyName": "billing.*",
   "scheduled": "3",
   "leased": "1",
   "dead": "12",
   "oldestDeadAge": "5407.250s",
   "circuitState": "CLOSED",
   "budgetRemaining": "-1"
  },
  {
   "service": "orders",
   "policyName": "default",
   "circuitState": "OPEN"
  }
 ]
})");
}

TEST(DeadLettersTableTest, Golden) {
  retryd::v1::ListDeadLettersResponse r;
  *r.add_dead_letters() = DeadLetter();
  auto* other = r.add_dead_letters();
  other->set_service("orders");
  other->set_message_id("o-7");
  other->set_attempt(1);
  other->set_dead_letter_reason(retryd::v1::NON_RETRYABLE);
  SetTs(other->mutable_dead_lettered_at(), kT0 + 3600);
  r.set_next_page_token("tok");
  EXPECT_EQ(FormatDeadLettersTable(r, true),
            "SERVICE  MESSAGE_ID     REASON           ATTEMPTS  ERROR_CODE        DEAD_LETTERED_AT\n"
            "billing  inv-2025-0001  RETRY_EXHAUSTED  5         UPSTREAM_TIMEOUT  2025-01-02T03:05:25Z\n"
            "orders   o-7            NON_RETRYABLE    1         -                 2025-01-02T04:04:05Z\n");
}

TEST(DeadLettersJsonTest, GoldenWithNextPageToken) {
  retryd::v1::ListDeadLettersResponse r;
  auto* e = r.add_dead_letters();
  e->set_service("orders");
  e->set_message_id("o-7");
  e->set_attempt(1);
  e->set_state(retryd::v1::DEAD_LETTERED);
  e->set_dead_letter_reason(retryd::v1::NON_RETRYABLE);
  SetTs(e->mutable_dead_lettered_at(), kT0, 5000000);
  r.set_next_page_token("abc_-");
  EXPECT_EQ(Json(r), R"({
 "deadLetters": [
  {
   "service": "orders",
   "messageId": "o-7",
   "attempt": 1,
   "state": "DEAD_LETTERED",
   "deadLetterReason": "NON_RETRYABLE",
   "deadLetteredAt": "2025-01-02T03:04:05.005Z"
  }
 ],
 "nextPageToken": "abc_-"
})");
}

TEST(NextPageHintTest, RepeatsTheFilterAndPageSize) {
  retryd::v1::Filter filter;
  filter.set_service("billing");
  EXPECT_EQ(NextPageHint("retryctl dlq list", &filter, 20, "T0K"),
            "Next page: retryctl dlq list --service billing --page-size 20 --page-token T0K");
  EXPECT_EQ(NextPageHint("retryctl dlq list", nullptr, 0, "T0K"),
            "Next page: retryctl dlq list --page-token T0K");
}

TEST(EnvelopeDetailTest, Golden) {
  EXPECT_EQ(FormatEnvelopeDetail(DeadLetter()),
            R"(Service:         billing
Message ID:      inv-2025-0001
State:           DEAD_LETTERED
Attempts:        5 of 5
Trace ID:        trace-abc
Source:          kafka://invoices
Content type:    application/json
Schema version:  v2
First seen:      2025-01-02T03:04:05Z
Created:         2025-01-02T03:04:06Z
Updated:         2025-01-02T03:05:25Z
Dead-lettered:   2025-01-02T03:05:25Z
Reason:          RETRY_EXHAUSTED
Headers:
  region:  eu-west-1
  tenant:  acme

Last error:
  Code:         UPSTREAM_TIMEOUT
  Class:        TRANSIENT
  HTTP status:  504
  Retry after:  30s
  Message:      upstream timed out after 30s
                calling https://pay.example/charge

History:
  ATTEMPT  FAILED_AT             CLASS      ERROR_CODE        DELAY  MESSAGE
  1        2025-01-02T03:04:05Z  TRANSIENT  CONN_RESET        2s     connection reset by peer
  2        2025-01-02T03:04:25Z  TRANSIENT  UPSTREAM_TIMEOUT  6s     upstream timed out after 30s
  3        2025-01-02T03:04:45Z  TRANSIENT  UPSTREAM_TIMEOUT  18s    upstream timed out after 30s
  4        2025-01-02T03:05:05Z  TRANSIENT  UPSTREAM_TIMEOUT  54s    upstream timed out after 30s
  5        2025-01-02T03:05:25Z  TRANSIENT  UPSTREAM_TIMEOUT  0s     upstream timed out after 30s

Payload (14 bytes, text):
{"invoice": 1}
)");
}

TEST(EnvelopeDetailTest, ScheduledMinimalEnvelope) {
  retryd::v1::Envelope e;
  e.set_service("orders");
  e.set_message_id("o-1");
  e.set_state(retryd::v1::SCHEDULED);
  e.set_attempt(1);
  SetTs(e.mutable_next_retry_at(), kT0 + 2);
  EXPECT_EQ(FormatEnvelopeDetail(e), R"(Service:         orders
Message ID:      o-1
State:           SCHEDULED
Attempts:        1
Trace ID:        -
Source:          -
Content type:    -
Schema version:  -
First seen:      -
Created:         -
Updated:         -
Next retry:      2025-01-02T03:04:07Z

Payload:  (empty)
)");
}

// A replayed envelope's new retry life is shown; one that never was replayed (its life started
// when it was first seen) shows nothing more.
TEST(EnvelopeDetailTest, RetryLifeShownOnlyWhenAReplayStartedANewOne) {
  retryd::v1::Envelope e;
  e.set_service("orders");
  e.set_message_id("o-1");
  SetTs(e.mutable_first_seen_at(), kT0);
  SetTs(e.mutable_retry_life_started_at(), kT0);
  EXPECT_THAT(FormatEnvelopeDetail(e), Not(HasSubstr("Retry life from")));
  SetTs(e.mutable_retry_life_started_at(), kT0 + 3600);
  EXPECT_THAT(FormatEnvelopeDetail(e), HasSubstr("Retry life from:  2025-01-02T04:04:05Z\n"));
}

TEST(EnvelopeDetailTest, PayloadWrittenToFile) {
  EXPECT_THAT(FormatEnvelopeDetail(DeadLetter(), "/tmp/p.bin"),
              HasSubstr("\nPayload (14 bytes):  written to /tmp/p.bin\n"));
}

TEST(PayloadTest, TextBinaryAndEmpty) {
  EXPECT_EQ(FormatPayload("hello\n"), "Payload (6 bytes, text):\nhello\n");
  EXPECT_EQ(FormatPayload(std::string("\x00\xff\x10", 3)), "Payload (3 bytes, base64):\nAP8Q\n");
  EXPECT_EQ(FormatPayload("\x1b[2J"), "Payload (4 bytes, base64):\nG1sySg==\n");
  EXPECT_EQ(FormatPayload(""), "Payload:  (empty)\n");
}

TEST(EnvelopeJsonTest, PayloadIsBase64AndHeadersAreAnObject) {
  retryd::v1::GetEnvelopeResponse r;
  auto* e = r.mutable_envelope();
  e->set_service("s");
  e->set_message_id("m");
  e->set_payload("hello");
  (*e->mutable_headers())["k"] = "v";
  EXPECT_EQ(Json(r), R"({
 "envelope": {
  "service": "s",
  "messageId": "m",
  "payload": "aGVsbG8=",
  "headers": {
   "k": "v"
  }
 }
})");
}

TEST(DecisionTest, ScheduledGolden) {
  retryd::v1::Decision d;
  d.set_kind(retryd::v1::DECISION_SCHEDULED);
  d.set_attempt(2);
  d.set_error_class(retryd::v1::TRANSIENT);
  d.set_state(retryd::v1::SCHEDULED);
  SetTs(d.mutable_next_retry_at(), kT0 + 6);
  SetDur(d.mutable_delay(), 6, 120000000);
  EXPECT_EQ(FormatDecision(d), R"(Decision:    SCHEDULED
Attempt:     2
Class:       TRANSIENT
State:       SCHEDULED
Next retry:  2025-01-02T03:04:11Z
Delay:       6.12s
Duplicate:   no
)");
}

TEST(DecisionTest, DeadLetteredDuplicateGolden) {
  retryd::v1::Decision d;
  d.set_kind(retryd::v1::DECISION_DEAD_LETTERED);
  d.set_reason(retryd::v1::NON_RETRYABLE);
  d.set_attempt(1);
  d.set_error_class(retryd::v1::PERMANENT);
  d.set_state(retryd::v1::DEAD_LETTERED);
  d.set_duplicate(true);
  EXPECT_EQ(FormatDecision(d), R"(Decision:   DEAD_LETTERED
Reason:     NON_RETRYABLE
Attempt:    1
Class:      PERMANENT
State:      DEAD_LETTERED
Duplicate:  yes (already recorded; nothing was counted again)
)");
}

TEST(DecisionJsonTest, Golden) {
  retryd::v1::ReportFailureResponse r;
  auto* d = r.mutable_decision();
  d->set_kind(retryd::v1::DECISION_SCHEDULED);
  d->set_attempt(2);
  d->set_error_class(retryd::v1::TRANSIENT);
  d->set_state(retryd::v1::SCHEDULED);
  SetTs(d->mutable_next_retry_at(), kT0 + 6);
  SetDur(d->mutable_delay(), 6);
  EXPECT_EQ(Json(r), R"({
 "decision": {
  "kind": "DECISION_SCHEDULED",
  "nextRetryAt": "2025-01-02T03:04:11Z",
  "attempt": 2,
  "errorClass": "TRANSIENT",
  "state": "SCHEDULED",
  "delay": "6s"
 }
})");
}

TEST(LeaseTableTest, Golden) {
  retryd::v1::LeaseResponse r;
  r.set_circuit_state(retryd::v1::CLOSED);
  for (int i = 0; i < 2; ++i) {
    auto* leased = r.add_envelopes();
    leased->mutable_envelope()->set_message_id(i == 0 ? "m-1" : "message-22");
    leased->mutable_envelope()->set_attempt(i + 1);
    leased->set_lease_token(i == 0 ? "lt_AAAA" : "lt_BBBB");
    SetTs(leased->mutable_lease_expires_at(), kT0 + 30);
  }
  EXPECT_EQ(FormatLeaseTable(r, true),
            "MESSAGE_ID  ATTEMPTS  LEASE_EXPIRES_AT      LEASE_TOKEN\n"
            "m-1         1         2025-01-02T03:04:35Z  lt_AAAA\n"
            "message-22  2         2025-01-02T03:04:35Z  lt_BBBB\n");
}

TEST(VersionTest, Golden) {
  EXPECT_EQ(FormatVersion("0.1.0", "1.51.1", "3.21.12"),
            "retryctl 0.1.0 (gRPC 1.51.1, protobuf 3.21.12)");
}

}  // namespace
}  // namespace retryd::cli
