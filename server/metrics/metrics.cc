#include "server/metrics/metrics.h"

#include <exception>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"
#include "server/metrics/metrics_page.h"
#include "prometheus/metric_family.h"
#include "prometheus/text_serializer.h"

namespace retryd {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

// Attempt numbers a retry succeeded on; the first retry is attempt 2.
const Histogram::BucketBoundaries& AttemptBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{1, 2, 3, 4, 5, 7, 10, 15, 20};
  return *b;
}
// Dispatch lateness: a due retry normally goes out within milliseconds of its time when a worker
// is waiting; seconds to minutes mean the workers do not keep up.
const Histogram::BucketBoundaries& LatenessBuckets() {
  static const auto* b =
      new Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
  return *b;
}
// RPC latency, including long-polls (Lease waits up to 20 s).
const Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30};
  return *b;
}
// A group commit writes the SQLite WAL; a sync is one fdatasync of it.
const Histogram::BucketBoundaries& CommitBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1};
  return *b;
}
const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b =
      new Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
  return *b;
}

// Label values of DeadLetterReason, indexed by its number.
constexpr std::array<const char*, 5> kReasons = {"none", "non_retryable", "retry_exhausted",
                                                 "deadline_exceeded", "budget_exhausted"};
// Label values of ErrorClass, indexed by its number.
constexpr std::array<const char*, 4> kClasses = {"unspecified", "transient", "recoverable",
                                                 "permanent"};
constexpr std::array<const char*, 3> kCircuitStates = {"closed", "open", "half_open"};
constexpr std::array<const char*, 3> kOverrideModes = {"auto", "force_open", "force_closed"};
constexpr std::array<const char*, 3> kReplayOutcomes = {"replayed", "skipped_blocked", "failed"};
// gRPC status code names (grpc::StatusCode 0..16), as go-grpc-prometheus spells them.
constexpr std::array<const char*, 17> kGrpcCodes = {
    "OK",        "Canceled",          "Unknown",          "InvalidArgument", "DeadlineExceeded",
    "NotFound",  "AlreadyExists",     "PermissionDenied", "ResourceExhausted",
    "FailedPrecondition", "Aborted",  "OutOfRange",       "Unimplemented",   "Internal",
    "Unavailable", "DataLoss",        "Unauthenticated"};

// `value` when it indexes an array of N label values, else `fallback`.
template <size_t N>
int Index(int value, int fallback = 0) {
  return value >= 0 && value < static_cast<int>(N) ? value : fallback;
}

prometheus::MetricFamily GaugeFamily(std::string name, std::string help) {
  prometheus::MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = prometheus::MetricType::Gauge;
  return f;
}

void AddGauge(prometheus::MetricFamily& f, const std::string& service, double value) {
  prometheus::ClientMetric m;
  m.label.push_back({"service", service});
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

}  // namespace

// Handles of one service, created on first sight and kept for the process's life.
struct Metrics::ServiceHandles {
  std::array<Counter*, kClasses.size()> failures{};
  // [0] = scheduled (reason none); [r] = dead_lettered with reason r.
  std::array<Counter*, kReasons.size()> decisions{};
  Counter* duplicates = nullptr;
  Counter* expirations = nullptr;
  Histogram* success_attempts = nullptr;
  Histogram* lateness = nullptr;
  absl::flat_hash_map<std::string, Counter*> error_codes;
  Counter* other_error_code = nullptr;
  // Set by the circuit, budget and replay owners; created on their first call.
  std::array<Gauge*, kCircuitStates.size()> circuit_state{};
  std::array<Gauge*, kOverrideModes.size()> circuit_override{};
  Gauge* budget_remaining = nullptr;
  std::array<Counter*, kReplayOutcomes.size()> replay_envelopes{};
};

// Handles of one gRPC method, one histogram per status code seen.
struct Metrics::RpcHandles {
  std::string service;
  std::string method;
  std::array<Histogram*, kGrpcCodes.size()> by_code{};
};

