// The per-service gauges of the metrics, read at scrape time: scheduled/leased/dead from the
// engine's live counts (rebuilt from the store at start-up), the oldest dead letter from the
// store, the escalation age from the service's policy. Every service with an exactly named policy
// is included (with zeros) so its series exist before its first failure. Circuit and budget
// gauges come from the engine's guards at scrape time.
#ifndef RETRYD_SERVER_METRICS_GAUGE_SOURCE_H_
#define RETRYD_SERVER_METRICS_GAUGE_SOURCE_H_

#include "server/core/policy_set.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"
#include "server/store/store.h"
#include "server/util/clock.h"

namespace retryd {

// The pointers must outlive the returned function's use. With `metrics`, each call also sets
// the circuit state, override and budget-remaining gauges of every service the engine knows.
// What cannot be read for a scrape is left out of it, never reported as 0 or as an earlier
// value: without the engine's guards the circuit and budget series are removed, without the
// store the oldest dead-letter ages; with `metrics`, each such scrape adds one to
// retryd_gauge_read_failures_total{source="engine"|"store"}.
Metrics::GaugeSource MakeGaugeSource(Engine* engine, Store* store, const PolicySet* policies,
                                     const Clock* clock, Metrics* metrics = nullptr);

}  // namespace retryd

#endif  // RETRYD_SERVER_METRICS_GAUGE_SOURCE_H_
