// The circuit breaker on the real retryd binary: a simulated outage opens it at the threshold,
// leases stop (nothing lost), parked long-polls wake for the trials once it turns HALF_OPEN,
// successful trials close it, a failed trial re-opens it for twice as long; overrides; a kill -9
// keeps an OPEN circuit and an override, and HALF_OPEN's trials (no second set is admitted);
// bad SetCircuitOverride requests change nothing.
#include <memory>
#include <string>
#include <thread>

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

// Retries due 0.2 s after a failure; the circuit opens at 50 % failures over at least 10
// outcomes, stays open 2 s (doubling up to 8 s) and lets 3 trials through. Service `held` stays
// open for 10 minutes (for assertions that must not race the probe time).
constexpr char kCircuitConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 5,
     "backoff": {"initial": "0.2s", "multiplier": 1, "max": "0.2s", "jitter": "NONE"},
     "circuit": {"enabled": true, "window": "60s", "failureRateThreshold": 0.5,
                 "minimumCalls": 10, "openDuration": "2s", "maxOpenDuration": "8s",
                 "halfOpenTrials": 3}},
    {"name": "held", "maxAttempts": 5,
     "backoff": {"initial": "0.2s", "multiplier": 1, "max": "0.2s", "jitter": "NONE"},
     "circuit": {"enabled": true, "minimumCalls": 10, "openDuration": "600s",
                 "maxOpenDuration": "600s"}}
  ]
})json";

class CircuitTest : public ServerTest {
 protected:
  void SetUp() override { StartServer(kCircuitConfig); }

  v1::GetCircuitResponse Circuit(const std::string& service) {
    v1::GetCircuitRequest req;
    req.set_service(service);
    v1::GetCircuitResponse resp;
    EXPECT_TRUE(retry_->GetCircuit(Context().get(), req, &resp).ok());
    return resp;
  }

  grpc::Status RecordOutcomes(const std::string& service, int64_t successes, int64_t failures) {
    v1::RecordOutcomesRequest req;
    req.set_service(service);
    req.set_successes(successes);
    req.set_failures(failures);
    v1::RecordOutcomesResponse resp;
    return retry_->RecordOutcomes(Context().get(), req, &resp);
  }

  grpc::Status Override(const std::string& service, v1::CircuitOverride mode,
                        const std::string& note, v1::SetCircuitOverrideResponse* resp) {
    v1::SetCircuitOverrideRequest req;
    req.set_service(service);
    req.set_override(mode);
    req.set_note(note);
    return admin_->SetCircuitOverride(Context().get(), req, resp);
  }

  // The whole audit log, newest first.
  std::vector<v1::AuditEvent> AuditEvents() {
    v1::ListAuditEventsRequest req;
    req.set_page_size(1000);
    v1::ListAuditEventsResponse resp;
    EXPECT_TRUE(admin_->ListAuditEvents(Context().get(), req, &resp).ok());
    return {resp.events().begin(), resp.events().end()};
  }

