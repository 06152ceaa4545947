// metrics_micro: the cost of retryd's metric hooks in isolation (single thread, no contention),
// the per-request work the metrics add on the engine's writer thread and on an RPC's completion:
//   OnDecision (mutex, service lookup, error_code lookup, 2 counter increments), OnLeased and
//   OnRetrySucceeded (mutex, lookup, histogram observe), ObserveRpc (mutex, method lookup,
//   histogram observe), OnCommit (2 histogram observes, once per batch).
// Prints one JSON object: nanoseconds per call of each, median of 5 repetitions.
//   build/bench/metrics_micro [--calls N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "server/metrics/metrics.h"

namespace {

double NsPerCall(int64_t calls, const std::function<void(int64_t)>& fn) {
  std::vector<double> reps;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < calls; ++i) fn(i);
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
    reps.push_back(ns.count() / static_cast<double>(calls));
  }
  std::sort(reps.begin(), reps.end());
  return reps[reps.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t calls = 1000000;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--calls") == 0) calls = std::atoll(argv[i + 1]);
  }
  retryd::Metrics m("bench");
  // A realistic spread: 20 services, 5 error codes each.
  std::vector<retryd::Envelope> envelopes(20);
  for (size_t i = 0; i < envelopes.size(); ++i) envelopes[i].service = "service-" + std::to_string(i);
  std::vector<retryd::Failure> failures(5);
  for (size_t i = 0; i < failures.size(); ++i) failures[i].error_code = "ERROR_CODE_" + std::to_string(i);
  retryd::Decision d;
  d.kind = retryd::DecisionKind::kScheduled;
  d.error_class = retryd::ErrorClass::kTransient;

  const double decision = NsPerCall(calls, [&](int64_t i) {
    m.OnDecision(envelopes[i % 20], failures[i % 5], d, false);
  });
  const double leased = NsPerCall(calls, [&](int64_t i) {
    m.OnLeased(envelopes[i % 20], absl::Milliseconds(i % 100));
  });
  const double succeeded = NsPerCall(calls, [&](int64_t i) { m.OnRetrySucceeded(envelopes[i % 20], 2); });
  const double rpc = NsPerCall(calls, [&](int64_t i) {
    m.ObserveRpc("/retryd.v1.RetryService/ReportFailure", 0, absl::Microseconds(i % 1000));
  });
  const double commit = NsPerCall(calls, [&](int64_t i) { m.OnCommit(absl::Microseconds(500), 64, true); });
  std::printf(
      "{\"mode\":\"metrics_micro\",\"calls\":%lld,\"on_decision_ns\":%.1f,\"on_leased_ns\":%.1f,"
      "\"on_retry_succeeded_ns\":%.1f,\"observe_rpc_ns\":%.1f,\"on_commit_ns\":%.1f}\n",
      static_cast<long long>(calls), decision, leased, succeeded, rpc, commit);
  return 0;
}
