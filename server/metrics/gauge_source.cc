#include "server/metrics/gauge_source.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "server/util/log.h"

namespace retryd {

Metrics::GaugeSource MakeGaugeSource(const Engine* engine, Store* store, const PolicySet* policies,
                                     const Clock* clock) {
  return [engine, store, policies, clock]() {
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
    // The read side of the store sees committed data and does not block the writer.
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
    }
    std::vector<ServiceGauges> out;
    out.reserve(by_name.size());
    for (auto& [name, g] : by_name) {
      g.escalation_age = policies->Resolve(name).dead_letter.escalation_age;
      out.push_back(std::move(g));
    }
    return out;
  };
}

}  // namespace retryd