  // Ten successes, then TRANSIENT first failures at a steady pace until the circuit opens;
  // checks that it opens at exactly the tenth failure (10 of 20 = the 50 % threshold).
  void OpenByOutage(const std::string& service) {
    ASSERT_TRUE(RecordOutcomes(service, 10, 0).ok());
    for (int i = 1; i <= 10; ++i) {
      v1::ReportFailureResponse resp;
      ASSERT_TRUE(Report(*retry_, FirstFailure(service, absl::StrCat("m-", i)), &resp).ok());
      ASSERT_EQ(resp.decision().kind(), v1::DECISION_SCHEDULED);
      const v1::GetCircuitResponse c = Circuit(service);
      if (i < 10) {
        ASSERT_EQ(c.state(), v1::CLOSED) << "after failure " << i;
        EXPECT_DOUBLE_EQ(c.failure_rate(), i / (10.0 + i));
      } else {
        ASSERT_EQ(c.state(), v1::OPEN) << "after failure " << i;
        EXPECT_DOUBLE_EQ(c.failure_rate(), 0.5);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
};

TEST_F(CircuitTest, OutageOpensHoldsProbesAndCloses) {
  EXPECT_EQ(Circuit("orders").state(), v1::CLOSED);
  OpenByOutage("orders");
  const v1::GetCircuitResponse open = Circuit("orders");
  const absl::Time since = ToTime(open.since());
  EXPECT_EQ(ToTime(open.next_probe_at()), since + absl::Seconds(2));

  // OPEN: the ten retries fall due (0.2 s) but nothing is leased, and the answer says why.
  absl::SleepFor(absl::Milliseconds(400));
  v1::LeaseResponse held;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &held).ok());
  EXPECT_EQ(held.envelopes_size(), 0);
  EXPECT_EQ(held.circuit_state(), v1::OPEN);
  // Every envelope is still there, scheduled, none dead-lettered.
  v1::ServiceSummary summary = ServiceSummaryOf(*admin_, "orders");
  EXPECT_EQ(summary.scheduled(), 10);
  EXPECT_EQ(summary.leased(), 0);
  EXPECT_EQ(summary.dead(), 0);
  EXPECT_EQ(summary.circuit_state(), v1::OPEN);
  for (int i = 1; i <= 10; ++i) {
    v1::Envelope e;
    ASSERT_TRUE(GetEnvelope(*admin_, "orders", absl::StrCat("m-", i), &e).ok());
    EXPECT_EQ(e.state(), v1::SCHEDULED) << i;
  }

  // A long-poll parked while OPEN is answered when the circuit turns HALF_OPEN, with the trials
  // only (3 of the 10 due).
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::Seconds(6), &trials).ok());
  EXPECT_GE(absl::Now(), since + absl::Seconds(2));
  ASSERT_EQ(trials.envelopes_size(), 3);
  EXPECT_EQ(trials.circuit_state(), v1::HALF_OPEN);
  const v1::GetCircuitResponse half = Circuit("orders");
  EXPECT_EQ(half.state(), v1::HALF_OPEN);
  EXPECT_EQ(ToTime(half.since()), since + absl::Seconds(2));
  // No more trials while those are out.
  v1::LeaseResponse none;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &none).ok());
  EXPECT_EQ(none.envelopes_size(), 0);
  EXPECT_EQ(none.circuit_state(), v1::HALF_OPEN);

  // All trials succeed: CLOSED, and the other seven flow again.
  for (const v1::LeasedEnvelope& t : trials.envelopes()) ASSERT_TRUE(Succeed(*retry_, t).ok());
  const v1::GetCircuitResponse closed = Circuit("orders");
  EXPECT_EQ(closed.state(), v1::CLOSED);
  EXPECT_EQ(closed.failure_rate(), 0);
  EXPECT_FALSE(closed.has_next_probe_at());
  v1::LeaseResponse rest;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &rest).ok());
  EXPECT_EQ(rest.envelopes_size(), 7);
  EXPECT_EQ(rest.circuit_state(), v1::CLOSED);
}

TEST_F(CircuitTest, RecordedFailuresOpenItAndFewerDueTrialsCloseIt) {
  // A worker that counts its first attempts in batches: 5 of 10 failed.
  ASSERT_TRUE(RecordOutcomes("payments", 5, 5).ok());
  v1::GetCircuitResponse c = Circuit("payments");
  ASSERT_EQ(c.state(), v1::OPEN);
  EXPECT_DOUBLE_EQ(c.failure_rate(), 0.5);
  // Two of those failures were also handed over; they count once (5 of 10, not 7 of 12).
  for (int i = 1; i <= 2; ++i) {
    v1::ReportFailureResponse resp;
    ASSERT_TRUE(Report(*retry_, FirstFailure("payments", absl::StrCat("p-", i)), &resp).ok());
  }
  EXPECT_DOUBLE_EQ(Circuit("payments").failure_rate(), 0.5);
  // HALF_OPEN with 3 trial places and only 2 envelopes due: both succeed → CLOSED.
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "payments", 10, absl::Seconds(6), &trials).ok());
  ASSERT_EQ(trials.envelopes_size(), 2);
  EXPECT_EQ(trials.circuit_state(), v1::HALF_OPEN);
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(0)).ok());
  EXPECT_EQ(Circuit("payments").state(), v1::HALF_OPEN);
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(1)).ok());
  EXPECT_EQ(Circuit("payments").state(), v1::CLOSED);
}

