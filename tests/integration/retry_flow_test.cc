// The retry life cycle on the real retryd binary over gRPC: first failure -> scheduled -> leased
// when due -> success or failure with the token -> dead-lettered on exhaustion; PERMANENT at
// once; duplicates; lease expiry and extension; long-polls.
#include <memory>
#include <set>
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

class RetryFlowTest : public StoreServerTest {
 protected:
  void SetUp() override { StartServer(kFastPolicyConfig); }
};

INSTANTIATE_TEST_SUITE_P(Stores, RetryFlowTest, testing::AllStoreKinds(), testing::StoreKindName);

TEST_P(RetryFlowTest, FirstFailureIsScheduledWithThePolicyDelay) {
  const absl::Time before = absl::Now();
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "m-1"), &resp).ok());
  const v1::Decision& d = resp.decision();
  EXPECT_EQ(d.kind(), v1::DECISION_SCHEDULED);
  EXPECT_EQ(d.attempt(), 1);
  EXPECT_FALSE(d.duplicate());
  EXPECT_EQ(d.error_class(), v1::TRANSIENT);
  EXPECT_EQ(d.delay().seconds(), 0);
  EXPECT_EQ(d.delay().nanos(), 200000000);  // No jitter: exactly the initial delay.
  const absl::Time next = ToTime(d.next_retry_at());
  EXPECT_GE(next, before + absl::Milliseconds(200));
  EXPECT_LE(next, absl::Now() + absl::Milliseconds(200));

  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", "m-1", &stored).ok());
  EXPECT_EQ(stored.state(), v1::SCHEDULED);
  EXPECT_EQ(stored.attempt(), 1);
  EXPECT_EQ(stored.max_attempts(), 3);
  EXPECT_EQ(stored.payload(), "{\"order\": \"m-1\"}");
  EXPECT_EQ(stored.headers().at("tenant"), "acme");
  ASSERT_EQ(stored.history_size(), 1);
  EXPECT_EQ(stored.history(0).error_code(), "UPSTREAM_TIMEOUT");
  EXPECT_EQ(stored.last_error().error_code(), "UPSTREAM_TIMEOUT");
}

TEST_P(RetryFlowTest, DueRetryIsLeasedThenSucceeds) {
  v1::ReportFailureRequest req = FirstFailure("orders", "m-2");
  req.mutable_failure()->mutable_retry_after()->set_seconds(2);  // Due in 2 s, not 0.2 s.
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  EXPECT_EQ(resp.decision().delay().seconds(), 2);  // Retry-After honored over the backoff.
  // Not due yet: an immediate lease gets nothing.
  v1::LeaseResponse early;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &early).ok());
  EXPECT_EQ(early.envelopes_size(), 0);

  v1::LeaseResponse leased = LeaseUntil(*retry_, "orders", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  const v1::LeasedEnvelope& item = leased.envelopes(0);
  EXPECT_EQ(item.envelope().message_id(), "m-2");
  EXPECT_EQ(item.envelope().payload(), "{\"order\": \"m-2\"}");
  EXPECT_FALSE(item.lease_token().empty());
  EXPECT_GT(ToTime(item.lease_expires_at()), absl::Now() + absl::Seconds(20));
  EXPECT_EQ(ServiceSummaryOf(*admin_, "orders").leased(), 1);

  ASSERT_TRUE(Succeed(*retry_, item).ok());
  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", "m-2", &stored).ok());
  EXPECT_EQ(stored.state(), v1::SUCCEEDED);
  const v1::ServiceSummary summary = ServiceSummaryOf(*admin_, "orders");
  EXPECT_EQ(summary.scheduled(), 0);
  EXPECT_EQ(summary.leased(), 0);

  // The token is spent; a late duplicate of the first failure is answered as a duplicate.
  grpc::Status again = Succeed(*retry_, item);
  EXPECT_EQ(again.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(again.error_message(), HasSubstr("lease_token"));
  v1::ReportFailureResponse dup;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "m-2"), &dup).ok());
  EXPECT_TRUE(dup.decision().duplicate());
  EXPECT_EQ(dup.decision().state(), v1::SUCCEEDED);
}

