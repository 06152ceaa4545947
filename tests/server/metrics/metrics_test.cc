// Metrics: the families and label sets the engine hooks and the circuit/budget/replay setters
// produce, the error_code cap, RPC method parsing and its cap, the scrape-time gauges (also after
// a restart of a real engine over a real SQLite store), and the HTTP exposer.
#include "server/metrics/metrics.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/metrics/gauge_source.h"
#include "server/store/sqlite_store.h"
#include "server/util/random.h"
#include "tests/testing/server_process.h"

namespace retryd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// "name{b="1",a="2"}" -> "name{a="2",b="1"}": the text format orders labels by name, the tests
// write them in their natural order. (Label values in these tests hold no commas.)
std::string Canon(absl::string_view series) {
  const size_t brace = series.find('{');
  if (brace == absl::string_view::npos) return std::string(series);
  std::vector<std::string> labels =
      absl::StrSplit(series.substr(brace + 1, series.size() - brace - 2), ',');
  std::sort(labels.begin(), labels.end());
  return absl::StrCat(series.substr(0, brace), "{", absl::StrJoin(labels, ","), "}");
}

// Series ("name{labels}", labels sorted) -> value, from the text format.
std::map<std::string, double> Parse(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &v)) continue;
    out[Canon(line.substr(0, space))] = v;
  }
  return out;
}

// The value of a series in a parsed scrape, or -1 when it is absent.
double At(const std::map<std::string, double>& parsed, const std::string& series) {
  auto it = parsed.find(Canon(series));
  return it == parsed.end() ? -1 : it->second;
}

// The value of a series, or -1 when it is absent.
double Value(const Metrics& m, const std::string& series) {
  const auto parsed = Parse(m.Scrape());
  auto it = parsed.find(Canon(series));
  return it == parsed.end() ? -1 : it->second;
}

Envelope Env(const std::string& service) {
  Envelope e;
  e.service = service;
  e.message_id = "m";
  return e;
}

Failure Fail(const std::string& code) {
  Failure f;
  f.error_code = code;
  return f;
}

Decision Scheduled() {
  Decision d;
  d.kind = DecisionKind::kScheduled;
  d.error_class = ErrorClass::kTransient;
  return d;
}

Decision Dead(DeadLetterReason reason, ErrorClass cls) {
  Decision d;
  d.kind = DecisionKind::kDeadLettered;
  d.reason = reason;
  d.error_class = cls;
  return d;
}

TEST(MetricsTest, DecisionsAndFailuresAreCountedByServiceDecisionReasonAndClass) {
  Metrics m("1.2.3");
  m.OnDecision(Env("billing"), Fail("UPSTREAM_TIMEOUT"), Scheduled(), false);
  m.OnDecision(Env("billing"), Fail("UPSTREAM_TIMEOUT"), Scheduled(), false);
  m.OnDecision(Env("billing"), Fail("BAD_SCHEMA"),
               Dead(DeadLetterReason::kNonRetryable, ErrorClass::kPermanent), false);
  m.OnDecision(Env("orders"), Fail("X"),
               Dead(DeadLetterReason::kRetryExhausted, ErrorClass::kTransient), false);

  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="scheduled",reason="none"})"), 2);
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="non_retryable"})"), 1);
  // Every label set of a known service exists from its first event, at 0.
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="budget_exhausted"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="orders",decision="dead_lettered",reason="retry_exhausted"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_failures_reported_total{service="billing",error_class="transient"})"), 2);
  EXPECT_EQ(Value(m, R"(retryd_failures_reported_total{service="billing",error_class="permanent"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_failures_reported_total{service="billing",error_class="recoverable"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_failures_by_error_code_total{service="billing",error_code="UPSTREAM_TIMEOUT"})"), 2);
  EXPECT_EQ(Value(m, R"(retryd_failures_by_error_code_total{service="billing",error_code="BAD_SCHEMA"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_build_info{version="1.2.3"})"), 1);
}