TEST_F(CircuitTest, FailedTrialReopensForTwiceAsLong) {
  OpenByOutage("orders");
  const absl::Time opened = ToTime(Circuit("orders").since());
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::Seconds(6), &trials).ok());
  ASSERT_EQ(trials.envelopes_size(), 3);
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(0)).ok());
  EXPECT_EQ(Circuit("orders").state(), v1::HALF_OPEN);
  v1::ReportFailureResponse failed;
  ASSERT_TRUE(Report(*retry_, LeasedFailure(trials.envelopes(1)), &failed).ok());
  EXPECT_EQ(failed.decision().kind(), v1::DECISION_SCHEDULED);  // Retried later, not lost.
  const v1::GetCircuitResponse reopened = Circuit("orders");
  EXPECT_EQ(reopened.state(), v1::OPEN);
  const absl::Time since = ToTime(reopened.since());
  EXPECT_GE(since, opened + absl::Seconds(2));
  EXPECT_EQ(ToTime(reopened.next_probe_at()), since + absl::Seconds(4));
}

TEST_F(CircuitTest, ExpiredTrialLeaseReopensTheCircuit) {
  OpenByOutage("orders");
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 1, absl::Seconds(6), &trials,
                        /*visibility=*/absl::Seconds(1))
                  .ok());
  ASSERT_EQ(trials.envelopes_size(), 1);
  EXPECT_EQ(Circuit("orders").state(), v1::HALF_OPEN);
  // The worker never answers: the expiry is a TRANSIENT failure of the trial.
  v1::GetCircuitResponse c;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  do {
    absl::SleepFor(absl::Milliseconds(100));
    c = Circuit("orders");
  } while (c.state() != v1::OPEN && absl::Now() < deadline);
  ASSERT_EQ(c.state(), v1::OPEN);
  EXPECT_EQ(ToTime(c.next_probe_at()) - ToTime(c.since()), absl::Seconds(4));
  v1::Envelope e;
  ASSERT_TRUE(GetEnvelope(*admin_, "orders", trials.envelopes(0).envelope().message_id(), &e).ok());
  EXPECT_EQ(e.state(), v1::SCHEDULED);  // Decided again, not lost.
  EXPECT_EQ(e.last_error().error_code(), "LEASE_EXPIRED");
}