TEST_P(RetryFlowTest, FailedRetriesExhaustIntoTheDeadLetterQueue) {
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "m-3"), &resp).ok());
  for (int attempt = 2; attempt <= 3; ++attempt) {
    v1::LeaseResponse leased = LeaseUntil(*retry_, "orders", 1, absl::Seconds(5));
    ASSERT_EQ(leased.envelopes_size(), 1) << "attempt " << attempt;
    EXPECT_EQ(leased.envelopes(0).envelope().attempt(), attempt - 1);
    ASSERT_TRUE(Report(*retry_, LeasedFailure(leased.envelopes(0)), &resp).ok());
    EXPECT_EQ(resp.decision().attempt(), attempt);
  }
  EXPECT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
  EXPECT_EQ(resp.decision().reason(), v1::RETRY_EXHAUSTED);

  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", "m-3", &stored).ok());
  EXPECT_EQ(stored.state(), v1::DEAD_LETTERED);
  EXPECT_EQ(stored.dead_letter_reason(), v1::RETRY_EXHAUSTED);
  EXPECT_EQ(stored.attempt(), 3);
  ASSERT_EQ(stored.history_size(), 3);
  EXPECT_EQ(stored.history(1).delay().nanos(), 400000000);  // 0.2 s × 2.

  v1::ListDeadLettersRequest list;
  list.mutable_filter()->set_service("orders");
  v1::ListDeadLettersResponse dead;
  ASSERT_TRUE(admin_->ListDeadLetters(Context().get(), list, &dead).ok());
  ASSERT_EQ(dead.dead_letters_size(), 1);
  EXPECT_EQ(dead.dead_letters(0).message_id(), "m-3");
  EXPECT_EQ(ServiceSummaryOf(*admin_, "orders").dead(), 1);
}

TEST_P(RetryFlowTest, PermanentFailuresAreDeadLetteredAtOnce) {
  v1::ReportFailureRequest explicit_class = FirstFailure("orders", "p-1", "BAD_SIGNATURE");
  explicit_class.mutable_failure()->set_error_class(v1::PERMANENT);
  v1::ReportFailureRequest by_status = FirstFailure("orders", "p-2", "NOT_FOUND");
  by_status.mutable_failure()->set_http_status(404);
  for (const auto& req : {explicit_class, by_status}) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, req, &resp).ok());
    EXPECT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
    EXPECT_EQ(resp.decision().reason(), v1::NON_RETRYABLE);
    EXPECT_EQ(resp.decision().error_class(), v1::PERMANENT);
    EXPECT_EQ(resp.decision().attempt(), 1);
  }
  v1::LeaseResponse none;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &none).ok());
  EXPECT_EQ(none.envelopes_size(), 0);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "orders").dead(), 2);
}

TEST_P(RetryFlowTest, DuplicateFirstFailureIsCountedOnce) {
  v1::ReportFailureResponse first;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "d-1"), &first).ok());
  for (int i = 0; i < 3; ++i) {
    v1::ReportFailureResponse dup;
    ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "d-1"), &dup).ok());
    EXPECT_TRUE(dup.decision().duplicate());
    EXPECT_EQ(dup.decision().attempt(), 1);
    EXPECT_EQ(dup.decision().kind(), v1::DECISION_SCHEDULED);
    EXPECT_EQ(ToTime(dup.decision().next_retry_at()), ToTime(first.decision().next_retry_at()));
  }
  EXPECT_EQ(ServiceSummaryOf(*admin_, "orders").scheduled(), 1);
  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", "d-1", &stored).ok());
  EXPECT_EQ(stored.history_size(), 1);
  // Leasing hands it out once.
  v1::LeaseResponse leased = LeaseUntil(*retry_, "orders", 2, absl::Seconds(2));
  EXPECT_EQ(leased.envelopes_size(), 1);
}

