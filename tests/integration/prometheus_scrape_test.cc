// A real Prometheus scrapes the real retryd: Debian's `prometheus` (scripts/install-deps.sh test)
// runs on a free loopback port with a 1 s scrape interval and retryd's alert rules loaded; the
// test drives known traffic over gRPC and asserts through Prometheus's HTTP query API
// (/api/v1/query) that the series hold the expected values, then kill -9s and restarts retryd on
// the same metrics port and asserts that the gauges still come from the store. Every wait polls
// with a deadline; both processes are stopped at the end.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/testing/requests.h"
#include "tests/testing/server_process.h"

namespace retryd::testing {
namespace {

constexpr char kConfig[] = R"json({
  "policies": [
    {"name": "default", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"}},
    {"name": "billing", "maxAttempts": 3,
     "backoff": {"initial": "0.2s", "multiplier": 2, "max": "1s", "jitter": "NONE"},
     "deadLetter": {"escalationAge": "600s"},
     "budget": {"window": "600s", "ratio": 0.2, "minRetriesPerWindow": 50}}
  ]
})json";

std::string PrometheusBin() {
  const char* bin = getenv("PROMETHEUS_BIN");
  return bin != nullptr ? bin : "/usr/bin/prometheus";
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

// Prometheus as a child process, stopped (SIGTERM, then SIGKILL) when destroyed.
class PrometheusProcess {
 public:
  // Scrapes `target` every second; loads `rules_file` when it is not empty.
  static absl::StatusOr<std::unique_ptr<PrometheusProcess>> Start(const std::string& dir,
                                                                   const std::string& target,
                                                                   const std::string& rules_file) {
    std::unique_ptr<PrometheusProcess> p(new PrometheusProcess());
    p->port_ = FreePort();
    p->log_path_ = dir + "/prometheus.log";
    const std::string config = dir + "/prometheus.yml";
    std::string yaml = absl::StrCat(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n",
        "scrape_configs:\n  - job_name: retryd\n    static_configs:\n      - targets: ['", target,
        "']\n");
    if (!rules_file.empty()) yaml += absl::StrCat("rule_files:\n  - ", rules_file, "\n");
    WriteFile(config, yaml);
    std::vector<std::string> args = {PrometheusBin(),
                                     "--config.file=" + config,
                                     "--storage.tsdb.path=" + dir + "/tsdb",
                                     absl::StrCat("--web.listen-address=127.0.0.1:", p->port_),
                                     "--log.level=warn"};
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      FILE* log = freopen(p->log_path_.c_str(), "a", stderr);
      (void)log;
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    p->pid_ = pid;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (absl::Now() < deadline) {
      if (HttpGet(p->port_, "/-/ready").ok()) return p;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        p->pid_ = -1;
        return absl::InternalError(absl::StrCat("prometheus exited during start-up:\n",
                                                ReadFile(p->log_path_)));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::DeadlineExceededError(
        absl::StrCat("prometheus not ready within 30s:\n", ReadFile(p->log_path_)));
  }

  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    int status = 0;
    while (absl::Now() < deadline) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) return;
      absl::SleepFor(absl::Milliseconds(20));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }

  // The result vector of an instant query.
  absl::StatusOr<nlohmann::json> Query(const std::string& promql) const {
    absl::StatusOr<std::string> body = HttpGet(port_, "/api/v1/query?query=" + UrlEncode(promql));
    if (!body.ok()) return body.status();
    nlohmann::json j = nlohmann::json::parse(*body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || j.value("status", "") != "success") {
      return absl::InternalError(absl::StrCat("query ", promql, ": ", *body));
    }
    return j["data"]["result"];
  }

  // Polls `promql` until its only sample equals `want` or `timeout` passes; returns the last
  // answer seen, for the failure message.
  std::string WaitForValue(const std::string& promql, double want,
                           absl::Duration timeout = absl::Seconds(30)) const {
    const absl::Time deadline = absl::Now() + timeout;
    std::string last;
    while (absl::Now() < deadline) {
      absl::StatusOr<nlohmann::json> r = Query(promql);
      if (r.ok()) {
        last = r->dump();
        if (r->size() == 1 && std::stod((*r)[0]["value"][1].get<std::string>()) == want) return "";
      } else {
        last = r.status().ToString();
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    return absl::StrCat(promql, " != ", want, " within ", absl::FormatDuration(timeout),
                        "; last answer: ", last);
  }

  std::string log() const { return ReadFile(log_path_); }
  int port() const { return port_; }

 private:
  PrometheusProcess() = default;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

v1::ReportFailureRequest Permanent(const std::string& service, const std::string& id) {
  v1::ReportFailureRequest req = FirstFailure(service, id, "BAD_SCHEMA");
  req.mutable_failure()->set_error_class(v1::PERMANENT);
  return req;
}

TEST(PrometheusScrapeTest, SeriesHoldTheTrafficAndGaugesSurviveARestart) {
  ASSERT_EQ(access(PrometheusBin().c_str(), X_OK), 0)
      << PrometheusBin() << " is missing: install it with scripts/install-deps.sh test "
      << "(Debian package prometheus) or set PROMETHEUS_BIN";
  const std::string dir = MakeTempDir();
  const int metrics_port = FreePort();
  auto server = ServerProcess::Start(
      dir, kConfig, {"--metrics-addr", absl::StrCat("127.0.0.1:", metrics_port)});
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_EQ((*server)->metrics_port(), metrics_port);
  auto prom = PrometheusProcess::Start(dir, absl::StrCat("127.0.0.1:", metrics_port),
                                       RETRYD_SOURCE_DIR "/helm/retryd/files/retryd-rules.yaml");
  ASSERT_TRUE(prom.ok()) << prom.status();
  auto retry = (*server)->RetryStub();

  // Known traffic: 3 permanent failures (dead letters), 3 transient ones that get leased (one
  // succeeds, two stay leased), 1 transient failure of another service left scheduled, and one
  // invalid request.
  v1::ReportFailureResponse resp;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Report(*retry, Permanent("billing", absl::StrCat("dead-", i)), &resp).ok());
    EXPECT_EQ(resp.decision().kind(), v1::DECISION_DEAD_LETTERED);
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Report(*retry, FirstFailure("billing", absl::StrCat("t-", i)), &resp).ok());
  }
  ASSERT_TRUE(Report(*retry, FirstFailure("orders", "o-1"), &resp).ok());
  v1::ReportFailureRequest bad = FirstFailure("billing", "bad");
  bad.mutable_envelope()->set_service("Not A Service");
  EXPECT_EQ(Report(*retry, bad, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const v1::LeaseResponse leased =
      LeaseUntil(*retry, "billing", 3, absl::Seconds(10), /*visibility=*/absl::Seconds(120));
  ASSERT_EQ(leased.envelopes_size(), 3);
  ASSERT_TRUE(Succeed(*retry, leased.envelopes(0)).ok());

  const PrometheusProcess& p = **prom;
  EXPECT_EQ(p.WaitForValue(R"(up{job="retryd"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_dead_letters{service="billing"})", 3), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_leased_envelopes{service="billing"})", 2), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_scheduled_envelopes{service="billing"})", 0), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_scheduled_envelopes{service="orders"})", 1), "");
  EXPECT_EQ(p.WaitForValue(
                R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="non_retryable"})", 3),
            "");
  EXPECT_EQ(p.WaitForValue(
                R"(retryd_decisions_total{service="billing",decision="scheduled",reason="none"})", 3),
            "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_failures_by_error_code_total{service="billing",error_code="BAD_SCHEMA"})", 3), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_failures_reported_total{service="billing",error_class="permanent"})", 3), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_dispatch_lateness_seconds_count{service="billing"})", 3), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_retry_success_attempts_bucket{service="billing",le="2"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_policy_dead_letter_escalation_age_seconds{service="billing"})", 600), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_dead_letter_oldest_age_seconds{service="billing"} > bool 0)", 1), "");
  EXPECT_EQ(p.WaitForValue(
                R"(retryd_grpc_server_handling_seconds_count{grpc_service="retryd.v1.RetryService",grpc_method="ReportFailure",grpc_code="OK"})", 7),
            "");
  EXPECT_EQ(p.WaitForValue(
                R"(retryd_grpc_server_handling_seconds_count{grpc_method="ReportFailure",grpc_code="InvalidArgument"})", 1),
            "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_grpc_server_handling_seconds_count{grpc_method="ReportSuccess",grpc_code="OK"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(sum(retryd_store_commit_batch_requests_sum) >= bool 9)", 1), "");

  // Circuits and budgets are read from the engine at scrape time. An operator opens orders'
  // circuit; billing's budget left is what ListServices says (50 minus the retries it booked).
  auto admin = (*server)->AdminStub();
  v1::SetCircuitOverrideRequest force_open;
  force_open.set_service("orders");
  force_open.set_override(v1::FORCE_OPEN);
  v1::SetCircuitOverrideResponse override_resp;
  ASSERT_TRUE(admin->SetCircuitOverride(Context().get(), force_open, &override_resp).ok());
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_state{service="orders",state="open"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_state{service="orders",state="closed"})", 0), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_override{service="orders",mode="force_open"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_state{service="billing",state="closed"})", 1), "");
  v1::ListServicesResponse services;
  ASSERT_TRUE(admin->ListServices(Context().get(), v1::ListServicesRequest(), &services).ok());
  int64_t billing_budget = -2;
  for (const auto& s : services.services()) {
    if (s.service() == "billing") billing_budget = s.budget_remaining();
  }
  ASSERT_GE(billing_budget, 0);
  ASSERT_LT(billing_budget, 50);
  EXPECT_EQ(p.WaitForValue(R"(retryd_retry_budget_remaining{service="billing"})",
                           static_cast<double>(billing_budget)),
            "");

  // The rules load and evaluate against real series without errors.
  absl::StatusOr<std::string> rules = HttpGet(p.port(), "/api/v1/rules");
  ASSERT_TRUE(rules.ok()) << rules.status();
  ASSERT_FALSE(nlohmann::json::parse(*rules)["data"]["groups"].empty()) << *rules;
  absl::SleepFor(absl::Seconds(2));  // At least one evaluation after the traffic.
  rules = HttpGet(p.port(), "/api/v1/rules");
  ASSERT_TRUE(rules.ok()) << rules.status();
  int evaluated = 0;
  const nlohmann::json evaluated_rules = nlohmann::json::parse(*rules);
  for (const auto& g : evaluated_rules["data"]["groups"]) {
    for (const auto& r : g["rules"]) {
      EXPECT_EQ(r.value("health", ""), "ok") << r.dump();
      ++evaluated;
    }
  }
  EXPECT_GE(evaluated, 6);

  // kill -9 and restart on the same metrics port: counters start again, gauges come from the
  // store. One more dead letter after the restart tells the new process's scrapes apart (4 dead
  // letters, 1 non-retryable decision since start).
  (*server)->Kill();
  ASSERT_TRUE((*server)->Restart().ok());
  ASSERT_EQ((*server)->metrics_port(), metrics_port);
  retry = (*server)->RetryStub();
  ASSERT_TRUE(Report(*retry, Permanent("billing", "dead-after-restart"), &resp).ok());
  EXPECT_EQ(p.WaitForValue(
                R"(retryd_decisions_total{service="billing",decision="dead_lettered",reason="non_retryable"})", 1),
            "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_dead_letters{service="billing"})", 4), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_leased_envelopes{service="billing"})", 2), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_scheduled_envelopes{service="orders"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(up{job="retryd"})", 1), "");
  // The override is stored: the restarted process still reports orders' circuit open.
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_override{service="orders",mode="force_open"})", 1), "");
  EXPECT_EQ(p.WaitForValue(R"(retryd_circuit_state{service="orders",state="open"})", 1), "");

  prom->reset();
  server->reset();
  if (!HasFailure()) RemoveTree(dir);
}

}  // namespace
}  // namespace retryd::testing