TEST_F(CircuitTest, OverridesForceAndReturnToAuto) {
  v1::SetCircuitOverrideResponse resp;
  ASSERT_TRUE(Override("billing", v1::FORCE_OPEN, "downstream maintenance", &resp).ok());
  EXPECT_EQ(resp.state(), v1::OPEN);
  EXPECT_EQ(resp.override(), v1::FORCE_OPEN);
  v1::ReportFailureResponse r;
  ASSERT_TRUE(Report(*retry_, FirstFailure("billing", "b-1"), &r).ok());
  absl::SleepFor(absl::Milliseconds(400));
  v1::LeaseResponse held;
  ASSERT_TRUE(LeaseSome(*retry_, "billing", 10, absl::ZeroDuration(), &held).ok());
  EXPECT_EQ(held.envelopes_size(), 0);
  EXPECT_EQ(held.circuit_state(), v1::OPEN);
  const v1::GetCircuitResponse forced = Circuit("billing");
  EXPECT_EQ(forced.state(), v1::OPEN);
  EXPECT_FALSE(forced.has_next_probe_at());  // No probe while forced.

  // AUTO after FORCE_OPEN probes first.
  ASSERT_TRUE(Override("billing", v1::AUTO, "", &resp).ok());
  EXPECT_EQ(resp.state(), v1::HALF_OPEN);
  EXPECT_EQ(resp.override(), v1::AUTO);
  v1::LeaseResponse trial;
  ASSERT_TRUE(LeaseSome(*retry_, "billing", 10, absl::ZeroDuration(), &trial).ok());
  EXPECT_EQ(trial.envelopes_size(), 1);

  // FORCE_CLOSED: an outage does not open it.
  ASSERT_TRUE(Override("payments", v1::FORCE_CLOSED, "", &resp).ok());
  EXPECT_EQ(resp.state(), v1::CLOSED);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Report(*retry_, FirstFailure("payments", absl::StrCat("p-", i)), &r).ok());
  }
  EXPECT_EQ(Circuit("payments").state(), v1::CLOSED);
  EXPECT_EQ(Circuit("payments").failure_rate(), 1.0);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "payments").circuit_state(), v1::CLOSED);

  // Every override is in the audit log, newest first, with who, what and the note.
  const std::vector<v1::AuditEvent> events = AuditEvents();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].method(), "SetCircuitOverride");
  EXPECT_EQ(events[0].target(), "payments");
  EXPECT_EQ(events[0].detail(), "FORCE_CLOSED");
  EXPECT_EQ(events[1].target(), "billing");
  EXPECT_EQ(events[1].detail(), "AUTO");
  EXPECT_EQ(events[2].detail(), "FORCE_OPEN");
  EXPECT_EQ(events[2].note(), "downstream maintenance");
  for (const v1::AuditEvent& e : events) {
    EXPECT_EQ(e.identity(), "anonymous");
    EXPECT_THAT(e.peer(), HasSubstr("127.0.0.1"));
    EXPECT_EQ(e.affected_count(), 1);
    EXPECT_EQ(e.result_code(), "OK");
  }
}

TEST_F(CircuitTest, KillNineKeepsAnOpenCircuitAndAnOverride) {
  OpenByOutage("held");
  OpenByOutage("orders");
  const v1::GetCircuitResponse before = Circuit("held");
  v1::SetCircuitOverrideResponse resp;
  ASSERT_TRUE(Override("billing", v1::FORCE_OPEN, "hold billing", &resp).ok());
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  ConnectStubs();

  const v1::GetCircuitResponse after = Circuit("held");
  EXPECT_EQ(after.state(), v1::OPEN);
  EXPECT_EQ(ToTime(after.since()), ToTime(before.since()));
  EXPECT_EQ(ToTime(after.next_probe_at()), ToTime(before.next_probe_at()));
  EXPECT_EQ(ToTime(after.next_probe_at()), ToTime(after.since()) + absl::Seconds(600));
  EXPECT_EQ(Circuit("billing").state(), v1::OPEN);
  // The overridden service is listed even without traffic.
  EXPECT_EQ(ServiceSummaryOf(*admin_, "billing").circuit_state(), v1::OPEN);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "held").circuit_state(), v1::OPEN);
  EXPECT_EQ(ServiceSummaryOf(*admin_, "held").scheduled(), 10);
  v1::LeaseResponse held;
  ASSERT_TRUE(LeaseSome(*retry_, "held", 10, absl::ZeroDuration(), &held).ok());
  EXPECT_EQ(held.envelopes_size(), 0);
  EXPECT_EQ(held.circuit_state(), v1::OPEN);
  // The stored OPEN of `orders` (2 s) still turns HALF_OPEN, and its trials go out.
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::Seconds(6), &trials).ok());
  EXPECT_EQ(trials.envelopes_size(), 3);
  // The override is still in force long after the automatic open duration.
  EXPECT_EQ(Circuit("billing").state(), v1::OPEN);
}

