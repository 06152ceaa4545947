// Metrics: retryd's Prometheus metrics. Owns a prometheus-cpp Registry, the families below and,
// once Serve() is called, an Exposer (prometheus-cpp's own civetweb HTTP server) on the metrics
// address with the text format at /metrics: retryd's families only (metrics_page.h keeps out the
// Exposer's own, whose latency summary is in microseconds).
//
// Names follow Prometheus conventions: retryd_ prefix, base units (seconds), _total counters.
// `service` is the only per-tenant label; no per-message labels; error_code label values are
// capped at kMaxErrorCodesPerService per service (later codes are counted as "other").
//
//   counters   retryd_failures_reported_total{service,error_class}
//              retryd_failures_by_error_code_total{service,error_code}
//              retryd_decisions_total{service,decision,reason}
//              retryd_duplicate_reports_total{service}
//              retryd_lease_expirations_total{service}
//              retryd_replay_envelopes_total{service,outcome}
//              retryd_dead_letters_removed_total{service,cause}  retention trims and purges
//              retryd_gauge_read_failures_total{source}   scrapes that left out gauges whose
//                                                         source (engine|store|replays) failed
//   histograms retryd_retry_success_attempts{service}          attempt number of the success
//              retryd_dispatch_lateness_seconds{service}       lease time - next_retry_at
//              retryd_grpc_server_handling_seconds{grpc_service,grpc_method,grpc_code}
//              retryd_store_commit_duration_seconds, retryd_store_commit_batch_requests,
//              retryd_store_sync_duration_seconds
//   gauges     retryd_scheduled_envelopes, retryd_leased_envelopes, retryd_dead_letters,
//              retryd_dead_letter_oldest_age_seconds,
//              retryd_policy_dead_letter_escalation_age_seconds   (all {service}, computed at
//              scrape time from a GaugeSource, so they are right after a restart)
//              retryd_circuit_state{service,state}, retryd_circuit_override{service,mode},
//              retryd_retry_budget_remaining{service}, retryd_replays_running,
//              retryd_replay_matched_envelopes{replay}, retryd_replay_handled_envelopes{replay},
//              retryd_build_info{version}
//
// Threading: everything is thread-safe. Handles are cached per service (one mutex-guarded hash
// lookup per event) because prometheus-cpp's Family::Add is itself a locked map lookup plus
// label hashing.
#ifndef RETRYD_SERVER_METRICS_METRICS_H_
#define RETRYD_SERVER_METRICS_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/dlq/dlq_counters.h"
#include "server/engine/engine_observer.h"
#include "server/metrics/metrics_page.h"

namespace prometheus {
class Exposer;
}

namespace retryd {

// One service's gauges as of a scrape.
struct ServiceGauges {
  std::string service;
  int64_t scheduled = 0;
  int64_t leased = 0;
  int64_t dead = 0;
  // Age of the oldest dead letter; ZeroDuration when there is none; nullopt when it could not be
  // read for this scrape (its sample is then left out, not shown as 0).
  std::optional<absl::Duration> oldest_dead_age = absl::ZeroDuration();
  // The service's policy's dead_letter.escalation_age (alert threshold).
  absl::Duration escalation_age = absl::ZeroDuration();
};

// One unfinished replay's progress.
struct ReplayFigures {
  std::string name;     // "replays/<id>".
  int64_t matched = 0;  // Dead letters matching its filter when it started.
  int64_t handled = 0;  // Replayed or skipped so far.
};

class Metrics final : public EngineObserver, public DlqObserver {
 public:
  static constexpr int kMaxErrorCodesPerService = 20;
  // Most distinct gRPC methods labelled by name; later ones (clients probing unknown methods)
  // are labelled "other".
  static constexpr int kMaxRpcMethods = 64;

  // Circuit states and override modes, numbered as retryd.v1.CircuitState / CircuitOverride
  // (static_cast a proto or domain value of the same numbering).
  enum class Circuit : int { kClosed = 1, kOpen = 2, kHalfOpen = 3 };
  enum class CircuitOverride : int { kAuto = 1, kForceOpen = 2, kForceClosed = 3 };
  enum class ReplayOutcome : int { kReplayed = 0, kSkippedBlocked = 1, kFailed = 2 };

  // Returns the per-service gauges at scrape time (called on the exposer's HTTP thread).
  using GaugeSource = std::function<std::vector<ServiceGauges>()>;

  explicit Metrics(std::string version);
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Where the per-service gauges come from. Call before Serve().
  void SetGaugeSource(GaugeSource source);
  // Starts the HTTP exposer on `address` ("host:port"; port 0 picks a free one) serving
  // /metrics. UNAVAILABLE if it cannot listen there.
  absl::Status Serve(const std::string& address);
  // Stops the HTTP exposer (civetweb takes about a second to stop, so shutdown runs this on its
  // own thread, alongside the gRPC drain). Not concurrently with Serve or port.
  void StopServing();
  // The port Serve() listens on (0 before Serve).
  int port() const;
  // The text exposition format, as a scrape would get it (tests, debugging).
  std::string Scrape() const;