// A duplicate describes the envelope as it is now, in every state, and never carries a time
// that is not real (a present but zero next_retry_at reads as 1970-01-01 in every client).
TEST_P(RetryFlowTest, DuplicateDescribesTheEnvelopeInEveryState) {
  v1::ReportFailureResponse first;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "s-1"), &first).ok());
  auto duplicate = [&]() {
    v1::ReportFailureResponse dup;
    EXPECT_TRUE(Report(*retry_, FirstFailure("orders", "s-1"), &dup).ok());
    EXPECT_TRUE(dup.decision().duplicate());
    EXPECT_EQ(dup.decision().attempt(), 1);
    return dup.decision();
  };
  // Scheduled: its real next_retry_at.
  v1::Decision d = duplicate();
  EXPECT_EQ(d.kind(), v1::DECISION_SCHEDULED);
  EXPECT_EQ(d.state(), v1::SCHEDULED);
  ASSERT_TRUE(d.has_next_retry_at());
  EXPECT_EQ(ToTime(d.next_retry_at()), ToTime(first.decision().next_retry_at()));

  // Leased: its retry is under way; nothing is due at a time.
  v1::LeaseResponse leased = LeaseUntil(*retry_, "orders", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  d = duplicate();
  EXPECT_EQ(d.kind(), v1::DECISION_SCHEDULED);
  EXPECT_EQ(d.state(), v1::LEASED);
  EXPECT_FALSE(d.has_next_retry_at()) << d.DebugString();

  // Succeeded (within the dedupe window): no time either.
  ASSERT_TRUE(Succeed(*retry_, leased.envelopes(0)).ok());
  d = duplicate();
  EXPECT_EQ(d.state(), v1::SUCCEEDED);
  EXPECT_EQ(d.kind(), v1::DECISION_SCHEDULED);
  EXPECT_FALSE(d.has_next_retry_at()) << d.DebugString();

  // Dead-lettered: DEAD_LETTERED with its reason.
  v1::ReportFailureRequest permanent = FirstFailure("orders", "s-2", "BAD_SIGNATURE");
  permanent.mutable_failure()->set_error_class(v1::PERMANENT);
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, permanent, &resp).ok());
  ASSERT_TRUE(Report(*retry_, permanent, &resp).ok());
  EXPECT_TRUE(resp.decision().duplicate());
  EXPECT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
  EXPECT_EQ(resp.decision().state(), v1::DEAD_LETTERED);
  EXPECT_EQ(resp.decision().reason(), v1::NON_RETRYABLE);
  EXPECT_FALSE(resp.decision().has_next_retry_at());
}

// The services ListServices shows, in order.
std::vector<std::string> ListedServices(v1::AdminService::Stub& admin) {
  v1::ListServicesResponse resp;
  EXPECT_TRUE(admin.ListServices(Context().get(), v1::ListServicesRequest(), &resp).ok());
  std::vector<std::string> names;
  for (const auto& s : resp.services()) names.push_back(s.service());
  return names;
}

// The distinct `service="..."` label values on /metrics, sorted.
std::set<std::string> MetricServices(int port) {
  absl::StatusOr<std::string> body = HttpGet(port, "/metrics");
  EXPECT_TRUE(body.ok()) << body.status();
  std::set<std::string> names;
  if (!body.ok()) return names;
  const std::string key = "service=\"";
  for (size_t at = body->find(key); at != std::string::npos; at = body->find(key, at)) {
    at += key.size();
    names.insert(body->substr(at, body->find('"', at) - at));
  }
  return names;
}

