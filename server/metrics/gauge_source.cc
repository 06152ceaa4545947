#include "server/metrics/gauge_source.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/util/log.h"

namespace retryd {

namespace {

// How long a scrape waits for the writer to report the guards; a scrape never hangs on a busy
// writer.
constexpr absl::Duration kGuardsWait = absl::Seconds(2);

// Sets the circuit and budget gauges from the writer's view of every known service. The budget
// left changes with time as its window slides, so it is read at scrape time, not pushed. When the
// engine does not answer (stopping, a failed commit, or busy past kGuardsWait) the scrape leaves
// those gauges out, rather than show the values of an earlier scrape as current, and counts it.
void RefreshGuards(Engine* engine, Metrics* metrics) {
  struct Result {
    absl::Mutex mu;
    absl::Notification done;
    absl::StatusOr<std::map<std::string, GuardView>> views ABSL_GUARDED_BY(mu);
  };
  auto result = std::make_shared<Result>();
  engine->GuardViews([result](absl::StatusOr<std::map<std::string, GuardView>> views) {
    {
      absl::MutexLock lock(&result->mu);
      result->views = std::move(views);
    }
    result->done.Notify();
  });
  absl::Status failed;
  if (!result->done.WaitForNotificationWithTimeout(kGuardsWait)) {
    failed = absl::DeadlineExceededError(absl::StrCat("the engine did not answer within ",
                                                      absl::FormatDuration(kGuardsWait)));
  } else {
    absl::MutexLock lock(&result->mu);
    if (result->views.ok()) {
      for (const auto& [service, view] : *result->views) {
        metrics->SetCircuitState(service, static_cast<Metrics::Circuit>(view.circuit.state));
        metrics->SetCircuitOverride(
            service, static_cast<Metrics::CircuitOverride>(view.circuit.override_mode));
        if (view.budget_remaining >= 0) {
          metrics->SetBudgetRemaining(service, static_cast<double>(view.budget_remaining));
        }
      }
      return;
    }
    failed = result->views.status();
  }
  LogEvent(LogLevel::kWarn, "metrics_guards_unavailable").Str("error", failed.ToString());
  metrics->ClearGuards();
  metrics->CountGaugeReadFailure("engine");
}

}  // namespace

Metrics::GaugeSource MakeGaugeSource(Engine* engine, Store* store, const PolicySet* policies,
                                     const Clock* clock, Metrics* metrics) {
  return [engine, store, policies, clock, metrics]() {
    // The exposer collects this source before the registry, so these land in this scrape.
    if (metrics != nullptr) RefreshGuards(engine, metrics);
    std::map<std::string, ServiceGauges> by_name;  // Sorted: stable scrape output.
    for (const Policy& p : policies->policies()) {
      if (p.name != "default" && !absl::EndsWith(p.name, "*")) by_name[p.name].service = p.name;
    }
    for (const auto& [name, stats] : engine->Stats()) {
      ServiceGauges& g = by_name[name];
      g.service = name;
      g.scheduled = stats.scheduled;
      g.leased = stats.leased;
      g.dead = stats.dead;
    }
    // The read side of the store sees committed data and does not block the writer. When it
    // fails, the oldest dead-letter ages are unknown for this scrape: left out, not shown as 0.
    absl::StatusOr<std::vector<ServiceCounts>> counts = store->CountByService();
    if (counts.ok()) {
      const absl::Time now = clock->Now();
      for (const ServiceCounts& c : *counts) {
        if (c.oldest_dead_lettered_at == absl::InfinitePast()) continue;
        ServiceGauges& g = by_name[c.service];
        g.service = c.service;
        g.oldest_dead_age = std::max(absl::ZeroDuration(), now - c.oldest_dead_lettered_at);
      }
    } else {
      LogEvent(LogLevel::kWarn, "metrics_store_read_failed").Str("error", counts.status().ToString());
      if (metrics != nullptr) metrics->CountGaugeReadFailure("store");
    }
    std::vector<ServiceGauges> out;
    out.reserve(by_name.size());
    for (auto& [name, g] : by_name) {
      if (!counts.ok()) g.oldest_dead_age = std::nullopt;
      g.escalation_age = policies->Resolve(name).dead_letter.escalation_age;
      out.push_back(std::move(g));
    }
    return out;
  };
}

}  // namespace retryd