// The per-service gauges, computed at scrape time from the GaugeSource (engine counts and the
// store's oldest dead letter), so they are right after a restart and cost nothing between
// scrapes.
class Metrics::GaugeCollector final : public prometheus::Collectable {
 public:
  void set_source(GaugeSource source) {
    absl::MutexLock lock(&mu_);
    source_ = std::move(source);
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<ServiceGauges> gauges;
    {
      absl::MutexLock lock(&mu_);
      if (source_) gauges = source_();
    }
    auto scheduled = GaugeFamily("retryd_scheduled_envelopes",
                                 "Envelopes waiting for their next retry, per service.");
    auto leased = GaugeFamily("retryd_leased_envelopes",
                              "Envelopes leased to a worker right now, per service.");
    auto dead = GaugeFamily("retryd_dead_letters", "Dead letters kept, per service.");
    auto oldest = GaugeFamily("retryd_dead_letter_oldest_age_seconds",
                              "Age of the oldest dead letter (0 when there is none), per service.");
    auto escalation = GaugeFamily(
        "retryd_policy_dead_letter_escalation_age_seconds",
        "The policy's dead_letter.escalation_age: a dead letter older than this needs a human.");
    for (const ServiceGauges& g : gauges) {
      AddGauge(scheduled, g.service, static_cast<double>(g.scheduled));
      AddGauge(leased, g.service, static_cast<double>(g.leased));
      AddGauge(dead, g.service, static_cast<double>(g.dead));
      if (g.oldest_dead_age.has_value()) {
        AddGauge(oldest, g.service, absl::ToDoubleSeconds(*g.oldest_dead_age));
      }
      AddGauge(escalation, g.service, absl::ToDoubleSeconds(g.escalation_age));
    }
    std::vector<prometheus::MetricFamily> out;
    for (auto* f : {&scheduled, &leased, &dead, &oldest, &escalation}) out.push_back(std::move(*f));
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  GaugeSource source_ ABSL_GUARDED_BY(mu_);
};

Metrics::Metrics(std::string version)
    : registry_(std::make_shared<prometheus::Registry>()),
      gauges_(std::make_shared<GaugeCollector>()),
      failures_(BuildCounter()
                    .Name("retryd_failures_reported_total")
                    .Help("Failures reported by workers (first and leased; not duplicates, not "
                          "lease expiries), by the class retryd decided.")
                    .Register(*registry_)),
      failures_by_code_(BuildCounter()
                            .Name("retryd_failures_by_error_code_total")
                            .Help("Failures reported by workers by error_code; at most 20 codes "
                                  "per service, later ones are counted as \"other\".")
                            .Register(*registry_)),
      decisions_(BuildCounter()
                     .Name("retryd_decisions_total")
                     .Help("Decisions on failures (worker reports and lease expiries): "
                           "decision scheduled|dead_lettered, reason for dead letters.")
                     .Register(*registry_)),
      duplicates_(BuildCounter()
                      .Name("retryd_duplicate_reports_total")
                      .Help("First failures already recorded (answered duplicate = true).")
                      .Register(*registry_)),
      expirations_(BuildCounter()
                       .Name("retryd_lease_expirations_total")
                       .Help("Leases that expired before the worker reported an outcome.")
                       .Register(*registry_)),
      replay_envelopes_(BuildCounter()
                            .Name("retryd_replay_envelopes_total")
                            .Help("Dead letters handled by replays, by outcome "
                                  "replayed|skipped_blocked|failed.")
                            .Register(*registry_)),
      success_attempts_(BuildHistogram()
                            .Name("retryd_retry_success_attempts")
                            .Help("Attempt number on which a leased retry succeeded (the first "
                                  "retry is attempt 2).")
                            .Register(*registry_)),
      lateness_(BuildHistogram()
                    .Name("retryd_dispatch_lateness_seconds")
                    .Help("How long after its next_retry_at a due retry was leased.")
                    .Register(*registry_)),
      rpc_seconds_(BuildHistogram()
                       .Name("retryd_grpc_server_handling_seconds")
                       .Help("gRPC server call latency by method and status code (the _count is "
                             "the number of calls handled).")
                       .Register(*registry_)),
      commit_seconds_(BuildHistogram()
                          .Name("retryd_store_commit_duration_seconds")
                          .Help("Duration of one group commit of the store (the write to its "
                                "log; retryd_store_sync_duration_seconds is the fsync that "
                                "follows).")
                          .Register(*registry_)),
      commit_batch_(BuildHistogram()
                        .Name("retryd_store_commit_batch_requests")
                        .Help("Requests applied in one group commit.")
                        .Register(*registry_)),
      sync_seconds_(BuildHistogram()
                        .Name("retryd_store_sync_duration_seconds")
                        .Help("Duration of one fsync of the store's log, which makes every "
                              "commit before it durable; requests are answered after it.")
                        .Register(*registry_)),
      circuit_state_(BuildGauge()
                         .Name("retryd_circuit_state")
                         .Help("Circuit state per service: 1 for the current state "
                               "(closed|open|half_open), 0 for the others.")
                         .Register(*registry_)),
      circuit_override_(BuildGauge()
                            .Name("retryd_circuit_override")
                            .Help("Operator circuit override per service: 1 for the current mode "
                                  "(auto|force_open|force_closed).")
                            .Register(*registry_)),
      budget_remaining_(BuildGauge()
                            .Name("retryd_retry_budget_remaining")
                            .Help("Retries the service's retry budget still allows in its window.")
                            .Register(*registry_)),
      dead_letters_removed_(BuildCounter()
                                .Name("retryd_dead_letters_removed_total")
                                .Help("Dead letters deleted, by cause retention (the policy's "
                                      "dead_letter.retention passed) or purge (an operator).")
                                .Register(*registry_)),
      gauge_read_failures_(BuildCounter()
                               .Name("retryd_gauge_read_failures_total")
                               .Help("Scrapes that left out gauges because their source "
                                     "(engine: circuits and budgets; store: the oldest "
                                     "dead-letter age; replays: replay progress) could not be "
                                     "read.")
                               .Register(*registry_)),
      replay_matched_(BuildGauge()
                          .Name("retryd_replay_matched_envelopes")
                          .Help("Dead letters an unfinished replay matched when it started.")
                          .Register(*registry_)),
      replay_handled_(BuildGauge()
                          .Name("retryd_replay_handled_envelopes")
                          .Help("Dead letters an unfinished replay has replayed or skipped.")
                          .Register(*registry_)),
      replays_running_(BuildGauge()
                           .Name("retryd_replays_running")
                           .Help("Replays not yet finished (pending or running).")
                           .Register(*registry_)),
      build_info_(BuildGauge()
                      .Name("retryd_build_info")
                      .Help("Always 1; the version label says which retryd is running.")
                      .Register(*registry_)),
      commit_seconds_all_(commit_seconds_.Add({}, CommitBuckets())),
      commit_batch_all_(commit_batch_.Add({}, BatchBuckets())),
      sync_seconds_all_(sync_seconds_.Add({}, CommitBuckets())) {
  build_info_.Add({{"version", std::move(version)}}).Set(1);
  for (const char* source : {"engine", "store", "replays"}) {
    gauge_read_failures_.Add({{"source", source}});
  }
  absl::MutexLock lock(&mu_);
  replays_running_value_ = &replays_running_.Add({});
}

Metrics::~Metrics() = default;

void Metrics::SetGaugeSource(GaugeSource source) { gauges_->set_source(std::move(source)); }

absl::Status Metrics::Serve(const std::string& address) {
  // prometheus-cpp reports a failed listen by throwing from civetweb; catch it at this edge.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address, /*num_threads=*/2,
                                                     MetricsPageCallbacks());
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics_addr: cannot listen on ", address, ": ", e.what()));
  }
  if (exposer_->GetListeningPorts().empty()) {
    exposer_.reset();
    return absl::UnavailableError(absl::StrCat("metrics_addr: cannot listen on ", address));
  }
  // The scrape-time gauges first: their source also refreshes registry gauges (circuits,
  // budgets), which then appear in the same scrape.
  // GET /metrics is answered by the page route (metrics_page.h): retryd's families only, without
  // the Exposer's own. The collectables are registered too, for any other path it serves.
  exposer_->RegisterCollectable(gauges_);
  exposer_->RegisterCollectable(registry_);
  page_route_ = std::make_unique<MetricsPageRoute>(exposer_->GetListeningPorts().front(),
                                                   [this] { return Scrape(); });
  return absl::OkStatus();
}

