// Summaries of latency samples for the load generator: exact percentiles (nearest rank) of the
// raw samples, which a benchmark of at most a few million operations can afford to keep.
#ifndef RETRYD_BENCH_LOADGEN_STATS_H_
#define RETRYD_BENCH_LOADGEN_STATS_H_

#include <cstdint>
#include <vector>

namespace bench {

struct Summary {
  int64_t count = 0;
  double mean = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double p999 = 0;
  double max = 0;
};

// Summarizes `samples` (reordered in place). All zero when empty.
Summary Summarize(std::vector<double>& samples);

// The nearest-rank percentile `q` (0..1) of sorted samples; 0 when empty.
double Percentile(const std::vector<double>& sorted, double q);

}  // namespace bench

#endif  // RETRYD_BENCH_LOADGEN_STATS_H_