TEST(MetricsTest, RegisteredServicesHaveTheirSeriesAtZeroBeforeAnyEvent) {
  Metrics m("v");
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="scheduled",reason="none"})"), -1);
  m.RegisterService("billing");
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="scheduled",reason="none"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="retry_exhausted"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_failures_reported_total{service="billing",error_class="permanent"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_dispatch_lateness_seconds_count{service="billing"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_retry_success_attempts_count{service="billing"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_lease_expirations_total{service="billing"})"), 0);
}

TEST(MetricsTest, LeaseExpiriesCountAsDecisionsAndExpirationsNotAsReportedFailures) {
  Metrics m("v");
  m.OnDecision(Env("billing"), Fail("LEASE_EXPIRED"), Scheduled(), /*lease_expired=*/true);
  EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="scheduled",reason="none"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_lease_expirations_total{service="billing"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_failures_reported_total{service="billing",error_class="transient"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_failures_by_error_code_total{service="billing",error_code="LEASE_EXPIRED"})"), -1);
}

TEST(MetricsTest, ErrorCodesAreCappedPerServiceAndTheRestIsOther) {
  Metrics m("v");
  for (int i = 0; i < Metrics::kMaxErrorCodesPerService + 5; ++i) {
    m.OnDecision(Env("billing"), Fail(absl::StrCat("CODE_", i)), Scheduled(), false);
  }
  // A code seen before the cap keeps its own series.
  m.OnDecision(Env("billing"), Fail("CODE_0"), Scheduled(), false);
  // The cap is per service: another service gets its own 20.
  m.OnDecision(Env("orders"), Fail("CODE_24"), Scheduled(), false);

  const auto parsed = Parse(m.Scrape());
  int billing_codes = 0;
  for (const auto& [series, v] : parsed) {
    if (absl::StartsWith(series, R"(retryd_failures_by_error_code_total{error_code=)") &&
        absl::StrContains(series, R"(service="billing")")) {
      ++billing_codes;
    }
  }
  EXPECT_EQ(billing_codes, Metrics::kMaxErrorCodesPerService + 1);  // 20 codes + other.
  EXPECT_EQ(At(parsed, R"(retryd_failures_by_error_code_total{service="billing",error_code="other"})"), 5);
  EXPECT_EQ(At(parsed, R"(retryd_failures_by_error_code_total{service="billing",error_code="CODE_0"})"), 2);
  EXPECT_EQ(parsed.count(Canon(R"(retryd_failures_by_error_code_total{service="billing",error_code="CODE_20"})")), 0u);
  EXPECT_EQ(At(parsed, R"(retryd_failures_by_error_code_total{service="orders",error_code="CODE_24"})"), 1);
}

TEST(MetricsTest, DuplicatesLatenessSuccessAttemptsAndCommits) {
  Metrics m("v");
  m.OnDuplicateFailure(Env("billing"));
  m.OnLeased(Env("billing"), absl::Milliseconds(1500));
  m.OnLeased(Env("billing"), absl::Milliseconds(-3));  // Clock skew: counted as on time.
  m.OnRetrySucceeded(Env("billing"), 2);
  m.OnRetrySucceeded(Env("billing"), 6);
  m.OnCommit(absl::Milliseconds(3), 17, true);

  const auto p = Parse(m.Scrape());
  EXPECT_EQ(At(p, R"(retryd_duplicate_reports_total{service="billing"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_dispatch_lateness_seconds_count{service="billing"})"), 2);
  EXPECT_EQ(At(p, R"(retryd_dispatch_lateness_seconds_bucket{service="billing",le="0.005"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_dispatch_lateness_seconds_bucket{service="billing",le="1"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_dispatch_lateness_seconds_bucket{service="billing",le="2.5"})"), 2);
  EXPECT_DOUBLE_EQ(At(p, R"(retryd_dispatch_lateness_seconds_sum{service="billing"})"), 1.5);
  EXPECT_EQ(At(p, R"(retryd_retry_success_attempts_bucket{service="billing",le="2"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_retry_success_attempts_bucket{service="billing",le="5"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_retry_success_attempts_bucket{service="billing",le="7"})"), 2);
  EXPECT_EQ(At(p, R"(retryd_store_commit_batch_requests_bucket{le="16"})"), 0);
  EXPECT_EQ(At(p, R"(retryd_store_commit_batch_requests_bucket{le="32"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_store_commit_duration_seconds_bucket{le="0.0025"})"), 0);
  EXPECT_EQ(At(p, R"(retryd_store_commit_duration_seconds_bucket{le="0.005"})"), 1);
}

TEST(MetricsTest, CircuitBudgetAndReplaySetters) {
  Metrics m("v");
  m.SetCircuitState("billing", Metrics::Circuit::kOpen);
  EXPECT_EQ(Value(m, R"(retryd_circuit_state{service="billing",state="open"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_circuit_state{service="billing",state="closed"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_circuit_state{service="billing",state="half_open"})"), 0);
  m.SetCircuitState("billing", Metrics::Circuit::kHalfOpen);
  EXPECT_EQ(Value(m, R"(retryd_circuit_state{service="billing",state="open"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_circuit_state{service="billing",state="half_open"})"), 1);

  m.SetCircuitOverride("billing", Metrics::CircuitOverride::kForceOpen);
  EXPECT_EQ(Value(m, R"(retryd_circuit_override{service="billing",mode="force_open"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_circuit_override{service="billing",mode="auto"})"), 0);

  m.SetBudgetRemaining("billing", 42);
  EXPECT_EQ(Value(m, R"(retryd_retry_budget_remaining{service="billing"})"), 42);
  m.SetBudgetRemaining("billing", 0);
  EXPECT_EQ(Value(m, R"(retryd_retry_budget_remaining{service="billing"})"), 0);

  m.AddReplayEnvelopes("billing", Metrics::ReplayOutcome::kReplayed, 10);
  m.AddReplayEnvelopes("billing", Metrics::ReplayOutcome::kSkippedBlocked, 3);
  m.AddReplayEnvelopes("billing", Metrics::ReplayOutcome::kReplayed, 5);
  EXPECT_EQ(Value(m, R"(retryd_replay_envelopes_total{service="billing",outcome="replayed"})"), 15);
  EXPECT_EQ(Value(m, R"(retryd_replay_envelopes_total{service="billing",outcome="skipped_blocked"})"), 3);
  EXPECT_EQ(Value(m, R"(retryd_replay_envelopes_total{service="billing",outcome="failed"})"), 0);
  m.OnReplayed("billing", 2, 1);
  EXPECT_EQ(Value(m, R"(retryd_replay_envelopes_total{service="billing",outcome="replayed"})"), 17);
  EXPECT_EQ(Value(m, R"(retryd_replay_envelopes_total{service="billing",outcome="skipped_blocked"})"), 4);

  // Progress of the unfinished replays; a finished one's series go away.
  m.SetReplays({{"replays/1", 100, 40}, {"replays/2", 7, 0}});
  EXPECT_EQ(Value(m, "retryd_replays_running"), 2);
  EXPECT_EQ(Value(m, R"(retryd_replay_matched_envelopes{replay="replays/1"})"), 100);
  EXPECT_EQ(Value(m, R"(retryd_replay_handled_envelopes{replay="replays/1"})"), 40);
  m.SetReplays({{"replays/2", 7, 7}});
  EXPECT_EQ(Value(m, "retryd_replays_running"), 1);
  EXPECT_EQ(Value(m, R"(retryd_replay_handled_envelopes{replay="replays/2"})"), 7);
  EXPECT_THAT(m.Scrape(), Not(HasSubstr("replays/1")));
  m.SetReplays({});
  EXPECT_EQ(Value(m, "retryd_replays_running"), 0);
  // Replays that could not be read for a scrape are left out, not shown as 0 or as before.
  m.SetReplays({{"replays/3", 5, 1}});
  m.ClearReplays();
  EXPECT_EQ(Value(m, "retryd_replays_running"), -1);
  EXPECT_THAT(m.Scrape(), Not(HasSubstr("replays/3")));
  m.SetReplays({});
  EXPECT_EQ(Value(m, "retryd_replays_running"), 0);

  // What leaves the dead-letter queue without a replay is counted by cause.
  m.OnDeadLettersRemoved("billing", "retention", 5);
  m.OnDeadLettersRemoved("billing", "purge", 2);
  m.OnDeadLettersRemoved("billing", "purge", 1);
  EXPECT_EQ(Value(m, R"(retryd_dead_letters_removed_total{service="billing",cause="retention"})"), 5);
  EXPECT_EQ(Value(m, R"(retryd_dead_letters_removed_total{service="billing",cause="purge"})"), 3);
}

TEST(MetricsTest, RpcLatencyByServiceMethodAndCodeWithACapOnMethods) {
  Metrics m("v");
  m.ObserveRpc("/retryd.v1.RetryService/ReportFailure", 0, absl::Milliseconds(2));
  m.ObserveRpc("/retryd.v1.RetryService/ReportFailure", 3, absl::Milliseconds(1));
  m.ObserveRpc("/retryd.v1.RetryService/ReportFailure", 99, absl::Milliseconds(1));
  auto p = Parse(m.Scrape());
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_count{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="OK"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_count{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="InvalidArgument"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_count{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="Unknown"})"), 1);
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_bucket{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="OK",le="0.001"})"), 0);
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_bucket{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="OK",le="0.0025"})"), 1);

  for (int i = 0; i < Metrics::kMaxRpcMethods + 10; ++i) {
    m.ObserveRpc(absl::StrCat("/probe.Service/M", i), 12, absl::Milliseconds(1));
  }
  p = Parse(m.Scrape());
  int methods = 0;
  for (const auto& [series, v] : p) {
    if (absl::StartsWith(series, "retryd_grpc_server_handling_seconds_count{")) ++methods;
  }
  // 3 series of ReportFailure, 63 probe methods, and "other".
  EXPECT_EQ(methods, 3 + (Metrics::kMaxRpcMethods - 1) + 1);
  EXPECT_EQ(At(p, R"(retryd_grpc_server_handling_seconds_count{grpc_service="other",grpc_method="other",grpc_code="Unimplemented"})"), 11);
}

TEST(MetricsTest, GaugesComeFromTheSourceAtScrapeTime) {
  Metrics m("v");
  EXPECT_THAT(m.Scrape(), Not(HasSubstr("retryd_dead_letters{")));
  int64_t dead = 3;
  m.SetGaugeSource([&dead] {
    ServiceGauges g;
    g.service = "billing";
    g.scheduled = 7;
    g.leased = 2;
    g.dead = dead;
    g.oldest_dead_age = absl::Seconds(90);
    g.escalation_age = absl::Hours(24);
    return std::vector<ServiceGauges>{g};
  });
  EXPECT_EQ(Value(m, R"(retryd_dead_letters{service="billing"})"), 3);
  EXPECT_EQ(Value(m, R"(retryd_scheduled_envelopes{service="billing"})"), 7);
  EXPECT_EQ(Value(m, R"(retryd_leased_envelopes{service="billing"})"), 2);
  EXPECT_EQ(Value(m, R"(retryd_dead_letter_oldest_age_seconds{service="billing"})"), 90);
  EXPECT_EQ(Value(m, R"(retryd_policy_dead_letter_escalation_age_seconds{service="billing"})"), 86400);
  dead = 4;
  EXPECT_EQ(Value(m, R"(retryd_dead_letters{service="billing"})"), 4);
  m.SetGaugeSource(nullptr);
  EXPECT_EQ(Value(m, R"(retryd_dead_letters{service="billing"})"), -1);
}

class FixedClock final : public Clock {
 public:
  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1700000000);
};