TEST_F(CircuitTest, KillNineDuringHalfOpenAdmitsNoSecondSetOfTrials) {
  OpenByOutage("orders");
  v1::LeaseResponse trials;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::Seconds(6), &trials,
                        /*visibility=*/absl::Seconds(120))
                  .ok());
  ASSERT_EQ(trials.envelopes_size(), 3);
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(0)).ok());
  server_->Kill();
  ASSERT_TRUE(server_->Restart().ok());
  ConnectStubs();

  // The trials handed out before the crash are still the trials: no second set goes out.
  EXPECT_EQ(Circuit("orders").state(), v1::HALF_OPEN);
  v1::LeaseResponse none;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &none).ok());
  EXPECT_EQ(none.envelopes_size(), 0);
  EXPECT_EQ(none.circuit_state(), v1::HALF_OPEN);
  // Their outcomes count, before the crash and after it: the last two close the circuit.
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(1)).ok());
  EXPECT_EQ(Circuit("orders").state(), v1::HALF_OPEN);
  ASSERT_TRUE(Succeed(*retry_, trials.envelopes(2)).ok());
  EXPECT_EQ(Circuit("orders").state(), v1::CLOSED);
  v1::LeaseResponse rest;
  ASSERT_TRUE(LeaseSome(*retry_, "orders", 10, absl::ZeroDuration(), &rest).ok());
  EXPECT_EQ(rest.envelopes_size(), 7);
}

TEST_F(CircuitTest, BadOverridesAreRejectedAndChangeNothing) {
  v1::SetCircuitOverrideResponse resp;
  struct Case {
    std::string service;
    int mode;
    std::string note;
    std::string field;
  };
  const Case cases[] = {
      {"", v1::FORCE_OPEN, "", "service"},
      {"Bad Name!", v1::FORCE_OPEN, "", "service"},
      {std::string(65, 'a'), v1::FORCE_OPEN, "", "service"},
      {"orders", v1::CIRCUIT_OVERRIDE_UNSPECIFIED, "", "override"},
      {"orders", 7, "", "override"},
      {"orders", v1::FORCE_OPEN, std::string(1025, 'n'), "note"},
  };
  for (const Case& c : cases) {
    v1::SetCircuitOverrideRequest req;
    req.set_service(c.service);
    req.set_override(static_cast<v1::CircuitOverride>(c.mode));
    req.set_note(c.note);
    grpc::Status s = admin_->SetCircuitOverride(Context().get(), req, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field)) << s.error_message();
  }
  EXPECT_EQ(Circuit("orders").state(), v1::CLOSED);
  EXPECT_TRUE(ServiceSummaryOf(*admin_, "orders").service().empty());  // Never created.
  EXPECT_TRUE(AuditEvents().empty());  // Nothing to audit.
  // A note of exactly 1024 bytes is fine.
  ASSERT_TRUE(Override("orders", v1::FORCE_OPEN, std::string(1024, 'n'), &resp).ok());
  EXPECT_EQ(Circuit("orders").state(), v1::OPEN);

  // Rejected RecordOutcomes count nothing: 9 failures after a rejected "10 successes" would
  // otherwise stay under the 50 % threshold.
  EXPECT_EQ(RecordOutcomes("payments", -10, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RecordOutcomes("payments", 0, 1000000001).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RecordOutcomes("Payments!", 10, 0).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ReportFailureResponse r;
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(Report(*retry_, FirstFailure("payments", absl::StrCat("p-", i)), &r).ok());
  }
  EXPECT_EQ(Circuit("payments").state(), v1::OPEN);  // 10 of 10.
  v1::GetCircuitRequest bad;
  bad.set_service("no spaces");
  v1::GetCircuitResponse got;
  grpc::Status s = retry_->GetCircuit(Context().get(), bad, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("service"));
}

}  // namespace
}  // namespace retryd::testing