void Metrics::StopServing() {
  page_route_.reset();
  exposer_.reset();
}

int Metrics::port() const {
  if (exposer_ == nullptr) return 0;
  const std::vector<int> ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

std::string Metrics::Scrape() const {
  // In the exposer's order: the gauge source first, as it also sets registry gauges.
  std::vector<prometheus::MetricFamily> families = gauges_->Collect();
  for (auto& f : registry_->Collect()) families.push_back(std::move(f));
  return prometheus::TextSerializer().Serialize(families);
}

Metrics::ServiceHandles& Metrics::Service(absl::string_view service) {
  auto it = services_.find(service);
  if (it != services_.end()) return *it->second;
  auto h = std::make_unique<ServiceHandles>();
  const std::string name(service);
  // Every label set of a service is created at once, so its series start at 0 and rate() and
  // increase() see the first event.
  for (size_t c = 1; c < kClasses.size(); ++c) {
    h->failures[c] = &failures_.Add({{"service", name}, {"error_class", kClasses[c]}});
  }
  h->failures[0] = h->failures[1];  // Unspecified never reaches here; count it as transient.
  h->decisions[0] =
      &decisions_.Add({{"service", name}, {"decision", "scheduled"}, {"reason", "none"}});
  for (size_t r = 1; r < kReasons.size(); ++r) {
    h->decisions[r] =
        &decisions_.Add({{"service", name}, {"decision", "dead_lettered"}, {"reason", kReasons[r]}});
  }
  h->duplicates = &duplicates_.Add({{"service", name}});
  h->expirations = &expirations_.Add({{"service", name}});
  h->success_attempts = &success_attempts_.Add({{"service", name}}, AttemptBuckets());
  h->lateness = &lateness_.Add({{"service", name}}, LatenessBuckets());
  return *services_.emplace(name, std::move(h)).first->second;
}

void Metrics::RegisterService(absl::string_view service) {
  absl::MutexLock lock(&mu_);
  Service(service);
}

void Metrics::OnDecision(const Envelope& e, const Failure& failure, const Decision& decision,
                         bool lease_expired) {
  absl::MutexLock lock(&mu_);
  ServiceHandles& s = Service(e.service);
  const int reason =
      decision.kind == DecisionKind::kScheduled ? 0 : Index<kReasons.size()>(static_cast<int>(decision.reason));
  s.decisions[reason]->Increment();
  if (lease_expired) {
    s.expirations->Increment();
    return;
  }
  s.failures[Index<kClasses.size()>(static_cast<int>(decision.error_class))]->Increment();
  const absl::string_view code =
      failure.error_code.empty() ? absl::string_view("none") : absl::string_view(failure.error_code);
  auto it = s.error_codes.find(code);
  if (it == s.error_codes.end()) {
    Counter* counter;
    if (static_cast<int>(s.error_codes.size()) < kMaxErrorCodesPerService) {
      counter = &failures_by_code_.Add({{"service", e.service}, {"error_code", std::string(code)}});
    } else {
      if (s.other_error_code == nullptr) {
        s.other_error_code =
            &failures_by_code_.Add({{"service", e.service}, {"error_code", "other"}});
      }
      counter = s.other_error_code;
      counter->Increment();
      return;
    }
    it = s.error_codes.emplace(std::string(code), counter).first;
  }
  it->second->Increment();
}

void Metrics::OnDuplicateFailure(const Envelope& existing) {
  absl::MutexLock lock(&mu_);
  Service(existing.service).duplicates->Increment();
}

void Metrics::OnLeased(const Envelope& e, absl::Duration lateness) {
  absl::MutexLock lock(&mu_);
  Service(e.service).lateness->Observe(
      std::max(0.0, absl::ToDoubleSeconds(lateness)));
}

void Metrics::OnRetrySucceeded(const Envelope& e, int attempt) {
  absl::MutexLock lock(&mu_);
  Service(e.service).success_attempts->Observe(attempt);
}

void Metrics::OnCommit(absl::Duration duration, int requests, bool ok) {
  commit_seconds_all_.Observe(absl::ToDoubleSeconds(duration));
  commit_batch_all_.Observe(requests);
}

void Metrics::OnSync(absl::Duration duration) {
  sync_seconds_all_.Observe(absl::ToDoubleSeconds(duration));
}

// The setters below cache their handles per service like the engine hooks: the budget may be set
// on every decision. Each creates all label values of its family at once (one is 1, the others 0;
// counters start at 0).
void Metrics::SetCircuitState(absl::string_view service, Circuit state) {
  absl::MutexLock lock(&mu_);
  ServiceHandles& s = Service(service);
  if (s.circuit_state[0] == nullptr) {
    for (size_t i = 0; i < kCircuitStates.size(); ++i) {
      s.circuit_state[i] =
          &circuit_state_.Add({{"service", std::string(service)}, {"state", kCircuitStates[i]}});
    }
  }
  for (size_t i = 0; i < kCircuitStates.size(); ++i) {
    s.circuit_state[i]->Set(static_cast<int>(state) == static_cast<int>(i) + 1 ? 1 : 0);
  }
}

void Metrics::SetCircuitOverride(absl::string_view service, CircuitOverride mode) {
  absl::MutexLock lock(&mu_);
  ServiceHandles& s = Service(service);
  if (s.circuit_override[0] == nullptr) {
    for (size_t i = 0; i < kOverrideModes.size(); ++i) {
      s.circuit_override[i] =
          &circuit_override_.Add({{"service", std::string(service)}, {"mode", kOverrideModes[i]}});
    }
  }
  for (size_t i = 0; i < kOverrideModes.size(); ++i) {
    s.circuit_override[i]->Set(static_cast<int>(mode) == static_cast<int>(i) + 1 ? 1 : 0);
  }
}

void Metrics::SetBudgetRemaining(absl::string_view service, double remaining) {
  absl::MutexLock lock(&mu_);
  ServiceHandles& s = Service(service);
  if (s.budget_remaining == nullptr) {
    s.budget_remaining = &budget_remaining_.Add({{"service", std::string(service)}});
  }
  s.budget_remaining->Set(remaining);
}

void Metrics::ClearGuards() {
  absl::MutexLock lock(&mu_);
  for (auto& [name, s] : services_) {
    for (Gauge*& g : s->circuit_state) {
      if (g != nullptr) circuit_state_.Remove(g);
      g = nullptr;
    }
    for (Gauge*& g : s->circuit_override) {
      if (g != nullptr) circuit_override_.Remove(g);
      g = nullptr;
    }
    if (s->budget_remaining != nullptr) budget_remaining_.Remove(s->budget_remaining);
    s->budget_remaining = nullptr;
  }
}

void Metrics::CountGaugeReadFailure(absl::string_view source) {
  gauge_read_failures_.Add({{"source", std::string(source)}}).Increment();
}

void Metrics::AddReplayEnvelopes(absl::string_view service, ReplayOutcome outcome, int64_t n) {
  absl::MutexLock lock(&mu_);
  ServiceHandles& s = Service(service);
  if (s.replay_envelopes[0] == nullptr) {
    for (size_t i = 0; i < kReplayOutcomes.size(); ++i) {
      s.replay_envelopes[i] = &replay_envelopes_.Add(
          {{"service", std::string(service)}, {"outcome", kReplayOutcomes[i]}});
    }
  }
  const int i = Index<kReplayOutcomes.size()>(static_cast<int>(outcome));
  if (n > 0) s.replay_envelopes[i]->Increment(static_cast<double>(n));
}

void Metrics::SetReplays(const std::vector<ReplayFigures>& running) {
  absl::MutexLock lock(&mu_);
  if (replays_running_value_ == nullptr) replays_running_value_ = &replays_running_.Add({});
  replays_running_value_->Set(static_cast<double>(running.size()));
  absl::flat_hash_map<std::string, std::pair<prometheus::Gauge*, prometheus::Gauge*>> kept;
  for (const ReplayFigures& r : running) {
    auto it = replays_.find(r.name);
    std::pair<prometheus::Gauge*, prometheus::Gauge*> g;
    if (it != replays_.end()) {
      g = it->second;
      replays_.erase(it);
    } else {
      g = {&replay_matched_.Add({{"replay", r.name}}), &replay_handled_.Add({{"replay", r.name}})};
    }
    g.first->Set(static_cast<double>(r.matched));
    g.second->Set(static_cast<double>(r.handled));
    kept[r.name] = g;
  }
  for (auto& [name, g] : replays_) {  // Finished since the last call.
    replay_matched_.Remove(g.first);
    replay_handled_.Remove(g.second);
  }
  replays_ = std::move(kept);
}

void Metrics::ClearReplays() {
  absl::MutexLock lock(&mu_);
  if (replays_running_value_ != nullptr) replays_running_.Remove(replays_running_value_);
  replays_running_value_ = nullptr;
  for (auto& [name, g] : replays_) {
    replay_matched_.Remove(g.first);
    replay_handled_.Remove(g.second);
  }
  replays_.clear();
}

void Metrics::OnDeadLettersRemoved(const std::string& service, const char* cause, int64_t n) {
  if (n <= 0) return;
  // Rare (operator purges, sweeps): no cached handle needed.
  dead_letters_removed_.Add({{"service", service}, {"cause", cause}})
      .Increment(static_cast<double>(n));
}

void Metrics::OnReplayed(const std::string& service, int64_t replayed, int64_t skipped_blocked) {
  AddReplayEnvelopes(service, ReplayOutcome::kReplayed, replayed);
  AddReplayEnvelopes(service, ReplayOutcome::kSkippedBlocked, skipped_blocked);
}

void Metrics::ObserveRpc(absl::string_view full_method, int grpc_code, absl::Duration latency) {
  absl::MutexLock lock(&mu_);
  auto it = rpcs_.find(full_method);
  if (it == rpcs_.end()) {
    auto h = std::make_unique<RpcHandles>();
    // "/retryd.v1.RetryService/Lease" -> ("retryd.v1.RetryService", "Lease").
    absl::string_view m = full_method;
    if (!m.empty() && m.front() == '/') m.remove_prefix(1);
    const size_t slash = m.find('/');
    h->service = std::string(slash == absl::string_view::npos ? "" : m.substr(0, slash));
    h->method = std::string(slash == absl::string_view::npos ? m : m.substr(slash + 1));
    std::string key(full_method);
    if (static_cast<int>(rpcs_.size()) >= kMaxRpcMethods) {
      h->service = "other";
      h->method = "other";
      key = "other";
      auto other = rpcs_.find(key);
      if (other != rpcs_.end()) it = other;
    }
    if (it == rpcs_.end()) it = rpcs_.emplace(key, std::move(h)).first;
  }
  RpcHandles& h = *it->second;
  const int code = Index<kGrpcCodes.size()>(grpc_code, /*fallback=Unknown*/ 2);
  if (h.by_code[code] == nullptr) {
    h.by_code[code] = &rpc_seconds_.Add(
        {{"grpc_service", h.service}, {"grpc_method", h.method}, {"grpc_code", kGrpcCodes[code]}},
        RpcBuckets());
  }
  h.by_code[code]->Observe(absl::ToDoubleSeconds(latency));
}

}  // namespace retryd