// A Lease (at once or long-polled) or a GetCircuit that finds nothing changes nothing: names
// nobody reported do not become services of ListServices or of /metrics.
TEST_P(RetryFlowTest, LeaseAndGetCircuitOfUnknownServicesChangeNothing) {
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "u-1"), &resp).ok());
  const std::vector<std::string> listed = ListedServices(*admin_);
  const std::set<std::string> metered = MetricServices(server_->metrics_port());
  ASSERT_THAT(listed, ::testing::ElementsAre("orders"));
  ASSERT_TRUE(metered.count("orders"));

  for (int i = 0; i < 200; ++i) {
    const std::string name = absl::StrCat("nobody-", i, "-", absl::ToUnixNanos(absl::Now()));
    v1::LeaseResponse leased;
    // Every tenth waits a little (a parked long-poll), the others answer at once.
    const absl::Duration wait = i % 10 == 0 ? absl::Milliseconds(50) : absl::ZeroDuration();
    ASSERT_TRUE(LeaseSome(*retry_, name, 5, wait, &leased).ok());
    EXPECT_EQ(leased.envelopes_size(), 0);
    EXPECT_EQ(leased.circuit_state(), v1::CLOSED);
    v1::GetCircuitRequest circuit_req;
    circuit_req.set_service(name);
    v1::GetCircuitResponse circuit;
    ASSERT_TRUE(retry_->GetCircuit(Context().get(), circuit_req, &circuit).ok());
    EXPECT_EQ(circuit.state(), v1::CLOSED);
  }
  EXPECT_EQ(ListedServices(*admin_), listed);
  EXPECT_EQ(MetricServices(server_->metrics_port()), metered);
}

TEST_P(RetryFlowTest, WorkerAttemptCountIsKept) {
  v1::ReportFailureRequest req = FirstFailure("orders", "a-1");
  req.mutable_envelope()->set_attempt(2);  // The worker already retried in process.
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  EXPECT_EQ(resp.decision().attempt(), 2);
  EXPECT_EQ(resp.decision().delay().nanos(), 400000000);
  req = FirstFailure("orders", "a-2");
  req.mutable_envelope()->set_attempt(3);  // Already at max_attempts.
  ASSERT_TRUE(Report(*retry_, req, &resp).ok());
  EXPECT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
  EXPECT_EQ(resp.decision().reason(), v1::RETRY_EXHAUSTED);
}

TEST_P(RetryFlowTest, ExpiredLeaseCountsAsAFailedAttempt) {
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "e-1"), &resp).ok());
  v1::LeaseResponse leased =
      LeaseUntil(*retry_, "orders", 1, absl::Seconds(5), /*visibility=*/absl::Seconds(1));
  ASSERT_EQ(leased.envelopes_size(), 1);
  // The worker "crashes": no report. After the visibility timeout the envelope is decided again.
  v1::LeaseResponse again = LeaseUntil(*retry_, "orders", 1, absl::Seconds(6));
  ASSERT_EQ(again.envelopes_size(), 1);
  EXPECT_EQ(again.envelopes(0).envelope().attempt(), 2);
  const auto& history = again.envelopes(0).envelope().history();
  ASSERT_EQ(history.size(), 2);
  EXPECT_EQ(history[1].error_code(), "LEASE_EXPIRED");
  EXPECT_EQ(history[1].error_class(), v1::TRANSIENT);
  EXPECT_NE(again.envelopes(0).lease_token(), leased.envelopes(0).lease_token());

  // The first worker's late report is refused, and changes nothing.
  grpc::Status late = Report(*retry_, LeasedFailure(leased.envelopes(0)), &resp);
  EXPECT_EQ(late.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(late.error_message(), HasSubstr("expired"));
  EXPECT_EQ(Succeed(*retry_, leased.envelopes(0)).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);

  // The last attempt's lease expires too: attempts are exhausted, so it is dead-lettered.
  ASSERT_TRUE(Report(*retry_, LeasedFailure(again.envelopes(0)), &resp).ok());
  ASSERT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);  // max_attempts = 3.
}