  // Creates every per-service series of `service` at 0 (counters, histograms), so that rate() and
  // increase() see its first event. Called at start-up for the configured and stored services;
  // other services get theirs on first sight.
  void RegisterService(absl::string_view service);

  // ---- EngineObserver (writer thread; OnSync on the syncer thread) ----
  void OnDecision(const Envelope& e, const Failure& failure, const Decision& decision,
                  bool lease_expired) override;
  void OnDuplicateFailure(const Envelope& existing) override;
  void OnLeased(const Envelope& e, absl::Duration lateness) override;
  void OnRetrySucceeded(const Envelope& e, int attempt) override;
  void OnCommit(absl::Duration duration, int requests, bool ok) override;
  void OnSync(absl::Duration duration) override;

  // ---- Circuit, budget and replay (set by their owners; any thread) ----
  // Sets retryd_circuit_state{service,state}: 1 for `state`, 0 for the other two.
  void SetCircuitState(absl::string_view service, Circuit state);
  // Sets retryd_circuit_override{service,mode}: 1 for `mode`, 0 for the others.
  void SetCircuitOverride(absl::string_view service, CircuitOverride mode);
  // Sets retryd_retry_budget_remaining{service}: retries the budget still allows in its window.
  void SetBudgetRemaining(absl::string_view service, double remaining);
  // Removes every retryd_circuit_state, retryd_circuit_override and retryd_retry_budget_remaining
  // series: the guards could not be read for this scrape, and a value left from an earlier one
  // must not pass for a current one. The next Set* call creates them again.
  void ClearGuards();
  // Adds one to retryd_gauge_read_failures_total{source}: a scrape left out the gauges that come
  // from `source` ("engine": circuits and budgets; "store": the oldest dead-letter age;
  // "replays": the replay progress gauges).
  void CountGaugeReadFailure(absl::string_view source);
  // Adds `n` to retryd_replay_envelopes_total{service,outcome}.
  void AddReplayEnvelopes(absl::string_view service, ReplayOutcome outcome, int64_t n);
  // Sets retryd_replays_running and the per-replay progress gauges to `running` (the unfinished
  // replays); series of replays no longer in it are removed.
  void SetReplays(const std::vector<ReplayFigures>& running);
  // Removes retryd_replays_running and the per-replay progress series: the replays could not be
  // read for this scrape. The next SetReplays creates them again.
  void ClearReplays();

  // ---- DlqObserver (any thread) ----
  void OnDeadLettersRemoved(const std::string& service, const char* cause, int64_t n) override;
  void OnReplayed(const std::string& service, int64_t replayed, int64_t skipped_blocked) override;

  // ---- RPCs (any thread) ----
  // Records one finished RPC. `full_method` is "/package.Service/Method".
  void ObserveRpc(absl::string_view full_method, int grpc_code, absl::Duration latency);

 private:
  struct ServiceHandles;
  struct RpcHandles;
  class GaugeCollector;

  ServiceHandles& Service(absl::string_view service) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<GaugeCollector> gauges_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::unique_ptr<MetricsPageRoute> page_route_;  // Before exposer_ is reset: see StopServing.

  prometheus::Family<prometheus::Counter>& failures_;
  prometheus::Family<prometheus::Counter>& failures_by_code_;
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& duplicates_;
  prometheus::Family<prometheus::Counter>& expirations_;
  prometheus::Family<prometheus::Counter>& replay_envelopes_;
  prometheus::Family<prometheus::Histogram>& success_attempts_;
  prometheus::Family<prometheus::Histogram>& lateness_;
  prometheus::Family<prometheus::Histogram>& rpc_seconds_;
  prometheus::Family<prometheus::Histogram>& commit_seconds_;
  prometheus::Family<prometheus::Histogram>& commit_batch_;
  prometheus::Family<prometheus::Histogram>& sync_seconds_;
  prometheus::Family<prometheus::Gauge>& circuit_state_;
  prometheus::Family<prometheus::Gauge>& circuit_override_;
  prometheus::Family<prometheus::Gauge>& budget_remaining_;
  prometheus::Family<prometheus::Counter>& dead_letters_removed_;
  prometheus::Family<prometheus::Counter>& gauge_read_failures_;
  prometheus::Family<prometheus::Gauge>& replay_matched_;
  prometheus::Family<prometheus::Gauge>& replay_handled_;
  prometheus::Family<prometheus::Gauge>& replays_running_;
  prometheus::Family<prometheus::Gauge>& build_info_;
  prometheus::Histogram& commit_seconds_all_;
  prometheus::Histogram& commit_batch_all_;
  prometheus::Histogram& sync_seconds_all_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<ServiceHandles>> services_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<RpcHandles>> rpcs_ ABSL_GUARDED_BY(mu_);
  // Per unfinished replay: its matched and handled gauges.
  absl::flat_hash_map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> replays_
      ABSL_GUARDED_BY(mu_);
  // The retryd_replays_running series; null while left out (ClearReplays).
  prometheus::Gauge* replays_running_value_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace retryd

#endif  // RETRYD_SERVER_METRICS_METRICS_H_