// A real engine over a real SQLite store: the gauges after a restart are the store's, not counts
// since start.
TEST(MetricsTest, GaugeSourceIsRightAfterARestart) {
  const std::string dir = testing::MakeTempDir();
  Policy billing;
  billing.name = "billing";
  billing.dead_letter.escalation_age = absl::Minutes(30);
  Policy configured;
  configured.name = "quiet";
  absl::StatusOr<PolicySet> policies = PolicySet::Create({billing, configured});
  ASSERT_TRUE(policies.ok()) << policies.status();
  FixedClock clock;
  MtRandom rng;
  const absl::Time t0 = clock.Now();
  {
    auto store = SqliteStore::Open(dir);
    ASSERT_TRUE(store.ok()) << store.status();
    Metrics m("v");
    EngineOptions options;
    options.observer = &m;
    auto engine = Engine::Start(store->get(), &*policies, &clock, &rng, options);
    ASSERT_TRUE(engine.ok()) << engine.status();
    for (int i = 0; i < 3; ++i) {
      Envelope e = Env("billing");
      e.message_id = absl::StrCat("dead-", i);
      Failure f = Fail("BAD_SCHEMA");
      f.error_class = ErrorClass::kPermanent;
      absl::Notification done;
      (*engine)->ReportFailure(e, f, "", [&done](absl::StatusOr<Decision> d) {
        EXPECT_TRUE(d.ok());
        done.Notify();
      });
      done.WaitForNotification();
    }
    Envelope e = Env("billing");
    e.message_id = "scheduled";
    absl::Notification done;
    (*engine)->ReportFailure(e, Fail("UPSTREAM_TIMEOUT"), "",
                             [&done](absl::StatusOr<Decision>) { done.Notify(); });
    done.WaitForNotification();
    EXPECT_EQ(Value(m, R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="non_retryable"})"), 3);
    (*engine)->Stop();
  }
  clock.Set(t0 + absl::Seconds(120));
  auto store = SqliteStore::Open(dir);
  ASSERT_TRUE(store.ok()) << store.status();
  Metrics m("v");
  auto engine = Engine::Start(store->get(), &*policies, &clock, &rng, EngineOptions());
  ASSERT_TRUE(engine.ok()) << engine.status();
  m.SetGaugeSource(MakeGaugeSource(engine->get(), store->get(), &*policies, &clock));
  EXPECT_EQ(Value(m, R"(retryd_dead_letters{service="billing"})"), 3);
  EXPECT_EQ(Value(m, R"(retryd_scheduled_envelopes{service="billing"})"), 1);
  EXPECT_EQ(Value(m, R"(retryd_leased_envelopes{service="billing"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_dead_letter_oldest_age_seconds{service="billing"})"), 120);
  EXPECT_EQ(Value(m, R"(retryd_policy_dead_letter_escalation_age_seconds{service="billing"})"), 1800);
  // A configured service with no traffic yet has its series, at 0.
  EXPECT_EQ(Value(m, R"(retryd_dead_letters{service="quiet"})"), 0);
  EXPECT_EQ(Value(m, R"(retryd_dead_letter_oldest_age_seconds{service="quiet"})"), 0);
  m.SetGaugeSource(nullptr);
  (*engine)->Stop();
  testing::RemoveTree(dir);
}

TEST(MetricsTest, ServesTheTextFormatOverHttpAndRefusesATakenPort) {
  Metrics m("v");
  ASSERT_TRUE(m.Serve("127.0.0.1:0").ok());
  ASSERT_GT(m.port(), 0);
  m.SetBudgetRemaining("billing", 5);
  absl::StatusOr<std::string> body = testing::HttpGet(m.port(), "/metrics");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(*body, HasSubstr("retryd_retry_budget_remaining{service=\"billing\"} 5"));
  EXPECT_THAT(*body, HasSubstr("# TYPE retryd_build_info gauge"));

  Metrics other("v");
  absl::Status taken = other.Serve(absl::StrCat("127.0.0.1:", m.port()));
  EXPECT_EQ(taken.code(), absl::StatusCode::kUnavailable) << taken;
  EXPECT_THAT(std::string(taken.message()), HasSubstr("metrics_addr"));
}

}  // namespace
}  // namespace retryd