TEST_P(RetryFlowTest, ExtendedLeaseOutlivesItsFirstExpiry) {
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "x-1"), &resp).ok());
  v1::LeaseResponse leased =
      LeaseUntil(*retry_, "orders", 1, absl::Seconds(5), /*visibility=*/absl::Seconds(1));
  ASSERT_EQ(leased.envelopes_size(), 1);
  v1::ExtendLeaseRequest extend;
  extend.set_lease_token(leased.envelopes(0).lease_token());
  extend.mutable_visibility_timeout()->set_seconds(10);
  v1::ExtendLeaseResponse extended;
  ASSERT_TRUE(retry_->ExtendLease(Context().get(), extend, &extended).ok());
  EXPECT_GT(ToTime(extended.lease_expires_at()), absl::Now() + absl::Seconds(8));
  absl::SleepFor(absl::Milliseconds(1500));  // Past the original 1 s lease.
  v1::Envelope stored;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", "x-1", &stored).ok());
  EXPECT_EQ(stored.state(), v1::LEASED);
  EXPECT_EQ(stored.attempt(), 1);
  EXPECT_TRUE(Succeed(*retry_, leased.envelopes(0)).ok());
}

TEST_P(RetryFlowTest, LongPollWakesWhenARetryFallsDue) {
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "w-1"), &resp).ok());
  const absl::Time due = ToTime(resp.decision().next_retry_at());
  v1::LeaseResponse leased;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 1, absl::Seconds(10), &leased).ok());
  const absl::Time answered = absl::Now();
  ASSERT_EQ(leased.envelopes_size(), 1);
  EXPECT_GE(answered, due);
  EXPECT_LT(answered, due + absl::Seconds(1));  // Woken at the due time, not at the wait's end.
}

TEST_P(RetryFlowTest, LongPollWithNothingDueAnswersEmptyAfterTheWait) {
  const absl::Time start = absl::Now();
  v1::LeaseResponse leased;
  ASSERT_TRUE(LeaseSome(*retry_, "idle", 5, absl::Seconds(1), &leased).ok());
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(leased.envelopes_size(), 0);
  EXPECT_GE(waited, absl::Milliseconds(900));
  EXPECT_LT(waited, absl::Seconds(3));
}

TEST_P(RetryFlowTest, CancelledLongPollDoesNotTakeTheEnvelope) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::LeaseRequest req;
  req.set_service("orders");
  req.mutable_wait_time()->set_seconds(10);
  v1::LeaseResponse parked;
  grpc::Status parked_status;
  std::thread poller([&] { parked_status = retry_->Lease(&ctx, req, &parked); });
  absl::SleepFor(absl::Milliseconds(300));  // Let it park.
  ctx.TryCancel();
  poller.join();
  EXPECT_EQ(parked_status.error_code(), grpc::StatusCode::CANCELLED);

  // The retry falls due after the cancel: it must go to a live worker, not the gone one.
  v1::ReportFailureResponse resp;
  ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "cancel-1"), &resp).ok());
  v1::LeaseResponse leased = LeaseUntil(*retry_, "orders", 1, absl::Seconds(5));
  ASSERT_EQ(leased.envelopes_size(), 1);
  EXPECT_EQ(leased.envelopes(0).envelope().attempt(), 1);
  EXPECT_EQ(leased.envelopes(0).envelope().history_size(), 1);  // No LEASE_EXPIRED attempt.
}

TEST_P(RetryFlowTest, LeaseHandsOutOldestFirstAndRespectsMaxMessages) {
  for (int i = 0; i < 5; ++i) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, FirstFailure("orders", "o-" + std::to_string(i)), &resp).ok());
    absl::SleepFor(absl::Milliseconds(5));
  }
  absl::SleepFor(absl::Milliseconds(400));
  v1::LeaseResponse leased;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 3, absl::ZeroDuration(), &leased).ok());
  ASSERT_EQ(leased.envelopes_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(leased.envelopes(i).envelope().message_id(), "o-" + std::to_string(i));
  }
}

}  // namespace
}  // namespace retryd::testing
